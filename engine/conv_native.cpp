// The native backend (engine/conv.h): Winograd (engine/conv_winograd.cpp) where eligible, else this
// direct convolution for stride 1, groups 1, any kernel size, padding and dilation, on plain NCHW in and
// out, else gemm. Vectorised along the output row:
// one micro-tile holds 8 output channels x (PW x 16) output pixels of one row in PW*8 AVX-512
// accumulators; for every (input channel, kh, kw) it loads PW input vectors (the row shifted by kw),
// broadcasts 8 weights and issues 8*PW FMAs. The input is first copied into a zero-bordered buffer (so
// the inner loop has no edge cases), the epilogue adds the bias and applies the activation in registers,
// and nothing is allocated per run. Everything else (strides, groups, non-AVX-512 builds) is delegated to
// the gemm kernel, so this backend runs every convolution.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/conv.h"
#include "engine/error.h"
#include "engine/parallel.h"
#include "engine/winograd.h"

#if defined(__AVX512F__)
#include "engine/intrinsics.h"

#include "engine/simd_math.h"
#endif

namespace npcore {
namespace {

#if defined(__AVX512F__)

constexpr int kOcb = 8;  // output channels per micro-tile (one broadcast weight each)

class NativeConv final : public ConvKernel {
 public:
  NativeConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    out_ = p_.output_shape(in, "native conv");
    const int64_t IC = p_.in_channels, OC = p_.out_channels, KH = p_.kernel_h, KW = p_.kernel_w;
    blocks_ = (OC + kOcb - 1) / kOcb;
    // Weights [OC, IC, KH, KW] -> [OC/8][KH][IC][KW][8] (the order the tile loop reads them), zero-padded
    // past OC.
    const size_t per_block = size_t(IC * KH * KW * kOcb);
    wpack_ = aligned_floats(size_t(blocks_) * per_block);
    std::fill(wpack_.get(), wpack_.get() + size_t(blocks_) * per_block, 0.0f);
    for (int64_t oc = 0; oc < OC; ++oc)
      for (int64_t ic = 0; ic < IC; ++ic)
        for (int64_t kh = 0; kh < KH; ++kh)
          for (int64_t kw = 0; kw < KW; ++kw)
            wpack_[size_t(oc / kOcb) * per_block + size_t(((kh * IC + ic) * KW + kw) * kOcb + oc % kOcb)] =
                simd::flush_subnormal(spec.weight[((oc * IC + ic) * KH + kh) * KW + kw]);
    // The activation's in_shift folds into the bias: f(conv + b - s).
    epilogue_ = simd::Epilogue(spec.act, spec.bias, OC, blocks_ * kOcb);
    // Padded input plane: rows cover every row a kernel tap reads; a row is wide enough for the last
    // vector load of the last tile plus the kernel's reach, rounded to whole vectors.
    const int64_t OW = out_[3];
    rows_ = std::max(in[2] + 2 * p_.pad_h, (out_[2] - 1) + (KH - 1) * p_.dilation_h + 1);
    row_ = ((std::max(in[3] + 2 * p_.pad_w, (OW + 15) / 16 * 16 + (KW - 1) * p_.dilation_w) + 15) / 16) * 16;
    threads_ = planned_threads();
  }

  Backend backend() const override { return Backend::Native; }
  size_t scratch_floats() const override { return size_t(p_.in_channels * rows_ * row_); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    const int64_t N = in_[0];
    for (int64_t n = 0; n < N; ++n) {
      pad_image(in.image(n), scratch);
      compute_image(scratch, out.image(n));
    }
  }

 private:
  // x [IC, H, W] -> scratch [rows_, IC, row_]: padded rows, and within a row all input channels one after
  // another, so that a tile's loop over (kh, ic, kw) walks memory forwards. Zeros around the image.
  void pad_image(const float* x, float* buf) const {
    const int64_t IC = p_.in_channels, H = in_[2], W = in_[3];
    auto padded_row = [&](int64_t r) {
      float* b = buf + r * IC * row_;
      const int64_t h = r - p_.pad_h;
      if (h < 0 || h >= H) {
        std::memset(b, 0, sizeof(float) * size_t(IC * row_));
        return;
      }
      for (int64_t c = 0; c < IC; ++c) {
        float* d = b + c * row_;
        std::memset(d, 0, sizeof(float) * size_t(p_.pad_w));
        std::memcpy(d + p_.pad_w, x + (c * H + h) * W, sizeof(float) * size_t(W));
        std::memset(d + p_.pad_w + W, 0, sizeof(float) * size_t(row_ - p_.pad_w - W));
      }
    };
    parallel_for(rows_, threads_, padded_row);
  }

  void compute_image(const float* buf, float* y) const {
    const int64_t OH = out_[2], jobs = OH * blocks_;
    // Rows outermost: a thread's jobs cover whole rows, so its input rows stay in its cache.
    parallel_for(jobs, threads_, [&](int64_t j) { row_job(buf, y, j / blocks_, j % blocks_); });
  }

