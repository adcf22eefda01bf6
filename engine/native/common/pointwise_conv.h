// The 1x1 convolution (stride 1, no padding, groups 1) as a GEMM over channels on plain NCHW:
// out[co, px] = sum_ci W[co, ci] x[ci, px], each image's H*W pixels taken as one long row. A micro-tile
// holds OCB output channels x PV vectors of pixels in OCB*PV accumulators; for every input channel it
// loads PV input vectors, broadcasts OCB weights (packed [OC/OCB][IC][OCB], pack_pointwise_weights) and
// issues OCB*PV FMAs. A thread's job is a run of pixel tiles of one image: it copies their pixels of
// every input channel into a contiguous panel in its scratch (L1-sized), then runs every output-channel
// block over the panel, so the input is read from memory once and the packed weights stay in L1/L2. The
// bias and activation are applied in registers before the (masked, for the plane's tail) store.
#pragma once
#include <cstring>

#include "engine/native/common/simd_math.h"
#include "engine/parallel.h"

namespace npcore::native::NPCORE_ISA_NS {

// One micro-tile: OCB output channels (block b of the weights packed by pack_pointwise_weights, channels
// oc0 = b OCB ..., of OC) x PV vectors of pixels read from xp (channel stride ld, PV W readable floats per
// channel); the first n pixels are stored at dst (channel stride dst_ld) after the epilogue.
// M: the epilogue's mode (Epilogue::mode()).
template <class V, int OCB, int PV, int M>
NPCORE_INLINE void pointwise_tile(const float* wpack, int64_t IC, int64_t OC, int64_t b, const float* xp, int64_t ld,
                                  float* dst, int64_t dst_ld, int64_t n, const Epilogue<V>& ep) {
  constexpr int W = V::W;
  typename V::reg acc[OCB][PV];
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 4
    for (int q = 0; q < PV; ++q) acc[o][q] = V::zero();
  // Two-level summation as in direct_conv.h: registers sum at most kChunk input channels, then are added
  // to a running total in L1. 64 terms, fewer than the direct conv's chains (16 channels x k taps: 112 for
  // 7x7, 81 for the 1-channel 9x9 input layer; docs/ACCURACY.md): a 64-channel 1x1 sums in registers alone.
  constexpr int64_t kChunk = 64;
  alignas(64) float total[OCB][PV * W];
  bool first = true;
  const float* w = wpack + size_t(b) * size_t(IC * OCB);
  for (int64_t ic0 = 0; ic0 < IC; ic0 += kChunk) {
    const int64_t ic1 = ic0 + kChunk < IC ? ic0 + kChunk : IC;
    for (int64_t ic = ic0; ic < ic1; ++ic, w += OCB) outer_fma<V, OCB, PV>(acc, w, xp + ic * ld);
    if (ic1 == IC) break;  // the last chunk stays in registers
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 4
      for (int q = 0; q < PV; ++q) {
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
      for (int q = 0; q < PV; ++q) acc[o][q] = V::add(V::load(&total[o][W * q]), acc[o][q]);
  }
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o) {
    const int64_t oc = b * OCB + o;
    if (oc >= OC) break;
    float* d = dst + oc * dst_ld;
    const auto sin = ep.shift(oc);
#pragma GCC unroll 4
    for (int q = 0; q < PV; ++q) {
      const auto v = ep.template apply_m<M>(acc[o][q], sin);
      const int64_t k = n - int64_t(W) * q;  // lanes of this vector to store
      if (k >= W)
        V::store(d + W * q, v);
      else if (k > 0)
        V::store_mask(d + W * q, V::mask_first(k), v);
    }
    ep.finish(d, n);
  }
}

// The last n < PV W pixels of a panel in a micro-tile of just the vectors they need (nv of them), so that a
// short rest (a row's tail in the fused block) does not run a whole tile: the same sums, fewer FMAs.
template <class V, int OCB, int PV, int M>
NPCORE_INLINE void pointwise_rest(const float* wpack, int64_t IC, int64_t OC, int64_t b, const float* xp, int64_t ld,
                                  float* dst, int64_t dst_ld, int64_t n, const Epilogue<V>& ep) {
  if constexpr (PV == 1) {
    pointwise_tile<V, OCB, 1, M>(wpack, IC, OC, b, xp, ld, dst, dst_ld, n, ep);
  } else {
    if (n > int64_t(PV - 1) * V::W)
      pointwise_tile<V, OCB, PV, M>(wpack, IC, OC, b, xp, ld, dst, dst_ld, n, ep);
    else
      pointwise_rest<V, OCB, PV - 1, M>(wpack, IC, OC, b, xp, ld, dst, dst_ld, n, ep);
  }
}

// Every output channel over a panel of `valid` pixels (readable up to a multiple of V::W; channel stride
// ld), storing them at dst (channel stride dst_ld): channel blocks outer, so one block's weights stay in L1
// while the tiles stream by.
template <class V, int OCB, int PV, int M>
void pointwise_panel_m(const float* wpack, int64_t blocks, int64_t IC, int64_t OC, const float* panel, int64_t ld,
                       int64_t valid, float* dst, int64_t dst_ld, const Epilogue<V>& ep) {
  using E = Epilogue<V>;
  // ELU: the tiles store acc - shift, then Epilogue::elu_rows finishes the block's rows while they are in L1
  // (same bits as apply_m<kElu> in registers, fewer spills).
  constexpr int TM = M == E::kElu ? int(E::kShift) : M;
  constexpr int64_t kTile = int64_t(PV) * V::W;
  const int64_t full = valid / kTile * kTile;
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t t = 0; t < full; t += kTile)
      pointwise_tile<V, OCB, PV, TM>(wpack, IC, OC, b, panel + t, ld, dst + t, dst_ld, kTile, ep);
    if (full < valid)
      pointwise_rest<V, OCB, PV, TM>(wpack, IC, OC, b, panel + full, ld, dst + full, dst_ld, valid - full, ep);
    if constexpr (M == E::kElu) {
      const int64_t rows = OC - b * OCB < OCB ? OC - b * OCB : OCB;
      ep.elu_rows(dst + b * OCB * dst_ld, dst_ld, rows, valid);
    }
  }
}

