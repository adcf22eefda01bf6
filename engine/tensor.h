#pragma once
// A minimal dense float32 tensor (torch.Tensor's role for inference): row-major shape of rank <= 6,
// 64-byte-aligned shared storage, and cheap views. Activations are NCHW. A view of a batch slice or of a
// channel range keeps each image dense (C*H*W floats in a row) but may step between images by more than
// one image: batch_stride() says by how much. Kernels therefore walk images through image(n).
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

namespace npcore {

// Tensor shape of rank 0..6 without heap allocation (views are made in hot paths).
class Shape {
 public:
  static constexpr int kMaxRank = 6;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  template <class It>
  Shape(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<int64_t>(*first));
  }

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t& operator[](int i) { return d_[i]; }
  int64_t numel() const;
  void push_back(int64_t v);
  const int64_t* begin() const { return d_.data(); }
  const int64_t* end() const { return d_.data() + rank_; }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[2, 1, 36, 64]"

 private:
  int rank_ = 0;
  std::array<int64_t, kMaxRank> d_{};
};

// Dense float32 tensor with shared, 64-byte-aligned storage.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const Shape& shape);  // allocates, zero-filled
  // Wraps memory the caller owns (no copy); batch_stride 0 means dense.
  static Tensor wrap(float* data, const Shape& shape, int64_t batch_stride = 0);

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  bool empty() const { return data_ == nullptr; }
  float* data() const { return data_; }

  // Elements from one entry of dim 0 to the next; equals numel()/dim(0) when dense.
  int64_t batch_stride() const { return batch_stride_; }
  int64_t image_size() const;  // elements of one dim-0 entry (C*H*W for NCHW)
  bool contiguous() const { return shape_.rank() == 0 || batch_stride_ == image_size(); }
  float* image(int64_t n) const { return data_ + n * batch_stride_; }

  // NCHW accessors.
  int64_t n() const { return shape_[0]; }
  int64_t c() const { return shape_[1]; }
  int64_t h() const { return shape_[2]; }
  int64_t w() const { return shape_[3]; }

  // View of entries [first, first+count) of dim 0.
  Tensor batch(int64_t first, int64_t count) const;
  // View of channels [first, first+count) of an NCHW tensor.
  Tensor channels(int64_t first, int64_t count) const;
  // View with another shape of the same numel (dense tensors only).
  Tensor reshape(const Shape& shape) const;
  // Dense copy.
  Tensor clone() const;
  // Copies values from a tensor of the same shape (either may be a view).
  void copy_from(const Tensor& src);
  void fill(float v);

 private:
  std::shared_ptr<float> storage_;
  float* data_ = nullptr;
  Shape shape_;
  int64_t batch_stride_ = 0;
};

// 64-byte-aligned float buffer owned by a unique_ptr (workspaces, packed weights).
struct AlignedFree {
  void operator()(void* p) const;
};
using AlignedBuffer = std::unique_ptr<float[], AlignedFree>;
AlignedBuffer aligned_floats(size_t count);  // uninitialised
// Element counts rounded up to whole cache lines, for carving one scratch buffer into several.
inline size_t round_floats(size_t n) { return (n + 15) / 16 * 16; }

}  // namespace npcore
