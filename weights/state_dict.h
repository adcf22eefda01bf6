#pragma once
// A PyTorch state_dict as read from a file: named tensors of any dtype and rank, with the bytes kept in
// the file's memory map (or another owner) rather than copied. Layers pull float32 copies of their
// parameters out of it; WeightSpec checks it strictly against what a core expects.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "weights/text_util.h"

namespace npcore {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };
const char* dtype_name(DType d);  // safetensors spelling: "F32", "I64", ...
size_t dtype_size(DType d);
// Parses a safetensors dtype name; returns false if unknown.
bool parse_dtype(const std::string& s, DType* out);
// F32, F64, F16 or BF16: the dtypes get_float converts.
bool is_float_dtype(DType d);

// How much of a file a reader takes in: everything, or names, dtypes and shapes only (`npcore info`):
// then StoredTensor::data is null wherever the bytes would have to be copied or decompressed, and
// checks that read the data (zip CRCs) are skipped.
enum class TensorData { Load, ShapesOnly };

// One stored tensor: dtype, shape, and a pointer to its little-endian, C-order bytes.
struct StoredTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  std::string shape_str() const;  // "[16, 1, 5, 5]"
};

class StateDict {
 public:
  StateDict() = default;
  explicit StateDict(std::string source) : source_(std::move(source)) {}

  // The file (or description) the tensors came from, for messages.
  const std::string& source() const { return source_; }
  void set_source(std::string s) { source_ = std::move(s); }

  // Keeps `owner` (a memory map, a buffer) alive as long as this state_dict or a copy of it.
  void keep_alive(std::shared_ptr<const void> owner) { owners_.push_back(std::move(owner)); }
  // Adds a tensor; throws FormatError on a duplicate name.
  void add(const std::string& name, StoredTensor t);
  // Adds a float32 tensor whose bytes this state_dict owns (tests, converters, deterministic init).
  void add_float(const std::string& name, const Tensor& t);

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const StoredTensor* find(const std::string& name) const;
  // Throws WeightError naming the key and the source if absent.
  const StoredTensor& at(const std::string& name) const;
  // A float32 copy of a floating-point tensor (F32, F64, F16, BF16 converted); throws WeightError
  // naming the key and the file if absent, of an integer dtype, of rank above Shape::kMaxRank, or too
  // large to allocate.
  Tensor get_float(const std::string& name) const;

  const std::map<std::string, StoredTensor>& tensors() const { return tensors_; }
  // Names in the order the file lists them.
  const std::vector<std::string>& order() const { return order_; }
  size_t size() const { return tensors_.size(); }

 private:
  std::string source_;
  std::map<std::string, StoredTensor> tensors_;
  std::vector<std::string> order_;
  std::vector<std::shared_ptr<const void>> owners_;
};

// Converts n values of `src` (any floating dtype) to float32.
void convert_to_float(DType dtype, const uint8_t* src, int64_t n, float* dst);

}  // namespace npcore
