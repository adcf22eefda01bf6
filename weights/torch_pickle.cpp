#include "weights/torch_pickle.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "weights/text_util.h"

namespace npcore {
namespace {

// Names of every pickle opcode (pickletools' spelling), for messages.
struct OpcodeName {
  uint8_t code;
  const char* name;
};
// clang-format off
constexpr OpcodeName kOpcodeNames[] = {
    {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"},
    {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"},
    {'P', "PERSID"}, {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"},
    {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"},
    {'c', "GLOBAL"}, {'d', "DICT"}, {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"},
    {'i', "INST"}, {'j', "LONG_BINGET"}, {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"},
    {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"},
    {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x80, "PROTO"},
    {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"},
    {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"},
    {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"},
    {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"}, {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"},
    {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
};
// clang-format on

const char* opcode_name(uint8_t c) {
  for (const OpcodeName& o : kOpcodeNames)
    if (o.code == c) return o.name;
  return nullptr;
}

std::string hex_byte(uint8_t c) {
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[c >> 4] + digits[c & 15];
}

// The storage classes torch.save names, and the dtype of their elements.
bool storage_dtype(const std::string& global, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"torch.FloatStorage", DType::F32}, {"torch.DoubleStorage", DType::F64},
      {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
      {"torch.LongStorage", DType::I64},  {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16}, {"torch.CharStorage", DType::I8},
      {"torch.ByteStorage", DType::U8},   {"torch.BoolStorage", DType::Bool}};
  for (const auto& [name, d] : table)
    if (global == name) {
      *out = d;
      return true;
    }
  return false;
}

const char* kRebuildFunctions[] = {"torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
                                   "torch._utils._rebuild_parameter",
                                   "torch._utils._rebuild_parameter_with_state"};

bool allowed_global(const std::string& g) {
  DType d;
  if (g == "collections.OrderedDict" || storage_dtype(g, &d)) return true;
  for (const char* f : kRebuildFunctions)
    if (g == f) return true;
  return false;
}

// Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF), as Python's decoder and JSON need.
bool valid_utf8(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

}  // namespace

std::string py_type_name(const PyValue& v) {
  switch (v.kind) {
    case PyValue::Kind::None:
      return "NoneType";
    case PyValue::Kind::Bool:
      return "bool";
    case PyValue::Kind::Int:
    case PyValue::Kind::BigInt:
      return "int";
    case PyValue::Kind::Float:
      return "float";
    case PyValue::Kind::Str:
      return "str";
    case PyValue::Kind::Bytes:
      return "bytes";
    case PyValue::Kind::Tuple:
      return "tuple";
    case PyValue::Kind::List:
      return "list";
    case PyValue::Kind::Dict:
      return v.ordered ? "OrderedDict" : "dict";
    case PyValue::Kind::Global:
      return "global " + v.s;
    case PyValue::Kind::Storage:
      return "storage";
    case PyValue::Kind::Tensor:
      return "Tensor";
  }
  return "?";
}

// The state of one load(): input, stack, marks and memo (Python's Unpickler fields).
struct TorchUnpickler::Frame {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0, base = 0, op_pos = 0;
  uint8_t op = 0;
  const std::string* source = nullptr;
  std::vector<PyValue*> stack;
  std::vector<size_t> marks;  // stack heights at each open MARK
  std::unordered_map<uint64_t, PyValue*> memo;

  [[noreturn]] void fail(const std::string& what) const {
    const char* name = opcode_name(op);
    throw FormatError(*source + ": " + what + " at byte " + std::to_string(base + op_pos) +
                      (name ? std::string(" (pickle opcode ") + name + ")" : std::string()));
  }
  const uint8_t* take(uint64_t n) {
    if (n > size - pos)
      fail("truncated: needs " + std::to_string(n) + " more bytes, " + std::to_string(size - pos) +
           " remain");
    const uint8_t* p = data + pos;
    pos += size_t(n);
    return p;
  }
  uint64_t le(int n) {
    const uint8_t* p = take(uint64_t(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string line() {  // a GLOBAL argument: text up to '\n'
    const size_t limit = std::min<size_t>(size - pos, 1024);
    const void* nl = std::memchr(data + pos, '\n', limit);
    if (!nl) fail("GLOBAL name is not terminated by a newline within " + std::to_string(limit) + " bytes");
    const size_t n = size_t(static_cast<const uint8_t*>(nl) - (data + pos));
    std::string s(reinterpret_cast<const char*>(data + pos), n);
    pos += n + 1;
    for (char c : s)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
        fail("GLOBAL name contains a non-printable byte");
    return s;
  }
  size_t floor() const { return marks.empty() ? 0 : marks.back(); }
  void push(PyValue* v) {
    if (stack.size() >= kMaxStack) fail("more than " + std::to_string(kMaxStack) + " values on the stack");
    stack.push_back(v);
  }
  PyValue* pop() {
    if (stack.size() <= floor()) fail("stack underflow");
    PyValue* v = stack.back();
    stack.pop_back();
    return v;
  }
  PyValue* top() {
    if (stack.size() <= floor()) fail("stack underflow");
    return stack.back();
  }
  std::vector<PyValue*> pop_mark() {
    if (marks.empty()) fail("no MARK to pop to");
    const size_t k = marks.back();
    marks.pop_back();
    std::vector<PyValue*> items(stack.begin() + long(k), stack.end());
    stack.resize(k);
    return items;
  }
};

TorchUnpickler::TorchUnpickler(std::string source) : source_(std::move(source)) {
  none_.kind = PyValue::Kind::None;
  true_.kind = false_.kind = PyValue::Kind::Bool;
  true_.i = 1;
}

void TorchUnpickler::charge(uint64_t units, Frame& f) {
  units_ += units;
  const uint64_t read = bytes_read_ + f.pos;
  if (units_ > kMaxUnits)
    f.fail("the pickle builds more than " + std::to_string(kMaxUnits) +
           " values, container items and memo entries (the limit; a state_dict needs far fewer)");
  if (units_ > kUnitsPerByte * read + kUnitsSlack)
    f.fail("the pickle builds " + std::to_string(units_) + " values, container items and memo entries from " +
           std::to_string(read) + " bytes, more than the limit of " + std::to_string(kUnitsPerByte) +
           " per byte read plus " + std::to_string(kUnitsSlack) + " (a state_dict needs under one per byte)");
}

PyValue* TorchUnpickler::make(PyValue::Kind k, Frame& f) {
  charge(1, f);
  arena_.push_back(std::make_unique<PyValue>());
  arena_.back()->kind = k;
  return arena_.back().get();
}

const TorchStorageRef* TorchUnpickler::find_root(const std::string& key) const {
  auto it = root_index_.find(key);
  return it == root_index_.end() ? nullptr : &storages_[it->second];
}

namespace {

bool hashable(const PyValue& v) {
  return v.kind != PyValue::Kind::List && v.kind != PyValue::Kind::Dict;
}

}  // namespace

PyValue* TorchUnpickler::persistent_load(const PyValue& pid, Frame& f) {
  using K = PyValue::Kind;
  if (pid.kind != K::Tuple || pid.items.empty() || pid.items[0]->kind != K::Str)
    f.fail("persistent id must be a tuple starting with a type name, got " + py_type_name(pid));
  const std::string& type = pid.items[0]->s;
  if (type == "module")
    f.fail(
        "the pickle holds a whole nn.Module (torch.save(model)), not a state_dict; save model.state_dict() "
        "instead");
  if (type != "storage")
    f.fail("unknown persistent id type '" + printable(type) + "' (only 'storage' is allowed)");
  const auto& it = pid.items;
  if (it.size() != 5 && it.size() != 6)
    f.fail("a storage persistent id has 5 (zip format) or 6 (legacy format) fields, got " +
           std::to_string(it.size()));
  TorchStorageRef s;
  if (it[1]->kind != K::Global || !storage_dtype(it[1]->s, &s.dtype))
    f.fail(
        "storage type must be one of "
        "torch.<Float|Double|Half|BFloat16|Long|Int|Short|Char|Byte|Bool>Storage, "
        "got " +
        py_type_name(*it[1]));
  auto key_of = [&](const PyValue& v, const char* what) {
    if (v.kind == K::Str) return v.s;
    if (v.kind == K::Int) return std::to_string(v.i);
    f.fail(std::string(what) + " must be a str, got " + py_type_name(v));
  };
  s.key = key_of(*it[2], "storage key");
  if (it[3]->kind != K::Str) f.fail("storage location must be a str, got " + py_type_name(*it[3]));
  s.location = it[3]->s;
  const int64_t kMaxNumel = int64_t(1) << 56;
  if (it[4]->kind != K::Int || it[4]->i < 0 || it[4]->i > kMaxNumel)
    f.fail("storage size must be an int in [0, 2^56], got " +
           (it[4]->kind == K::Int ? std::to_string(it[4]->i) : py_type_name(*it[4])));
  s.numel = it[4]->i;
  std::string id = s.key;
  if (it.size() == 6 && it[5]->kind != K::None) {
    const PyValue& v = *it[5];
    if (v.kind != K::Tuple || v.items.size() != 3 || v.items[1]->kind != K::Int || v.items[2]->kind != K::Int)
      f.fail("storage view must be None or (view key, offset, size), got " + py_type_name(v));
    const std::string view_key = key_of(*v.items[0], "storage view key");
    s.is_view = true;
    s.view_offset = v.items[1]->i;
    s.view_numel = v.items[2]->i;
    if (s.view_offset < 0 || s.view_numel < 0 || s.view_offset > s.numel ||
        s.view_numel > s.numel - s.view_offset)
      f.fail("storage view '" + printable(view_key) + "' covers elements [" + std::to_string(s.view_offset) +
             ", " + std::to_string(s.view_offset) + " + " + std::to_string(s.view_numel) + ") of storage '" +
             printable(s.key) + "', which holds " + std::to_string(s.numel));
    id += std::string("\0view ", 6) + view_key;
  }
  auto found = storage_index_.find(id);
  size_t index;
  if (found != storage_index_.end()) {
    index = found->second;
    const TorchStorageRef& o = storages_[index];
    if (o.dtype != s.dtype || o.numel != s.numel || o.view_offset != s.view_offset ||
        o.view_numel != s.view_numel)
      f.fail("storage '" + printable(s.key) + "' is named twice with different types or sizes (" +
             dtype_name(o.dtype) + " x " + std::to_string(o.numel) + ", then " + dtype_name(s.dtype) + " x " +
             std::to_string(s.numel) + ")");
  } else {
    // Every view of one root must agree on the root's type and size.
    if (const TorchStorageRef* o = find_root(s.key); o && (o->dtype != s.dtype || o->numel != s.numel))
      f.fail("storage '" + printable(s.key) + "' is named twice with different types or sizes");
    index = storages_.size();
    root_index_.emplace(s.key, index);
    storages_.push_back(std::move(s));
    storage_index_.emplace(id, index);
  }
  PyValue* v = make(K::Storage, f);
  v->i = int64_t(index);
  return v;
}

PyValue* TorchUnpickler::rebuild_tensor(const std::string& fn, const PyValue& args, Frame& f) {
  using K = PyValue::Kind;
  const auto& a = args.items;
  const bool v2 = fn == "torch._utils._rebuild_tensor_v2";
  const bool ok_count = v2 ? (a.size() == 6 || a.size() == 7) : a.size() == 4;
  if (!ok_count)
    f.fail(fn + " takes " + (v2 ? "6 or 7" : "4") + " arguments, got " + std::to_string(a.size()));
  if (a[0]->kind != K::Storage) f.fail(fn + ": first argument must be a storage, got " + py_type_name(*a[0]));
  if (a[1]->kind != K::Int || a[1]->i < 0)
    f.fail(fn + ": storage offset must be a non-negative int, got " +
           (a[1]->kind == K::Int ? std::to_string(a[1]->i) : py_type_name(*a[1])));
  auto ints = [&](const PyValue& v, const char* what) {
    if (v.kind != K::Tuple) f.fail(fn + ": " + what + " must be a tuple of ints, got " + py_type_name(v));
    if (v.items.size() > 16)
      f.fail(fn + ": " + what + " has " + std::to_string(v.items.size()) + " dims (at most 16)");
    std::vector<int64_t> out;
    for (const PyValue* e : v.items) {
      if (e->kind != K::Int || e->i < 0)
        f.fail(fn + ": " + what + " must hold non-negative ints, got " +
               (e->kind == K::Int ? std::to_string(e->i) : py_type_name(*e)));
      out.push_back(e->i);
    }
    return out;
  };
  TorchTensorRef t;
  t.storage = size_t(a[0]->i);
  t.offset = a[1]->i;
  t.size = ints(*a[2], "size");
  t.stride = ints(*a[3], "stride");
  if (t.size.size() != t.stride.size())
    f.fail(fn + ": size has " + std::to_string(t.size.size()) + " dims but stride " +
           std::to_string(t.stride.size()));
  if (v2) {
    if (a[4]->kind != K::Bool) f.fail(fn + ": requires_grad must be a bool, got " + py_type_name(*a[4]));
    if (a[5]->kind != K::Dict)
      f.fail(fn + ": backward_hooks must be an OrderedDict, got " + py_type_name(*a[5]));
    if (a.size() == 7 && a[6]->kind != K::Dict && a[6]->kind != K::None)
      f.fail(fn + ": metadata must be a dict or None, got " + py_type_name(*a[6]));
  }
  PyValue* v = make(K::Tensor, f);
  v->tensor = std::make_unique<TorchTensorRef>(std::move(t));
  return v;
}

PyValue* TorchUnpickler::reduce(const PyValue& callable, const PyValue& args, Frame& f) {
  using K = PyValue::Kind;
  if (callable.kind != K::Global)
    f.fail("refuses REDUCE on a " + py_type_name(callable) + " (only allowed globals)");
  if (args.kind != K::Tuple) f.fail("REDUCE arguments must be a tuple, got " + py_type_name(args));
  const std::string& fn = callable.s;
  if (fn == "collections.OrderedDict") {
    PyValue* d = make(K::Dict, f);
    d->ordered = true;
    if (args.items.empty()) return d;
    // Python 2 pickled an OrderedDict as OrderedDict([[key, value], ...]).
    const PyValue& items = *args.items[0];
    if (args.items.size() != 1 || (items.kind != K::List && items.kind != K::Tuple))
      f.fail("collections.OrderedDict takes no argument or one list of pairs");
    // The copy is charged before it is made: a list passed again and again would otherwise fill memory
    // at a few bytes of pickle per copy.
    charge(2 * uint64_t(items.items.size()), f);
    d->items.reserve(2 * items.items.size());
    for (PyValue* p : items.items) {
      if ((p->kind != K::List && p->kind != K::Tuple) || p->items.size() != 2)
        f.fail("collections.OrderedDict: items must be [key, value] pairs, got " + py_type_name(*p));
      if (!hashable(*p->items[0])) f.fail("unhashable dict key of type " + py_type_name(*p->items[0]));
      d->items.push_back(p->items[0]);
      d->items.push_back(p->items[1]);
    }
    return d;
  }
  if (fn == "torch._utils._rebuild_tensor" || fn == "torch._utils._rebuild_tensor_v2")
    return rebuild_tensor(fn, args, f);
  if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") {
    const auto& a = args.items;
    const size_t n = fn == "torch._utils._rebuild_parameter" ? 3 : 4;
    if (a.size() != n)
      f.fail(fn + " takes " + std::to_string(n) + " arguments, got " + std::to_string(a.size()));
    if (a[0]->kind != K::Tensor) f.fail(fn + ": first argument must be a tensor, got " + py_type_name(*a[0]));
    if (a[1]->kind != K::Bool) f.fail(fn + ": requires_grad must be a bool, got " + py_type_name(*a[1]));
    if (a[2]->kind != K::Dict)
      f.fail(fn + ": backward_hooks must be an OrderedDict, got " + py_type_name(*a[2]));
    if (n == 4 && a[3]->kind != K::Dict && a[3]->kind != K::None && a[3]->kind != K::Tuple)
      f.fail(fn + ": state must be a dict, tuple or None, got " + py_type_name(*a[3]));
    return a[0];
  }
  f.fail("refuses to call " + fn +
         " (REDUCE is allowed on collections.OrderedDict and torch._utils rebuild "
         "functions only)");
}

const PyValue& TorchUnpickler::load(const uint8_t* data, size_t size, size_t* consumed, size_t base) {
  using K = PyValue::Kind;
  Frame f;
  f.data = data;
  f.size = size;
  f.base = base;
  f.source = &source_;
  auto push_new = [&](K k) {
    PyValue* v = make(k, f);
    f.push(v);
    return v;
  };
  auto push_int = [&](int64_t i) { push_new(K::Int)->i = i; };
  auto push_text = [&](uint64_t n, K kind) {
    const uint8_t* p = f.take(n);
    if (kind == K::Str && !valid_utf8(p, size_t(n))) f.fail("string is not valid UTF-8");
    push_new(kind)->s.assign(reinterpret_cast<const char*>(p), size_t(n));
  };
  auto push_long = [&](uint64_t n) {
    const uint8_t* p = f.take(n);
    if (n <= 8) {
      uint64_t v = 0;
      for (uint64_t i = n; i-- > 0;) v = (v << 8) | p[i];
      if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
      push_int(static_cast<int64_t>(v));
    } else {
      push_new(K::BigInt)->s.assign(reinterpret_cast<const char*>(p), size_t(n));
    }
  };
  auto push_global = [&](const std::string& module, const std::string& name) {
    const std::string g = module + "." + name;
    if (!allowed_global(g))
      f.fail("refuses global " + printable(g) +
             " (a state_dict needs only collections.OrderedDict, torch._utils rebuild "
             "functions and torch storage types)");
    push_new(K::Global)->s = g;
  };
  auto make_tuple = [&](std::vector<PyValue*> items) {
    charge(items.size(), f);
    PyValue* t = make(K::Tuple, f);
    t->items = std::move(items);
    f.push(t);
  };
  auto dict_add = [&](PyValue* d, PyValue* k, PyValue* v) {
    if (!hashable(*k)) f.fail("unhashable dict key of type " + py_type_name(*k));
    charge(2, f);
    d->items.push_back(k);
    d->items.push_back(v);
  };
  auto memo_put = [&](uint64_t i) {
    PyValue* v = f.top();
    auto [it, added] = f.memo.emplace(i, v);
    if (added) {
      charge(1, f);
    } else {
      it->second = v;
    }
  };
  auto memo_get = [&](uint64_t i) {
    auto it = f.memo.find(i);
    if (it == f.memo.end()) f.fail("memo index " + std::to_string(i) + " was never stored");
    f.push(it->second);
  };

  for (;;) {
    f.op_pos = f.pos;
    if (f.pos >= f.size) {
      f.op = 0;
      throw FormatError(source_ + ": truncated pickle: no STOP opcode before byte " +
                        std::to_string(base + f.size));
    }
    f.op = data[f.pos++];
    switch (f.op) {
      case 0x80: {  // PROTO
        const uint8_t p = *f.take(1);
        if (p > 5) f.fail("unsupported pickle protocol " + std::to_string(p));
        break;
      }
      case 0x95: {  // FRAME: a length prefix only
        const uint64_t n = f.le(8);
        if (n > f.size - f.pos) f.fail("frame of " + std::to_string(n) + " bytes runs past the end");
        break;
      }
      case '.': {  // STOP
        PyValue* v = f.pop();
        if (consumed) *consumed = f.pos;
        bytes_read_ += f.pos;
        return *v;
      }
      case '(':  // MARK
        if (f.marks.size() >= kMaxMarks) f.fail("more than " + std::to_string(kMaxMarks) + " nested MARKs");
        f.marks.push_back(f.stack.size());
        break;
      case '0':  // POP
        if (f.stack.size() > f.floor()) {
          f.stack.pop_back();
        } else {
          f.pop_mark();
        }
        break;
      case '1':  // POP_MARK
        f.pop_mark();
        break;
      case '2':  // DUP
        f.push(f.top());
        break;
      case 'N':  // NONE
        f.push(&none_);
        break;
      case 0x88:  // NEWTRUE
        f.push(&true_);
        break;
      case 0x89:  // NEWFALSE
        f.push(&false_);
        break;
      case 'J':  // BININT
        push_int(int64_t(int32_t(uint32_t(f.le(4)))));
        break;
      case 'K':  // BININT1
        push_int(int64_t(f.le(1)));
        break;
      case 'M':  // BININT2
        push_int(int64_t(f.le(2)));
        break;
      case 0x8a:  // LONG1
        push_long(f.le(1));
        break;
      case 0x8b: {  // LONG4
        const int64_t n = int64_t(int32_t(uint32_t(f.le(4))));
        if (n < 0 || uint64_t(n) > kMaxLongBytes)
          f.fail("LONG4 of " + std::to_string(n) + " bytes (at most " + std::to_string(kMaxLongBytes) + ")");
        push_long(uint64_t(n));
        break;
      }
      case 'G': {  // BINFLOAT
        const uint8_t* p = f.take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian
        double d;
        std::memcpy(&d, &bits, 8);
        push_new(K::Float)->f = d;
        break;
      }
      case 'X':  // BINUNICODE
        push_text(f.le(4), K::Str);
        break;
      case 0x8c:  // SHORT_BINUNICODE
        push_text(f.le(1), K::Str);
        break;
      case 0x8d:  // BINUNICODE8
        push_text(f.le(8), K::Str);
        break;
      // Python 2 str, decoded as UTF-8 as torch.load does by default.
      case 'T': {  // BINSTRING
        const int64_t n = int64_t(int32_t(uint32_t(f.le(4))));
        if (n < 0) f.fail("negative BINSTRING length");
        push_text(uint64_t(n), K::Str);
        break;
      }
      case 'U':  // SHORT_BINSTRING
        push_text(f.le(1), K::Str);
        break;
      case 'B':  // BINBYTES
        push_text(f.le(4), K::Bytes);
        break;
      case 'C':  // SHORT_BINBYTES
        push_text(f.le(1), K::Bytes);
        break;
      case 0x8e:  // BINBYTES8
      case 0x96:  // BYTEARRAY8
        push_text(f.le(8), K::Bytes);
        break;
      case ')':  // EMPTY_TUPLE
        push_new(K::Tuple);
        break;
      case 't':  // TUPLE
        make_tuple(f.pop_mark());
        break;
      case 0x85:    // TUPLE1
      case 0x86:    // TUPLE2
      case 0x87: {  // TUPLE3
        const size_t n = size_t(f.op - 0x84);
        std::vector<PyValue*> items(n);
        for (size_t i = n; i-- > 0;) items[i] = f.pop();
        make_tuple(std::move(items));
        break;
      }
      case ']':  // EMPTY_LIST
        push_new(K::List);
        break;
      case 'l': {  // LIST
        std::vector<PyValue*> items = f.pop_mark();
        charge(items.size(), f);
        PyValue* l = make(K::List, f);
        l->items = std::move(items);
        f.push(l);
        break;
      }
      case 'a':    // APPEND
      case 'e': {  // APPENDS
        std::vector<PyValue*> items;
        if (f.op == 'a') {
          items.push_back(f.pop());
        } else {
          items = f.pop_mark();
        }
        PyValue* l = f.top();
        if (l->kind != K::List) f.fail("cannot append to a " + py_type_name(*l));
        charge(items.size(), f);
        l->items.insert(l->items.end(), items.begin(), items.end());
        break;
      }
      case '}':  // EMPTY_DICT
        push_new(K::Dict);
        break;
      case 'd': {  // DICT
        std::vector<PyValue*> items = f.pop_mark();
        if (items.size() % 2) f.fail("DICT needs key/value pairs, got an odd number of items");
        PyValue* d = make(K::Dict, f);
        for (size_t i = 0; i < items.size(); i += 2) dict_add(d, items[i], items[i + 1]);
        f.push(d);
        break;
      }
      case 's':    // SETITEM
      case 'u': {  // SETITEMS
        std::vector<PyValue*> items;
        if (f.op == 's') {
          PyValue* v = f.pop();
          PyValue* k = f.pop();
          items = {k, v};
        } else {
          items = f.pop_mark();
          if (items.size() % 2) f.fail("SETITEMS needs key/value pairs, got an odd number of items");
        }
        PyValue* d = f.top();
        if (d->kind != K::Dict) f.fail("cannot set items of a " + py_type_name(*d));
        for (size_t i = 0; i < items.size(); i += 2) dict_add(d, items[i], items[i + 1]);
        break;
      }
      case 'q':  // BINPUT
        memo_put(f.le(1));
        break;
      case 'r':  // LONG_BINPUT
        memo_put(f.le(4));
        break;
      case 0x94:  // MEMOIZE
        memo_put(f.memo.size());
        break;
      case 'h':  // BINGET
        memo_get(f.le(1));
        break;
      case 'j':  // LONG_BINGET
        memo_get(f.le(4));
        break;
      case 'c': {  // GLOBAL
        const std::string module = f.line();
        const std::string name = f.line();
        push_global(module, name);
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        PyValue* name = f.pop();
        PyValue* module = f.pop();
        if (module->kind != K::Str || name->kind != K::Str) f.fail("STACK_GLOBAL needs two strings");
        push_global(module->s, name->s);
        break;
      }
      case 'R': {  // REDUCE
        PyValue* args = f.pop();
        PyValue* callable = f.pop();
        f.push(reduce(*callable, *args, f));
        break;
      }
      case 'b': {  // BUILD
        PyValue* state = f.pop();
        PyValue* obj = f.top();
        // The only BUILD a state_dict holds sets OrderedDict._metadata (module versions); it is not needed.
        if (obj->kind != K::Dict || !obj->ordered)
          f.fail("refuses BUILD on a " + py_type_name(*obj) +
                 " (only an OrderedDict's attributes may be set)");
        if (state->kind != K::Dict)
          f.fail("BUILD state of an OrderedDict must be a dict, got " + py_type_name(*state));
        break;
      }
      case 'Q': {  // BINPERSID
        PyValue* pid = f.pop();
        f.push(persistent_load(*pid, f));
        break;
      }
      default: {
        const char* name = opcode_name(f.op);
        if (!name) f.fail("unknown pickle opcode " + hex_byte(f.op));
        f.fail(std::string("refuses pickle opcode ") + name + " (" + hex_byte(f.op) +
               "): a state_dict saved by torch.save does not need it");
      }
    }
  }
}

}  // namespace npcore
