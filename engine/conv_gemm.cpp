// Convolution as im2col + GEMM (Caffe's / ggml's conv_2d algorithm) on Eigen's matrix-product kernel.
//
// For one image n and group g, with K = Cin/g * kh * kw and P = OH * OW:
//   out[n, g] [Cout/g, P] = W_g [Cout/g, K] x col(x[n, g]) [K, P]
// The P output pixels are cut into tiles of T so that a [K, T] column tile stays in L2; the jobs
// (image, group, tile) are spread over one OpenMP team, so batch 1 with a large image uses every thread.
// Each job writes bias into its output tile, accumulates the product into it, then applies the activation
// while the tile is still in cache.
//
// Eigen's public product API heap-allocates its packing buffers whenever they exceed 128 KB (nearly every
// conv here), once per call. To keep run() allocation-free the product is driven through Eigen 3.4's
// blocked GEMM routine directly, with the packing buffers carved out of the caller's scratch.
#include <omp.h>

// GCC 12 reports the _mm512_undefined_ps() operands of Eigen's AVX-512 packet code as "maybe
// uninitialized" (a known false positive in its own intrinsics header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/conv.h"
#include "engine/error.h"
#include "engine/packed_weights.h"
#include "engine/parallel.h"

#if !EIGEN_VERSION_AT_LEAST(3, 4, 0) || EIGEN_VERSION_AT_LEAST(3, 5, 0)
#error "conv_gemm.cpp calls Eigen 3.4's internal general_matrix_matrix_product; check its signature"
#endif

namespace npcore {
namespace {

using Index = Eigen::Index;

// Every scratch region starts on a cache line (round_floats): Eigen's packed panels need 64-byte
// alignment with AVX-512.

// Budget for one [K, T] column tile: half of a typical 1-2 MB L2, leaving room for Eigen's packed panels.
constexpr int64_t kColTileFloats = 512 * 1024 / sizeof(float);
// Narrower tiles make the product inefficient (Eigen's micro-kernel is 48 rows wide with AVX-512).
constexpr int64_t kMinTile = 64;

// Eigen's cache blocking with the packing buffers supplied by the caller.
class ScratchBlocking final : public Eigen::internal::level3_blocking<float, float> {
 public:
  ScratchBlocking(Index kc, Index mc, Index nc, float* block_a, float* block_b) {
    m_kc = kc;
    m_mc = mc;
    m_nc = nc;
    m_blockA = block_a;
    m_blockB = block_b;
  }
};

// C += A x B for row-major A, B and C (Eigen's blocked GEMM; strides given per call).
using RowMajorGemm =
    Eigen::internal::general_matrix_matrix_product<Index, float, Eigen::RowMajor, false, float,
                                                   Eigen::RowMajor, false, Eigen::RowMajor, 1>;

// The gemm form: the weights as they are, in an aligned buffer of their own (the kernel outlives spec.weight).
PackedWeights pack_gemm_weights(const ConvSpec& spec, const PackKey&) {
  const Conv2dParams& p = spec.params;
  PackedWeights w;
  w.floats = size_t(p.out_channels * (p.in_channels / p.groups) * p.kernel_h * p.kernel_w);
  w.buffer = aligned_floats(w.floats);
  std::memcpy(w.buffer.get(), spec.weight, w.floats * sizeof(float));
  return w;
}

class GemmConv final : public ConvKernel {
 public:
  GemmConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), act_(spec.act), isa_(resolve_isa(spec.isa)), in_(in) {
    out_ = p_.output_shape(in, "gemm conv");
    icg_ = p_.in_channels / p_.groups;
    ocg_ = p_.out_channels / p_.groups;
    K_ = icg_ * p_.kernel_h * p_.kernel_w;
    P_ = out_[2] * out_[3];
    // A 1x1, stride-1, unpadded conv reads its [Cin/g, H*W] input plane as the column matrix itself.
    direct_ = p_.kernel_h == 1 && p_.kernel_w == 1 && p_.stride_h == 1 && p_.stride_w == 1 && p_.pad_h == 0 &&
              p_.pad_w == 0;

    // Weights as a row-major [Cout, K] matrix: PyTorch's [Cout, Cin/g, kh, kw] layout already is one, with
    // group g's rows at [g*Cout/g, (g+1)*Cout/g).
    weight_ = shared_pack(spec, PackKey{"gemm", Isa::Generic, {}}, &pack_gemm_weights);
    bias_.assign(size_t(p_.out_channels), 0.0f);
    if (spec.bias) std::copy_n(spec.bias, p_.out_channels, bias_.begin());

    threads_ = planned_threads();
    tile_ = choose_tile();
    tiles_ = (P_ + tile_ - 1) / tile_;

    // Eigen computes the row-major product transposed: [T, K] x [K, Cout/g], so rows = T, cols = Cout/g.
    kc_ = K_;
    mc_ = tile_;
    nc_ = ocg_;
    Eigen::internal::computeProductBlockingSizes<float, float, 1>(kc_, mc_, nc_, Index(1));
    col_floats_ = direct_ ? 0 : round_floats(size_t(K_ * tile_));
    a_floats_ = round_floats(size_t(kc_ * mc_));
    b_floats_ = round_floats(size_t(kc_ * nc_));
  }