  // Output row oh of channels [8b, 8b + 8), in tiles of 3 vectors (48 pixels); a remainder of one vector
  // becomes two tiles of 2 (a 1-vector tile runs at a third of the FMA rate), the last tile masked.
  void row_job(const float* buf, float* y, int64_t oh, int64_t b) const {
    const int64_t OW = out_[3], vecs = (OW + 15) / 16, last = OW - 16 * (vecs - 1);
    int64_t threes = vecs / 3, twos = 0, ones = 0;
    if (vecs % 3 == 2) {
      twos = 1;
    } else if (vecs % 3 == 1) {
      if (threes > 0) {
        --threes;
        twos = 2;
      } else {
        ones = 1;
      }
    }
    int64_t ow = 0;
    for (int64_t t = 0; t < threes; ++t, ow += 48) tile<3>(buf, y, oh, b, ow, twos || ones || t + 1 < threes ? 16 : last);
    for (int64_t t = 0; t < twos; ++t, ow += 32) tile<2>(buf, y, oh, b, ow, t + 1 < twos ? 16 : last);
    if (ones) tile<1>(buf, y, oh, b, ow, last);
  }

  template <int PW>
  void tile(const float* buf, float* y, int64_t oh, int64_t b, int64_t ow, int64_t last) const {
    switch (p_.kernel_w) {  // a compile-time kernel width unrolls the innermost loop
      case 3: tile_k<PW, 3>(buf, y, oh, b, ow, last); break;
      case 5: tile_k<PW, 5>(buf, y, oh, b, ow, last); break;
      case 7: tile_k<PW, 7>(buf, y, oh, b, ow, last); break;
      case 9: tile_k<PW, 9>(buf, y, oh, b, ow, last); break;
      default: tile_k<PW, 0>(buf, y, oh, b, ow, last); break;
    }
  }

  // 8 channels x PW*16 pixels starting at (oh, ow); the last vector stores only `last` lanes. KW_ is the
  // kernel width if known at compile time, else 0.
  template <int PW, int KW_>
  void tile_k(const float* buf, float* y, int64_t oh, int64_t b, int64_t ow, int64_t last) const {
    const int64_t IC = p_.in_channels, KH = p_.kernel_h, KW = KW_ ? KW_ : p_.kernel_w;
    const int64_t dh = p_.dilation_h, dw = p_.dilation_w;
    __m512 acc[kOcb][PW];
#pragma GCC unroll 8
    for (int o = 0; o < kOcb; ++o)
#pragma GCC unroll 3
      for (int q = 0; q < PW; ++q) acc[o][q] = _mm512_setzero_ps();
    const float* w = wpack_.get() + size_t(b) * size_t(IC * KH * KW * kOcb);
    for (int64_t kh = 0; kh < KH; ++kh) {
      const float* row = buf + (oh + kh * dh) * IC * row_ + ow;
      for (int64_t ic = 0; ic < IC; ++ic) {
        const float* r = row + ic * row_;
#pragma GCC unroll 9
        for (int64_t kw = 0; kw < KW; ++kw, w += kOcb) simd::outer_fma<kOcb, PW>(acc, w, r + kw * dw);
      }
    }
    // Epilogue: bias and activation in registers, then the store (masked for the row's tail).
    const int64_t OC = p_.out_channels, OHW = out_[2] * out_[3];
    const __mmask16 tail = __mmask16((1u << last) - 1u);
#pragma GCC unroll 8
    for (int o = 0; o < kOcb; ++o) {
      const int64_t oc = b * kOcb + o;
      if (oc >= OC) break;
      float* dst = y + oc * OHW + oh * out_[3] + ow;
      const __m512 sin = epilogue_.shift(oc);
#pragma GCC unroll 3
      for (int q = 0; q < PW; ++q) {
        const __m512 v = epilogue_.apply(acc[o][q], sin);
        if (q + 1 < PW)
          _mm512_storeu_ps(dst + 16 * q, v);
        else
          _mm512_mask_storeu_ps(dst + 16 * q, tail, v);
      }
      epilogue_.finish(dst, 16 * (PW - 1) + last);
    }
  }

  Conv2dParams p_;
  Shape in_, out_;
  int64_t blocks_ = 0, rows_ = 0, row_ = 0;
  AlignedBuffer wpack_;
  simd::Epilogue epilogue_;
  int threads_ = 1;
};

bool direct_supported(const ConvSpec& spec) {
  const Conv2dParams& p = spec.params;
  return p.groups == 1 && p.stride_h == 1 && p.stride_w == 1;
}

#endif  // __AVX512F__

// Delegates to another kernel but reports itself as the native backend.
class DelegatingConv final : public ConvKernel {
 public:
  explicit DelegatingConv(std::unique_ptr<ConvKernel> k) : k_(std::move(k)) {}
  Backend backend() const override { return Backend::Native; }
  size_t scratch_floats() const override { return k_->scratch_floats(); }
  std::unique_ptr<RunState> make_state() const override { return k_->make_state(); }
  void run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const override {
    k_->run(in, out, scratch, state);
  }

 private:
  std::unique_ptr<ConvKernel> k_;
};

}  // namespace

std::unique_ptr<ConvKernel> make_native_conv(const ConvSpec& spec, const Shape& in) {
#if defined(__AVX512F__)
  if (spec.allow_winograd && winograd_eligible(spec, in)) return make_winograd_conv(spec, in);
  if (direct_supported(spec)) return std::make_unique<NativeConv>(spec, in);
#endif
  return std::make_unique<DelegatingConv>(make_gemm_conv(spec, in));
}

}  // namespace npcore
