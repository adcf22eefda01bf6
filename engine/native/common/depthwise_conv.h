// The depthwise convolution (groups = in_channels = out_channels; any kernel size, stride, padding and
// dilation) on plain NCHW, over vector traits V, vectorised along the output row. A job is one (image,
// channel) plane: it is first copied into the thread's zero-bordered scratch plane, split by column
// phase for strides > 1 (padded column x goes to phase x % sw, slot x / sw), so that output pixels
// ow .. ow + W - 1 read the W contiguous slots from ow + (kw dw) / sw of phase (kw dw) % sw for every
// stride; then each output row sums its KH*KW taps in PV accumulators at a time (one broadcast weight,
// PV loads and FMAs per tap), and the bias and activation are applied in registers before the (masked,
// for the row's tail) store. Nothing is allocated per run.
#pragma once
#include <cstring>

#include "engine/native/common/simd_math.h"
#include "engine/parallel.h"

namespace npcore::native::NPCORE_ISA_NS {

template <class V>
class DepthwiseConv final : public ConvKernel {
 public:
  static constexpr int W = V::W;
  static constexpr int PV = 8;  // output vectors per tile at most: 8 independent FMA chains

  DepthwiseConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    out_ = p_.output_shape(in, "native depthwise conv");
    const int64_t C = p_.out_channels, K = p_.kernel_h * p_.kernel_w;
    wpack_ = pack_depthwise_weights(spec);
    epilogue_ = Epilogue<V>(spec.act, spec.bias, C, C);
    // Rows: every row a tap reads. Phase length: the last vector of a row plus the kernel's reach.
    const int64_t OH = out_[2], OW = out_[3], sw = p_.stride_w;
    rows_ = (OH - 1) * p_.stride_h + (p_.kernel_h - 1) * p_.dilation_h + 1;
    int64_t len = (OW + W - 1) / W * W + ((p_.kernel_w - 1) * p_.dilation_w) / sw + 1;
    const int64_t cover = (in[3] + 2 * p_.pad_w + sw - 1) / sw;  // every padded input column has a slot
    if (cover > len) len = cover;
    phase_ = (len + 15) / 16 * 16;
    row_ = phase_ * sw;
    (void)K;
    threads_ = planned_threads();
  }

  Backend backend() const override { return Backend::Native; }
  std::unique_ptr<RunState> make_state() const override { return nullptr; }
  size_t scratch_floats() const override { return size_t(threads_) * plane_floats(); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    const int64_t C = p_.out_channels, jobs = in_[0] * C;
    const bool par = runs_parallel(jobs, threads_);
    parallel_for(jobs, threads_, [&](int64_t j) {
      const int64_t n = j / C, c = j % C;
      float* buf = scratch + size_t(par ? omp_get_thread_num() : 0) * plane_floats();
      pad_plane(in.image(n) + c * in_[2] * in_[3], buf);
      plane(buf, out.image(n) + c * out_[2] * out_[3], c);
    });
  }

 private:
  size_t plane_floats() const { return size_t(rows_ * row_); }

  // x [H, W] -> buf [rows_][sw phases][phase_], zeros around the image.
  void pad_plane(const float* x, float* buf) const {
    const int64_t H = in_[2], Wd = in_[3], sw = p_.stride_w, pw = p_.pad_w;
    for (int64_t r = 0; r < rows_; ++r) {
      float* b = buf + r * row_;
      const int64_t h = r - p_.pad_h;
      if (h < 0 || h >= H) {
        std::memset(b, 0, sizeof(float) * size_t(row_));
        continue;
      }
      const float* src = x + h * Wd;
      if (sw == 1) {
        std::memset(b, 0, sizeof(float) * size_t(pw));
        std::memcpy(b + pw, src, sizeof(float) * size_t(Wd));
        std::memset(b + pw + Wd, 0, sizeof(float) * size_t(row_ - pw - Wd));
        continue;
      }
      for (int64_t ph = 0; ph < sw; ++ph) {
        float* d = b + ph * phase_;
        for (int64_t s = 0; s < phase_; ++s) {
          const int64_t col = s * sw + ph - pw;
          d[s] = col >= 0 && col < Wd ? src[col] : 0.0f;
        }
      }
    }
  }

  void plane(const float* buf, float* y, int64_t c) const {
    const int64_t OH = out_[2], OW = out_[3];
    const int64_t vecs = (OW + W - 1) / W, last = OW - W * (vecs - 1);
    for (int64_t oh = 0; oh < OH; ++oh) {
      float* dst = y + oh * OW;
      // Tiles of PV vectors; the row's rest in one tile of up to PV - 1 (a 56-wide row: one tile of 7).
      for (int64_t v = 0; v < vecs; v += PV) {
        const int64_t n = vecs - v < PV ? vecs - v : PV, l = v + n == vecs ? last : W;
        switch (n) {
          case 1: tile<1>(buf, dst, oh, c, v, l); break;
          case 2: tile<2>(buf, dst, oh, c, v, l); break;
          case 3: tile<3>(buf, dst, oh, c, v, l); break;
          case 4: tile<4>(buf, dst, oh, c, v, l); break;
          case 5: tile<5>(buf, dst, oh, c, v, l); break;
          case 6: tile<6>(buf, dst, oh, c, v, l); break;
          case 7: tile<7>(buf, dst, oh, c, v, l); break;
          default: tile<PV>(buf, dst, oh, c, v, l); break;
        }
      }
      epilogue_.finish(dst, OW);
    }
  }

  // NV output vectors of row oh from vector v0; the last one stores `last` lanes.
  template <int NV>
  NPCORE_INLINE void tile(const float* buf, float* dst, int64_t oh, int64_t c, int64_t v0, int64_t last) const {
    const int64_t KH = p_.kernel_h, KW = p_.kernel_w, sw = p_.stride_w, dh = p_.dilation_h, dw = p_.dilation_w;
    typename V::reg acc[NV];
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) acc[q] = V::zero();
    const float* w = wpack_.get() + c * KH * KW;
    for (int64_t kh = 0; kh < KH; ++kh) {
      const float* row = buf + (oh * p_.stride_h + kh * dh) * row_ + v0 * W;
      // Tap kw reads phase (kw dw) % sw from slot (kw dw) / sw, tracked without a division.
      int64_t phase = 0, slot = 0;
      for (int64_t kw = 0; kw < KW; ++kw) {
        const float* r = row + phase * phase_ + slot;
        const auto wv = V::set1(w[kh * KW + kw]);
#pragma GCC unroll 8
        for (int q = 0; q < NV; ++q) acc[q] = V::fmadd(wv, V::load(r + W * q), acc[q]);
        phase += dw;
        while (phase >= sw) {
          phase -= sw;
          ++slot;
        }
      }
    }
    const auto sin = epilogue_.shift(c);
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) {
      const auto val = epilogue_.apply(acc[q], sin);
      if (q + 1 < NV || last == W)
        V::store(dst + (v0 + q) * W, val);
      else
        V::store_mask(dst + (v0 + q) * W, V::mask_first(last), val);
    }
  }

  Conv2dParams p_;
  Shape in_, out_;
  int64_t rows_ = 0, phase_ = 0, row_ = 0;
  AlignedBuffer wpack_;
  Epilogue<V> epilogue_;
  int threads_ = 1;
};

}  // namespace npcore::native::NPCORE_ISA_NS