  Backend backend() const override { return Backend::Gemm; }

  // Per thread: the [K, T] column tile, then Eigen's packed panels of it ([kc, mc]) and of W_g ([kc, nc]).
  size_t scratch_floats() const override { return size_t(threads_) * thread_floats(); }
  const float* packed_weights() const override { return weight_->data(); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Gemm, p_, in_, out_, in, out);
    const int64_t jobs = in_[0] * p_.groups * tiles_;
    parallel_for_dynamic(jobs, threads_,
                         [&](int64_t job) { run_job(in, out, job, scratch + size_t(thread_slot()) * thread_floats()); });
  }

 private:
  // Job (image n, group g, tile t) with this thread's slice of scratch `ws`.
  void run_job(const Tensor& in, Tensor& out, int64_t job, float* ws) const {
    const int64_t groups = p_.groups, plane = in_[2] * in_[3];
    const int64_t n = job / (groups * tiles_), g = job / tiles_ % groups, t = job % tiles_;
    const int64_t p0 = t * tile_, T = std::min(tile_, P_ - p0);
    float* block_a = ws + col_floats_;
    float* block_b = block_a + a_floats_;

    const float* x = in.image(n) + g * icg_ * plane;  // [Cin/g, H, W] of this group
    const float* col;
    Index ldcol;
    if (direct_) {
      col = x + p0;  // [Cin/g, T] with row stride H*W (= P)
      ldcol = P_;
    } else {
      im2col(x, p0, T, ws);  // [K, T], dense
      col = ws;
      ldcol = T;
    }

    float* y = out.image(n) + g * ocg_ * P_ + p0;  // [Cout/g, T] with row stride P
    const float* b = bias_.data() + g * ocg_;
    for (int64_t o = 0; o < ocg_; ++o) std::fill_n(y + o * P_, T, b[o]);
    // y [Cout/g, T] (row stride P) += W_g [Cout/g, K] (row stride K) x col [K, T] (row stride ldcol)
    ScratchBlocking blocking(kc_, mc_, nc_, block_a, block_b);
    RowMajorGemm::run(ocg_, T, K_, weight_->data() + g * ocg_ * K_, K_, col, ldcol, y, 1, P_, 1.0f, blocking,
                      nullptr);
    if (!act_.is_identity())
      for (int64_t o = 0; o < ocg_; ++o) apply_activation(act_, y + o * P_, T, isa_);
  }

  size_t thread_floats() const {
    return col_floats_ + a_floats_ + b_floats_;
  }