// The epilogue's mode chosen once per panel.
template <class V, int OCB, int PV>
void pointwise_panel(const float* wpack, int64_t blocks, int64_t IC, int64_t OC, const float* panel, int64_t ld,
                     int64_t valid, float* dst, int64_t dst_ld, const Epilogue<V>& ep) {
  using E = Epilogue<V>;
  switch (ep.mode()) {
    case E::kShift: pointwise_panel_m<V, OCB, PV, E::kShift>(wpack, blocks, IC, OC, panel, ld, valid, dst, dst_ld, ep); break;
    case E::kElu: pointwise_panel_m<V, OCB, PV, E::kElu>(wpack, blocks, IC, OC, panel, ld, valid, dst, dst_ld, ep); break;
    default: pointwise_panel_m<V, OCB, PV, E::kAny>(wpack, blocks, IC, OC, panel, ld, valid, dst, dst_ld, ep); break;
  }
}

template <class V, int OCB, int PV>
class PointwiseConv final : public ConvKernel {
 public:
  static constexpr int W = V::W;
  static constexpr int64_t kTile = int64_t(PV) * W;  // pixels per micro-tile

  PointwiseConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    out_ = p_.output_shape(in, "native pointwise conv");
    wpack_ = shared_pack(spec, PackKey{"pointwise", resolve_isa(spec.isa), {OCB, 0, 0, 0}}, &pack_pointwise_weights);
    blocks_ = wpack_->blocks;
    epilogue_ = Epilogue<V>(spec.act, spec.bias, p_.out_channels, blocks_ * OCB);
    threads_ = planned_threads();
    const int64_t HW = in[2] * in[3];
    tiles_ = (HW + kTile - 1) / kTile;
    // A job's panel (IC x its pixels: 24576 floats, 96 KB, in L2; an L1-sized one measured no faster on
    // Zen 3, whose prefetchers follow the panel's rows), and there are at least 4 jobs per thread
    // over the batch so that a static split stays even.
    int64_t per = 24576 / (p_.in_channels * kTile);
    if (per < 1) per = 1;
    if (per > 64) per = 64;
    while (per > 1 && in[0] * ((tiles_ + per - 1) / per) < int64_t(threads_) * 4) --per;
    tiles_per_job_ = per;
    jobs_per_image_ = (tiles_ + per - 1) / per;
  }

  Backend backend() const override { return Backend::Native; }
  bool team_safe() const override { return true; }
  std::unique_ptr<RunState> make_state() const override { return nullptr; }
  const float* packed_weights() const override { return wpack_->data(); }
  size_t scratch_floats() const override { return size_t(threads_) * panel_floats(); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    const int64_t jobs = in_[0] * jobs_per_image_;
    parallel_for_dynamic(jobs, threads_, [&](int64_t j) {
      const int64_t n = j / jobs_per_image_, t0 = (j % jobs_per_image_) * tiles_per_job_;
      const int64_t t1 = t0 + tiles_per_job_ < tiles_ ? t0 + tiles_per_job_ : tiles_;
      float* panel = scratch + size_t(thread_slot()) * panel_floats();
      job(in.image(n), out.image(n), panel, t0, t1);
    });
  }

 private:
  size_t panel_floats() const { return size_t(p_.in_channels * tiles_per_job_ * kTile); }

  // Tiles [t0, t1) of one image. The input pixels are first copied into a contiguous panel [IC][px]
  // (zero past the plane): the channel planes of a 144x256 image lie 36 x 4 KB apart, so reading them in
  // place maps every channel's row to the same L1 sets. Then every channel block runs over the tiles.
  void job(const float* x, float* y, float* panel, int64_t t0, int64_t t1) const {
    const int64_t IC = p_.in_channels, HW = in_[2] * in_[3], px0 = t0 * kTile;
    const int64_t len = (t1 - t0) * kTile, valid = HW - px0 < len ? HW - px0 : len;
    for (int64_t ic = 0; ic < IC; ++ic) {
      std::memcpy(panel + ic * len, x + ic * HW + px0, sizeof(float) * size_t(valid));
      if (valid < len) std::memset(panel + ic * len + valid, 0, sizeof(float) * size_t(len - valid));
    }
    pointwise_panel<V, OCB, PV>(wpack_->data(), blocks_, IC, p_.out_channels, panel, len, valid, y + px0, HW,
                                epilogue_);
  }

  Conv2dParams p_;
  Shape in_, out_;
  int64_t blocks_ = 0, tiles_ = 0, tiles_per_job_ = 1, jobs_per_image_ = 1;
  PackedRef wpack_;  // shared by the layer's kernels (engine/packed_weights.h)
  Epilogue<V> epilogue_;
  int threads_ = 1;
};

}  // namespace npcore::native::NPCORE_ISA_NS
