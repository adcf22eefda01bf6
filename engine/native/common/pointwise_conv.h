// The 1x1 convolution (stride 1, no padding, groups 1) as a GEMM over channels on plain NCHW:
// out[co, px] = sum_ci W[co, ci] x[ci, px], each image's H*W pixels taken as one long row. A micro-tile
// holds OCB output channels x PV vectors of pixels in OCB*PV accumulators; for every input channel it
// loads PV input vectors, broadcasts OCB weights (packed [OC/OCB][IC][OCB], pack_pointwise_weights) and
// issues OCB*PV FMAs. A thread's job is a run of pixel tiles of one image; for each tile it walks every
// output-channel block, so the tile's IC*PV vectors are read from memory once and then from L1, and the
// packed weights stay in L1/L2. No input copy, no scratch; the bias and activation are applied in
// registers before the (masked, for the plane's tail) store.
#pragma once
#include "engine/native/common/simd_math.h"
#include "engine/parallel.h"

namespace npcore::native::NPCORE_ISA_NS {

template <class V, int OCB, int PV>
class PointwiseConv final : public ConvKernel {
 public:
  static constexpr int W = V::W;

  PointwiseConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    out_ = p_.output_shape(in, "native pointwise conv");
    wpack_ = pack_pointwise_weights(spec, OCB, &blocks_);
    epilogue_ = Epilogue<V>(spec.act, spec.bias, p_.out_channels, blocks_ * OCB);
    threads_ = planned_threads();
    const int64_t HW = in[2] * in[3], tile = int64_t(PV) * W;
    tiles_ = (HW + tile - 1) / tile;
    // Jobs of several tiles (fewer job boundaries), but at least 4 jobs per thread over the batch so
    // that a static split stays even.
    const int64_t want = int64_t(threads_) * 4;
    int64_t per = 8;
    while (per > 1 && in[0] * ((tiles_ + per - 1) / per) < want) per /= 2;
    tiles_per_job_ = per;
    jobs_per_image_ = (tiles_ + per - 1) / per;
  }

  Backend backend() const override { return Backend::Native; }
  std::unique_ptr<RunState> make_state() const override { return nullptr; }

  void run(const Tensor& in, Tensor& out, float* /*scratch*/, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    parallel_for(in_[0] * jobs_per_image_, threads_, [&](int64_t j) {
      const int64_t n = j / jobs_per_image_, t0 = (j % jobs_per_image_) * tiles_per_job_;
      const int64_t t1 = t0 + tiles_per_job_ < tiles_ ? t0 + tiles_per_job_ : tiles_;
      const float* x = in.image(n);
      float* y = out.image(n);
      for (int64_t t = t0; t < t1; ++t) tile_job(x, y, t);
    });
  }

 private:
  // Pixels [t PV W, ...) of every output channel: full tiles of PV vectors; the plane's last tile as
  // whole vectors of one and a masked last one.
  void tile_job(const float* x, float* y, int64_t t) const {
    const int64_t HW = in_[2] * in_[3], px = t * PV * W;
    if (px + PV * W <= HW) {
      for (int64_t b = 0; b < blocks_; ++b) micro<PV, false>(x, y, b, px, W);
      return;
    }
    for (int64_t p = px; p < HW; p += W) {
      const int64_t n = HW - p < W ? HW - p : W;
      for (int64_t b = 0; b < blocks_; ++b) {
        if (n == W)
          micro<1, false>(x, y, b, p, W);
        else
          micro<1, true>(x, y, b, p, n);
      }
    }
  }

  // OCB channels of block b x NV vectors from pixel px; with Tail the (single) vector has `last` lanes.
  template <int NV, bool Tail>
  void micro(const float* x, float* y, int64_t b, int64_t px, int64_t last) const {
    const int64_t IC = p_.in_channels, HW = in_[2] * in_[3];
    typename V::reg acc[OCB][NV];
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) acc[o][q] = V::zero();
    // Two-level summation as in direct_conv.h: registers sum at most kChunk input channels, then are
    // added to a running total in L1 (float32 chains no longer than PyTorch's blocked sums).
    constexpr int64_t kChunk = 16;
    alignas(64) float total[OCB][NV * W];
    bool first = true;
    const auto tail = V::mask_first(last);
    const float* w = wpack_.get() + size_t(b) * size_t(IC * OCB);
    const float* xp = x + px;
    for (int64_t ic0 = 0; ic0 < IC; ic0 += kChunk) {
      const int64_t ic1 = ic0 + kChunk < IC ? ic0 + kChunk : IC;
      for (int64_t ic = ic0; ic < ic1; ++ic, w += OCB) {
        const float* r = xp + ic * HW;
        if (Tail) {
          const auto xv = V::loadz(tail, r);
#pragma GCC unroll 16
          for (int o = 0; o < OCB; ++o) acc[o][0] = V::fmadd(V::set1(w[o]), xv, acc[o][0]);
        } else {
          outer_fma<V, OCB, NV>(acc, w, r);
        }
      }
      if (ic1 == IC) break;  // the last chunk stays in registers
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) {
          float* s = &total[o][W * q];
          V::store(s, first ? acc[o][q] : V::add(V::load(s), acc[o][q]));
          acc[o][q] = V::zero();
        }
      first = false;
    }
    if (!first) {
#pragma GCC unroll 16
      for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) acc[o][q] = V::add(V::load(&total[o][W * q]), acc[o][q]);
    }
    const int64_t OC = p_.out_channels;
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o) {
      const int64_t oc = b * OCB + o;
      if (oc >= OC) break;
      float* dst = y + oc * HW + px;
      const auto sin = epilogue_.shift(oc);
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) {
        const auto v = epilogue_.apply(acc[o][q], sin);
        if (Tail)
          V::store_mask(dst + W * q, tail, v);
        else
          V::store(dst + W * q, v);
      }
      epilogue_.finish(dst, Tail ? last : int64_t(NV) * W);
    }
  }

  Conv2dParams p_;
  Shape in_, out_;
  int64_t blocks_ = 0, tiles_ = 0, tiles_per_job_ = 1, jobs_per_image_ = 1;
  AlignedBuffer wpack_;
  Epilogue<V> epilogue_;
  int threads_ = 1;
};

}  // namespace npcore::native::NPCORE_ISA_NS