  // Output pixels per tile: as many as keep the column tile within budget (at least kMinTile), but small
  // enough that every thread gets a job when there are few images and groups.
  int64_t choose_tile() const {
    int64_t t = std::max(kMinTile, kColTileFloats / K_ / 16 * 16);
    const int64_t per_image_jobs = in_[0] * p_.groups;
    if (per_image_jobs < threads_) {
      const int64_t want_tiles = (threads_ + per_image_jobs - 1) / per_image_jobs;
      const int64_t balanced = ((P_ + want_tiles - 1) / want_tiles + 15) / 16 * 16;
      t = std::min(t, std::max<int64_t>(16, balanced));
    }
    return std::min(t, P_);
  }

  // col [K, T]: row (c, i, j) holds input channel c at kernel offset (i, j) for output pixels p0 .. p0+T-1
  // (flattened oh * OW + ow), zero where that tap falls in the padding. x is the group's [Cin/g, H, W].
  void im2col(const float* x, int64_t p0, int64_t T, float* col) const {
    const int64_t H = in_[2], W = in_[3], OW = out_[3];
    const int64_t sh = p_.stride_h, sw = p_.stride_w;
    for (int64_t c = 0; c < icg_; ++c) {
      const float* xc = x + c * H * W;
      for (int64_t i = 0; i < p_.kernel_h; ++i) {
        const int64_t off_h = i * p_.dilation_h - p_.pad_h;
        for (int64_t j = 0; j < p_.kernel_w; ++j) {
          float* dst = col + ((c * p_.kernel_h + i) * p_.kernel_w + j) * T;
          // Input column of output column ow is ow*sw + off_w; it is inside the image for ow in [lo, hi).
          const int64_t off_w = j * p_.dilation_w - p_.pad_w;
          const int64_t lo = off_w >= 0 ? 0 : (-off_w + sw - 1) / sw;
          const int64_t hi = W - 1 - off_w < 0 ? 0 : std::min(OW, (W - 1 - off_w) / sw + 1);
          for (int64_t p = p0; p < p0 + T;) {
            const int64_t oh = p / OW, ow0 = p % OW, len = std::min(OW - ow0, p0 + T - p);
            float* d = dst + (p - p0);  // d[k] is output column ow0 + k
            const int64_t ih = oh * sh + off_h;
            if (ih < 0 || ih >= H || lo >= hi) {
              std::fill_n(d, len, 0.0f);
            } else {
              const float* xr = xc + ih * W;
              const int64_t a = std::clamp(lo, ow0, ow0 + len), b = std::clamp(hi, ow0, ow0 + len);
              std::fill(d, d + (a - ow0), 0.0f);
              if (sw == 1) {
                std::copy(xr + a + off_w, xr + b + off_w, d + (a - ow0));
              } else {
                for (int64_t ow = a; ow < b; ++ow) d[ow - ow0] = xr[ow * sw + off_w];
              }
              std::fill(d + (b - ow0), d + len, 0.0f);
            }
            p += len;
          }
        }
      }
    }
  }

  Conv2dParams p_;
  Activation act_;
  Isa isa_;
  Shape in_, out_;
  int64_t icg_ = 0, ocg_ = 0, K_ = 0, P_ = 0;
  bool direct_ = false;
  PackedRef weight_;         // [Cout, K], row-major; shared by the layer's kernels (engine/packed_weights.h)
  std::vector<float> bias_;  // [Cout], zeros when the conv has none
  int threads_ = 1;
  int64_t tile_ = 1, tiles_ = 1;
  Index kc_ = 0, mc_ = 0, nc_ = 0;  // Eigen's block sizes for the transposed product
  size_t col_floats_ = 0, a_floats_ = 0, b_floats_ = 0;
};

}  // namespace

std::unique_ptr<ConvKernel> make_gemm_conv(const ConvSpec& spec, const Shape& in) {
  return std::make_unique<GemmConv>(spec, in);
}

}  // namespace npcore
