#include "weights/npy.h"
#include "engine/guard.h"

#include <bit>
#include <cstring>
#include <limits>
#include <new>

#include "engine/error.h"
#include "weights/mapped_file.h"
#include "weights/safetensors.h"
#include "weights/state_dict.h"

namespace npcore {

static_assert(std::endian::native == std::endian::little,
              "the .npy reader and writer assume a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
// numpy >= 1.24 refuses headers longer than this by default (max_header_size), as a guard against
// parsing cost on hostile files; we follow it.
constexpr size_t kMaxHeader = 10000;
constexpr int64_t kMaxDim = int64_t(1) << 56;

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw FormatError(source + ": not a valid .npy file: " + what);
}

// A strict recursive-descent reader of the one Python literal a .npy header is: a dict of string keys
// to a string, a bool or a tuple of non-negative ints. Anything else (names, calls, escapes) is refused.
class HeaderParser {
 public:
  HeaderParser(const char* p, size_t n, const std::string& source) : p_(p), end_(p + n), source_(source) {}

  void parse(NpyHeader* h) {
    bool has_descr = false, has_order = false, has_shape = false;
    ws();
    expect('{', "the header must be a Python dict literal starting with '{'");
    for (;;) {
      ws();
      if (peek() == '}') {
        ++p_;
        break;
      }
      const std::string key = string_literal("a dict key");
      ws();
      expect(':', "expected ':' after the key '" + key + "'");
      ws();
      if (key == "descr") {
        if (has_descr) fail("the key 'descr' appears twice");
        has_descr = true;
        if (peek() == '[')
          fail("'descr' is a list (a structured dtype); only plain float arrays are supported");
        h->descr = string_literal("the value of 'descr'");
      } else if (key == "fortran_order") {
        if (has_order) fail("the key 'fortran_order' appears twice");
        has_order = true;
        h->fortran_order = bool_literal("fortran_order");
      } else if (key == "shape") {
        if (has_shape) fail("the key 'shape' appears twice");
        has_shape = true;
        h->shape = int_tuple();
      } else {
        fail("unexpected key '" + key + "' (the header has exactly 'descr', 'fortran_order' and 'shape')");
      }
      ws();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      ws();
      expect('}', "expected ',' or '}' after the value of '" + key + "'");
      break;
    }
    ws();
    if (p_ != end_) fail("unexpected text after the header dict");
    if (!has_descr || !has_order || !has_shape)
      fail(std::string("the header lacks ") +
           (!has_descr   ? "'descr'"
            : !has_order ? "'fortran_order'"
                         : "'shape'") +
           " (it must have 'descr', 'fortran_order' and 'shape')");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { bad(source_, "header: " + what); }
  char peek() const { return p_ < end_ ? *p_ : '\0'; }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  void expect(char c, const std::string& what) {
    if (peek() != c || p_ == end_) fail(what);
    ++p_;
  }
  std::string string_literal(const std::string& what) {
    const char q = peek();
    if (q != '\'' && q != '"') fail(what + " must be a quoted string");
    ++p_;
    std::string s;
    while (p_ < end_ && *p_ != q) {
      if (*p_ == '\\') fail(what + " contains a backslash escape, which the header never needs");
      if (static_cast<unsigned char>(*p_) < 0x20 || static_cast<unsigned char>(*p_) > 0x7e)
        fail(what + " contains a non-printable or non-ASCII character");
      if (s.size() >= 64) fail(what + " is longer than 64 characters");
      s.push_back(*p_++);
    }
    if (p_ == end_) fail(what + " is an unterminated string");
    ++p_;
    return s;
  }
  bool bool_literal(const std::string& key) {
    auto word = [&](const char* w) {
      const size_t n = std::strlen(w);
      if (size_t(end_ - p_) >= n && std::memcmp(p_, w, n) == 0) {
        p_ += n;
        return true;
      }
      return false;
    };
    if (word("True")) return true;
    if (word("False")) return false;
    fail("'" + key + "' must be True or False");
  }
  int64_t int_literal() {
    if (peek() == '-') fail("'shape' has a negative dimension");
    if (peek() < '0' || peek() > '9') fail("'shape' must be a tuple of non-negative integers");
    if (peek() == '0' && p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9')
      fail("'shape' has an integer with a leading zero, which is not a Python literal");
    int64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      v = v * 10 + (*p_++ - '0');
      if (v > kMaxDim) fail("'shape' has a dimension above 2^56");
    }
    if (peek() == 'L' || peek() == 'l') ++p_;  // Python 2 longs, as old numpy wrote them
    return v;
  }
  std::vector<int64_t> int_tuple() {
    expect('(', "'shape' must be a tuple such as (2, 3) or (5,)");
    std::vector<int64_t> dims;
    bool trailing_comma = false;
    for (;;) {
      ws();
      if (peek() == ')') {
        ++p_;
        break;
      }
      if (!dims.empty() && !trailing_comma) fail("'shape' entries must be separated by ','");
      dims.push_back(int_literal());
      ws();
      trailing_comma = false;
      if (peek() == ',') {
        ++p_;
        trailing_comma = true;
      } else if (peek() != ')') {
        fail("'shape' must be a tuple of non-negative integers");
      }
    }
    if (dims.size() == 1 && !trailing_comma)
      fail("'shape' is (" + std::to_string(dims[0]) + "), a parenthesised int, not a tuple; write (" +
           std::to_string(dims[0]) + ",)");
    return dims;
  }

  const char* p_;
  const char* end_;
  const std::string& source_;
};

std::string shape_tuple(const Shape& s) {
  std::string r = "(";
  for (int i = 0; i < s.rank(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  if (s.rank() == 1) r += ",";
  return r + ")";
}

}  // namespace

static NpyHeader parse_npy_header_unguarded(const uint8_t* data, size_t size, const std::string& source) {
  if (size < kMagicLen + 2 || std::memcmp(data, kMagic, kMagicLen) != 0)
    bad(source, "it does not start with the magic string \\x93NUMPY");
  NpyHeader h;
  h.major = data[6];
  h.minor = data[7];
  if (h.major < 1 || h.major > 3 || h.minor != 0)
    bad(source, "format version " + std::to_string(h.major) + "." + std::to_string(h.minor) +
                    " is not supported (1.0, 2.0 and 3.0 are)");
  const size_t len_bytes = h.major == 1 ? 2 : 4;
  if (size < kMagicLen + 2 + len_bytes)
    bad(source, "the file is " + std::to_string(size) + " bytes, too short for the header length field");
  size_t hlen = 0;
  for (size_t i = 0; i < len_bytes; ++i) hlen |= size_t(data[8 + i]) << (8 * i);
  if (hlen > kMaxHeader)
    bad(source,
        "header length " + std::to_string(hlen) + " exceeds " + std::to_string(kMaxHeader) + " bytes");
  h.data_offset = kMagicLen + 2 + len_bytes + hlen;
  if (h.data_offset > size)
    bad(source, "header length " + std::to_string(hlen) + " runs past the end of the file (" +
                    std::to_string(size) + " bytes)");
  HeaderParser(reinterpret_cast<const char*>(data) + kMagicLen + 2 + len_bytes, hlen, source).parse(&h);

  if (h.descr == "<f4") {
    h.item_size = 4;
  } else if (h.descr == "<f8") {
    h.item_size = 8;
  } else if (h.descr == "<f2") {
    h.item_size = 2;
  } else if (h.descr == ">f4" || h.descr == ">f8" || h.descr == ">f2") {
    bad(source, "dtype '" + h.descr + "' is big-endian; save it little-endian (array.astype('<f4'))");
  } else {
    bad(source,
        "dtype '" + h.descr + "' is not supported (float32 '<f4', or '<f8' / '<f2' converted to float32)");
  }
  if (h.shape.size() > size_t(Shape::kMaxRank))
    bad(source, "shape has " + std::to_string(h.shape.size()) + " dimensions, more than the " +
                    std::to_string(Shape::kMaxRank) + " supported");
  return h;
}

static Tensor parse_npy_unguarded(const uint8_t* data, size_t size, const std::string& source) {
  const NpyHeader h = parse_npy_header(data, size, source);
  if (h.fortran_order)
    bad(source,
        "the array is in Fortran order (fortran_order: True); only C order is supported "
        "(save numpy.ascontiguousarray(a))");
  Shape shape(h.shape.begin(), h.shape.end());
  uint64_t numel = 1;
  for (int64_t d : h.shape) {
    if (d != 0 && numel > uint64_t(kMaxDim) / uint64_t(d))
      bad(source, "shape " + shape.str() + " is too large");
    numel *= uint64_t(d);
  }
  const uint64_t expected = numel * h.item_size, actual = size - h.data_offset;
  if (actual < expected)
    bad(source, "truncated: shape " + shape.str() + " of " + h.descr + " needs " + std::to_string(expected) +
                    " bytes of data after the " + std::to_string(h.data_offset) +
                    "-byte header, the file has " + std::to_string(actual));
  if (actual > expected)
    bad(source, "shape " + shape.str() + " of " + h.descr + " needs " + std::to_string(expected) +
                    " bytes of data after the " + std::to_string(h.data_offset) +
                    "-byte header, the file has " + std::to_string(actual) + " (trailing bytes)");
  Tensor t;
  try {
    t = Tensor(shape);
  } catch (const ResourceError&) {  // Tensor's allocation failed
    throw FormatError(source + ": cannot allocate " + std::to_string(numel * sizeof(float)) +
                      " bytes for the float32 array " + shape.str() + " (out of memory)");
  }
  const DType dt = h.item_size == 4 ? DType::F32 : h.item_size == 8 ? DType::F64 : DType::F16;
  convert_to_float(dt, data + h.data_offset, int64_t(numel), t.data());
  return t;
}

static Tensor read_npy_unguarded(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse_npy(file->data(), file->size(), path);
}

std::string npy_header(const Shape& shape) {
  // numpy 1.24 (_write_array_header): sorted keys, repr values, then room for the first dimension to
  // grow to 21 digits, then spaces and '\n' up to a multiple of 64 bytes counted from the file start.
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  if (shape.rank() > 0) {
    const size_t digits = std::to_string(shape[0]).size();
    if (digits < 21) dict.append(21 - digits, ' ');
  }
  const size_t hlen = dict.size() + 1;  // with the final '\n'
  const size_t pad = 64 - (kMagicLen + 2 + 2 + hlen) % 64;
  dict.append(pad, ' ');
  dict.push_back('\n');
  if (dict.size() > 65535)
    throw FormatError("npy header for shape " + shape.str() + " is too long for version 1.0");
  std::string out(kMagic, kMagicLen);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(char(dict.size() & 0xff));
  out.push_back(char(dict.size() >> 8));
  return out + dict;
}

void write_npy(const std::string& path, const Tensor& t) {
  const std::string header = npy_header(t.shape());
  AtomicFile f(path);
  f.write(header.data(), header.size());
  if (t.numel() > 0) {
    if (t.rank() == 0 || t.contiguous()) {
      f.write(t.data(), size_t(t.numel()) * sizeof(float));
    } else {  // a view: each dim-0 entry is dense, the gaps between them are skipped
      for (int64_t n = 0; n < t.dim(0); ++n) f.write(t.image(n), size_t(t.image_size()) * sizeof(float));
    }
  }
  f.commit();
}

NpyHeader parse_npy_header(const uint8_t* data, size_t size, const std::string& source) {
  return guard_call(source, [&] { return parse_npy_header_unguarded(data, size, source); });
}

Tensor parse_npy(const uint8_t* data, size_t size, const std::string& source) {
  return guard_call(source, [&] { return parse_npy_unguarded(data, size, source); });
}

Tensor read_npy(const std::string& path) {
  return guard_call(path, [&] { return read_npy_unguarded(path); });
}

}  // namespace npcore
