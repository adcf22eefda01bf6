#include "engine/tensor.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/error.h"

namespace npcore {

Shape::Shape(std::initializer_list<int64_t> dims) {
  for (int64_t v : dims) push_back(v);
}

void Shape::push_back(int64_t v) {
  if (rank_ == kMaxRank)
    throw ShapeError("shape " + str() + ": cannot add a dimension, the rank limit is " + std::to_string(kMaxRank));
  d_[rank_++] = v;
}

int64_t Shape::numel() const {
  // Checked: a configuration or file with absurd sizes must fail here, not wrap around to a small
  // allocation that is then overrun.
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) {
    if (d_[i] < 0) throw ShapeError("shape " + str() + ": negative dimension");
    if (d_[i] != 0 && n > (int64_t(1) << 62) / d_[i])
      throw ShapeError("shape " + str() + ": more than 2^62 elements");
    n *= d_[i];
  }
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (d_[i] != o.d_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(d_[i]);
  }
  return s + "]";
}

void AlignedFree::operator()(void* p) const { std::free(p); }

AlignedBuffer aligned_floats(size_t count) {
  if (count > (size_t(1) << 60) / sizeof(float))
    throw ResourceError("cannot allocate " + std::to_string(count) + " floats (more than 2^60 bytes)");
  size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
  if (bytes == 0) bytes = 64;
  // Large buffers (workspaces, activations, packed weights) on 2 MiB boundaries, their whole 2 MiB pages
  // marked for transparent huge pages: the kernels sweep megabytes per layer, and 4 KiB pages would cost
  // TLB misses. Only the whole pages: the tail past the last 2 MiB boundary stays in 4 KiB pages, so that
  // a buffer's resident size is its own size, not rounded up to 2 MiB (a 4.3 MB FFT weight pack would
  // otherwise hold 6 MiB; tests/test_tensor.cpp checks this).
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes >= 2 * kHuge) {
    bytes = (bytes + 4095) / 4096 * 4096;
    // posix_memalign, not aligned_alloc: the size is not a multiple of the alignment, which C11's
    // aligned_alloc requires (glibc lets it pass; AddressSanitizer's allocator returns null).
    void* p = nullptr;
    if (::posix_memalign(&p, kHuge, bytes) != 0 || !p)
      throw ResourceError("out of memory allocating " + std::to_string(bytes) + " bytes");
    ::madvise(p, bytes / kHuge * kHuge, MADV_HUGEPAGE);  // advice only; failure is harmless
    return AlignedBuffer(static_cast<float*>(p));
  }
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw ResourceError("out of memory allocating " + std::to_string(bytes) + " bytes");
  return AlignedBuffer(static_cast<float*>(p));
}

Tensor::Tensor(const Shape& shape) : shape_(shape) {
  for (int64_t d : shape)
    if (d < 0) throw ShapeError("tensor: negative dimension in " + shape.str());
  int64_t n = shape.numel();
  AlignedBuffer buf = aligned_floats(static_cast<size_t>(n));
  if (n) std::memset(buf.get(), 0, static_cast<size_t>(n) * sizeof(float));
  data_ = buf.get();
  storage_ = std::shared_ptr<float>(buf.release(), AlignedFree{});
  batch_stride_ = image_size();
}

Tensor Tensor::wrap(float* data, const Shape& shape, int64_t batch_stride) {
  Tensor t;
  t.data_ = data;
  t.shape_ = shape;
  t.batch_stride_ = batch_stride ? batch_stride : t.image_size();
  return t;
}

int64_t Tensor::image_size() const {
  if (shape_.rank() == 0) return 1;
  int64_t n = 1;
  for (int i = 1; i < shape_.rank(); ++i) n *= shape_[i];
  return n;
}

Tensor Tensor::batch(int64_t first, int64_t count) const {
  if (rank() < 1 || first < 0 || count < 0 || first + count > shape_[0])
    throw ShapeError("tensor " + shape_.str() + ": batch slice [" + std::to_string(first) + ", " +
                     std::to_string(first + count) + ") out of range");
  Tensor v = *this;
  v.data_ = data_ + first * batch_stride_;
  v.shape_[0] = count;
  return v;
}

Tensor Tensor::channels(int64_t first, int64_t count) const {
  if (rank() != 4 || first < 0 || count < 0 || first + count > shape_[1])
    throw ShapeError("tensor " + shape_.str() + ": channel range [" + std::to_string(first) + ", " +
                     std::to_string(first + count) + ") out of range");
  Tensor v = *this;
  v.data_ = data_ + first * shape_[2] * shape_[3];
  v.shape_[1] = count;
  return v;  // batch_stride_ unchanged: images keep their full stride
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (!contiguous()) throw ShapeError("tensor " + shape_.str() + ": cannot reshape a strided view");
  if (shape.numel() != numel())
    throw ShapeError("tensor " + shape_.str() + ": cannot reshape to " + shape.str());
  Tensor v = *this;
  v.shape_ = shape;
  v.batch_stride_ = v.image_size();
  return v;
}

Tensor Tensor::clone() const {
  Tensor t(shape_);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.shape() != shape_)
    throw ShapeError("tensor copy: shape " + src.shape().str() + " into " + shape_.str());
  if (numel() == 0) return;
  if (rank() == 0) {
    *data_ = *src.data_;
    return;
  }
  const int64_t img = image_size();
  for (int64_t i = 0; i < shape_[0]; ++i)
    std::memmove(image(i), src.image(i), static_cast<size_t>(img) * sizeof(float));
}

void Tensor::fill(float v) {
  if (rank() == 0) {
    if (data_) *data_ = v;
    return;
  }
  const int64_t img = image_size();
  for (int64_t i = 0; i < shape_[0]; ++i) {
    float* p = image(i);
    for (int64_t j = 0; j < img; ++j) p[j] = v;
  }
}

}  // namespace npcore
