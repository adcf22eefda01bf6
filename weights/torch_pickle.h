#pragma once
// A restricted unpickler for PyTorch checkpoints (what torch.load's Unpickler does for a state_dict, with
// nothing executed). It knows the binary pickle opcodes of protocols 2-5 that hold containers, integers,
// floats, strings, the memo and persistent ids, and only the globals a state_dict needs:
//   collections.OrderedDict, torch._utils._rebuild_tensor, torch._utils._rebuild_tensor_v2,
//   torch._utils._rebuild_parameter(_with_state), torch.<Float|Double|Half|BFloat16|Long|Int|Short|Char|
//   Byte|Bool>Storage.
// Every other global, a REDUCE or BUILD on anything but those, and every other opcode is refused with a
// FormatError naming it ("refuses global os.system"). "Calling" an allowed rebuild function only records a
// tensor's geometry (storage, offset, size, stride); bytes are attached later by torch_checkpoint.cpp.
//
// Values live in an arena owned by the reader and refer to each other by pointer; nothing walks them
// recursively, so cyclic or deeply nested input neither recurses nor leaks. Every length is checked
// against the bytes that remain, and memory is bounded by the bytes read: values made, container items
// stored and memo entries together may number at most kUnitsPerByte per pickle byte read (plus
// kUnitsSlack) and kMaxUnits in all (at most about 0.5 GB; a state_dict needs about 35 per tensor, so
// over 100000 tensors fit).
// An honest state_dict pickle needs under one per byte (torchvision's: about 0.5); a pickle that builds
// one list and passes it to OrderedDict again and again is refused before it fills memory.
// None, True and False are one shared value each.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "weights/state_dict.h"

namespace npcore {

// A storage named by a checkpoint's persistent id: ('storage', torch.FloatStorage, key, location, numel)
// in the zip format, with a sixth field (view key, offset, size) or None in the pre-1.6 format.
struct TorchStorageRef {
  DType dtype = DType::F32;
  std::string key;       // the root storage: zip entry <archive>/data/<key>, or a legacy storage key
  std::string location;  // "cpu", "cuda:0", ... (bytes are read on the CPU either way)
  int64_t numel = 0;     // elements of the root storage
  bool is_view = false;  // a legacy view: elements [view_offset, view_offset + view_numel) of the root
  int64_t view_offset = 0, view_numel = 0;
};

// A tensor rebuilt by _rebuild_tensor(_v2) / _rebuild_parameter: geometry in elements of its storage.
struct TorchTensorRef {
  size_t storage = 0;  // index into TorchUnpickler::storages()
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

// One unpickled value. Containers hold pointers into the reader's arena.
struct PyValue {
  enum class Kind { None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  bool ordered = false;         // Dict: built by collections.OrderedDict
  int64_t i = 0;                // Bool (0/1), Int; Storage: index into storages()
  double f = 0.0;               // Float
  std::string s;                // Str (UTF-8), Bytes, BigInt (little-endian two's complement), Global
  std::vector<PyValue*> items;  // Tuple, List; Dict: key0, value0, key1, value1, ... in insertion order
  std::unique_ptr<TorchTensorRef> tensor;  // Tensor (out of line: most values are not tensors)
};

// Python's name for a value's type, for messages ("int", "str", "OrderedDict", "Tensor", ...).
std::string py_type_name(const PyValue& v);

class TorchUnpickler {
 public:
  static constexpr size_t kMaxMarks = 1000;        // MARKs open at once
  static constexpr size_t kMaxStack = 1u << 24;    // values on the stack at once
  static constexpr size_t kMaxLongBytes = 1024;    // LONG4 integers
  static constexpr uint64_t kUnitsPerByte = 4;     // values + container items + memo entries per byte read
  static constexpr uint64_t kUnitsSlack = 4096;    // ... plus this many, for tiny pickles
  static constexpr uint64_t kMaxUnits = 1u << 22;  // ... and never more than this many in all

  // `source` (the file name, with the part being read) prefixes every message.
  explicit TorchUnpickler(std::string source);
  TorchUnpickler(const TorchUnpickler&) = delete;
  TorchUnpickler& operator=(const TorchUnpickler&) = delete;

  // Unpickles the pickle starting at data[0] (at most `size` bytes) and returns its value, owned by this
  // reader. `*consumed` is set to the bytes up to and including STOP. `base` is the pickle's offset in
  // the file, so that messages give file offsets. Throws FormatError.
  const PyValue& load(const uint8_t* data, size_t size, size_t* consumed = nullptr, size_t base = 0);

  // Storages named by persistent ids so far (one entry per distinct root key and view).
  const std::vector<TorchStorageRef>& storages() const { return storages_; }
  // The first storage naming root key `key` (every view of a root agrees on its dtype and size), or null.
  const TorchStorageRef* find_root(const std::string& key) const;
  const std::string& source() const { return source_; }

 private:
  struct Frame;
  PyValue* make(PyValue::Kind k, Frame& f);
  void charge(uint64_t units, Frame& f);
  PyValue* persistent_load(const PyValue& pid, Frame& f);
  PyValue* reduce(const PyValue& callable, const PyValue& args, Frame& f);
  PyValue* rebuild_tensor(const std::string& fn, const PyValue& args, Frame& f);

  std::string source_;
  std::vector<std::unique_ptr<PyValue>> arena_;
  PyValue none_, true_, false_;  // shared by every NONE, NEWTRUE, NEWFALSE
  uint64_t units_ = 0;           // values, container items and memo entries made so far
  uint64_t bytes_read_ = 0;      // pickle bytes of earlier load() calls
  std::vector<TorchStorageRef> storages_;
  std::unordered_map<std::string, size_t> storage_index_;  // "key" or "key/view" -> storages_ index
  std::unordered_map<std::string, size_t> root_index_;     // root key -> first storages_ index
};

}  // namespace npcore
