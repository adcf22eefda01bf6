#include "weights/state_dict.h"

#include <cstring>
#include <new>

#include "engine/error.h"

namespace npcore {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F64:
      return "F64";
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::Bool:
      return "BOOL";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::Bool:
      return 1;
  }
  return 0;
}

bool parse_dtype(const std::string& s, DType* out) {
  static const DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                              DType::I32, DType::I16, DType::I8,  DType::U8,   DType::Bool};
  for (DType d : all)
    if (s == dtype_name(d)) {
      *out = d;
      return true;
    }
  return false;
}

bool is_float_dtype(DType d) {
  return d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16;
}

int64_t StoredTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string StoredTensor::shape_str() const {
  return npcore::shape_str(shape);
}

void StateDict::add(const std::string& name, StoredTensor t) {
  if (!tensors_.emplace(name, std::move(t)).second)
    throw FormatError(source_ + ": tensor '" + printable(name) + "' appears twice");
  order_.push_back(name);
}

void StateDict::add_float(const std::string& name, const Tensor& t) {
  auto bytes = std::make_shared<std::vector<float>>(size_t(t.numel()));
  Tensor dense = t.contiguous() ? t : t.clone();
  if (t.numel()) std::memcpy(bytes->data(), dense.data(), bytes->size() * sizeof(float));
  StoredTensor st;
  st.dtype = DType::F32;
  st.shape.assign(t.shape().begin(), t.shape().end());
  st.data = reinterpret_cast<const uint8_t*>(bytes->data());
  st.nbytes = bytes->size() * sizeof(float);
  keep_alive(bytes);
  add(name, std::move(st));
}

const StoredTensor* StateDict::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const StoredTensor& StateDict::at(const std::string& name) const {
  const StoredTensor* t = find(name);
  if (!t) throw WeightError(source_ + ": missing tensor '" + printable(name) + "'");
  return *t;
}

namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

void convert_to_float(DType dtype, const uint8_t* src, int64_t n, float* dst) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = float(v);
      }
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        dst[i] = half_to_float(v);
      }
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        uint32_t bits = uint32_t(v) << 16;
        std::memcpy(dst + i, &bits, 4);
      }
      return;
    default:
      throw WeightError(std::string("cannot convert ") + dtype_name(dtype) + " to float32");
  }
}

Tensor StateDict::get_float(const std::string& name) const {
  const StoredTensor& st = at(name);
  const std::string where = source_ + ": tensor '" + printable(name) + "' " + st.shape_str();
  if (!is_float_dtype(st.dtype))
    throw WeightError(where + " has dtype " + dtype_name(st.dtype) + ", expected a floating-point dtype");
  if (st.shape.size() > size_t(Shape::kMaxRank))
    throw WeightError(where + " has " + std::to_string(st.shape.size()) + " dimensions; tensors of at most " +
                      std::to_string(Shape::kMaxRank) + " are supported");
  if (!st.data && st.nbytes) throw WeightError(where + ": its data was not read (a shapes-only read)");
  Shape shape(st.shape.begin(), st.shape.end());
  Tensor t;
  try {
    t = Tensor(shape);
  } catch (const ResourceError&) {  // Tensor's allocation failed
    throw WeightError(where + ": cannot allocate " + std::to_string(uint64_t(st.numel()) * sizeof(float)) +
                      " bytes for its float32 copy (out of memory)");
  }
  convert_to_float(st.dtype, st.data, st.numel(), t.data());
  return t;
}

}  // namespace npcore
