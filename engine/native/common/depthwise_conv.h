// The depthwise convolution (groups = in_channels = out_channels; any kernel size, stride, padding and
// dilation) on plain NCHW, over vector traits V, vectorised along the output row. A channel's rows are
// first copied into a zero-bordered scratch plane, split by column phase for strides > 1 (padded column x
// goes to phase x % sw, slot x / sw), so that output pixels ow .. ow + W - 1 read the W contiguous slots
// from ow + (kw dw) / sw of phase (kw dw) % sw for every stride. With stride 1 and dilation 1 down the
// columns and stride 1 along the rows, output rows go in groups of 4 (depthwise_tileR): each input vector,
// loaded once per tap into a register, feeds the FMAs of every row of the group that reads it (4 x NV
// accumulators, NV = 3 on AVX2 and 6 on AVX-512, from V::kRegs; for 3x3 about 0.85 and 0.65 loads,
// broadcasts included, per FMA); otherwise each output row sums its KH*KW taps in up to 8 accumulators
// at a time (depthwise_tile: one broadcast weight, 8 loads and FMAs per tap). Bias and activation are
// applied in registers before the (masked, for the row's tail) store. The
// free functions are shared with the fused depth-separable block (depth_separable.h).
#pragma once
#include <cstring>

#include "engine/native/common/simd_math.h"
#include "engine/parallel.h"

namespace npcore::native::NPCORE_ISA_NS {

// The scratch layout of one channel's padded rows: `phase` floats per column phase, sw phases per row.
struct DepthwiseLayout {
  int64_t phase = 0, row = 0;
  // For `OW` output columns from an input of width `Wd`: every slot a vector load of a row tile reads,
  // and every padded input column.
  DepthwiseLayout(const Conv2dParams& p, int64_t Wd, int64_t OW, int W) {
    const int64_t sw = p.stride_w;
    int64_t len = (OW + W - 1) / W * W + ((p.kernel_w - 1) * p.dilation_w) / sw + 1;
    const int64_t cover = (Wd + 2 * p.pad_w + sw - 1) / sw;
    if (cover > len) len = cover;
    phase = (len + 15) / 16 * 16;
    row = phase * sw;
  }
  DepthwiseLayout() = default;
};

// Padded rows [r0, r1) (padded row r is image row r - pad_h) of one channel into buf [r1 - r0][L.row]:
// x holds image rows [h0, h1) of width Wd (row stride Wd, x at row h0); rows outside them are zeros.
inline void depthwise_pad(const Conv2dParams& p, const DepthwiseLayout& L, const float* x, int64_t h0, int64_t h1,
                          int64_t Wd, int64_t r0, int64_t r1, float* buf) {
  const int64_t sw = p.stride_w, pw = p.pad_w;
  for (int64_t r = r0; r < r1; ++r) {
    float* b = buf + (r - r0) * L.row;
    const int64_t h = r - p.pad_h;
    if (h < h0 || h >= h1) {
      std::memset(b, 0, sizeof(float) * size_t(L.row));
      continue;
    }
    const float* src = x + (h - h0) * Wd;
    if (sw == 1) {
      std::memset(b, 0, sizeof(float) * size_t(pw));
      std::memcpy(b + pw, src, sizeof(float) * size_t(Wd));
      std::memset(b + pw + Wd, 0, sizeof(float) * size_t(L.row - pw - Wd));
      continue;
    }
    for (int64_t ph = 0; ph < sw; ++ph) {
      float* d = b + ph * L.phase;
      for (int64_t s = 0; s < L.phase; ++s) {
        const int64_t col = s * sw + ph - pw;
        d[s] = col >= 0 && col < Wd ? src[col] : 0.0f;
      }
    }
  }
}

// The padded rows an output row's taps read: a plane of consecutive rows (ring = 0), or a ring of `ring`
// rows in which padded row r sits at slot r % ring (the fused block's pw1 output, written in place).
struct DepthwiseRows {
  const float* base;
  int64_t first;  // slot of the output row's first tap row
  int64_t step;   // slots between tap rows (dilation_h)
  int64_t ring;   // 0: no wrap
  int64_t stride; // floats per row
  NPCORE_INLINE const float* at(int64_t kh) const {
    int64_t i = first + kh * step;
    if (ring && i >= ring) i -= ring;  // first < ring and kh step < ring
    return base + i * stride;
  }
};

// NV output vectors from vector v0 of the output row whose tap rows are `rows`; the last one stores
// `last` lanes. w: the channel's KH*KW weights.
// KW_: the kernel width when known at compile time with stride_w 1 (taps at kw dw), else 0.
template <class V, int NV, int KW_ = 0>
NPCORE_INLINE void depthwise_tile(const Conv2dParams& p, const DepthwiseLayout& L, const float* w,
                                  const DepthwiseRows& rows, float* dst, int64_t v0, int64_t last,
                                  typename V::reg shift, const Epilogue<V>& ep) {
  constexpr int W = V::W;
  const int64_t KH = p.kernel_h, KW = p.kernel_w, sw = p.stride_w, dw = p.dilation_w;
  typename V::reg acc[NV];
#pragma GCC unroll 8
  for (int q = 0; q < NV; ++q) acc[q] = V::zero();
  for (int64_t kh = 0; kh < KH; ++kh) {
    const float* rr = rows.at(kh) + v0 * W;
    if constexpr (KW_ > 0) {
#pragma GCC unroll 9
      for (int kw = 0; kw < KW_; ++kw) {
        const float* r = rr + kw * dw;
        const auto wv = V::set1(w[kh * KW_ + kw]);
#pragma GCC unroll 8
        for (int q = 0; q < NV; ++q) acc[q] = V::fmadd(wv, V::load(r + W * q), acc[q]);
      }
      continue;
    }
    // Tap kw reads phase (kw dw) % sw from slot (kw dw) / sw, tracked without a division.
    int64_t phase = 0, slot = 0;
    for (int64_t kw = 0; kw < KW; ++kw) {
      const float* r = rr + phase * L.phase + slot;
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
#pragma GCC unroll 8
  for (int q = 0; q < NV; ++q) {
    const auto val = ep.apply(acc[q], shift);
    if (q + 1 < NV || last == W)
      V::store(dst + (v0 + q) * W, val);
    else
      V::store_mask(dst + (v0 + q) * W, V::mask_first(last), val);
  }
}

// Keeps a loaded vector in a register: without it GCC folds the load into each FMA that uses it (one load
// per FMA instead of one per vector) when registers run short.
template <class R>
NPCORE_INLINE void pin_register(R& r) {
  __asm__("" : "+v"(r));
}

// A tile width known at compile time (with_tile_width).
template <int N>
struct TileWidth {
  static constexpr int n = N;
};

// f(TileWidth<n>{}) for a run-time 1 <= n <= MaxN: one instantiation of the tile per width.
template <int MaxN, class F>
NPCORE_INLINE void with_tile_width(int64_t n, F&& f) {
  if constexpr (MaxN > 1) {
    if (n < MaxN) {
      with_tile_width<MaxN - 1>(n, f);
      return;
    }
  }
  f(TileWidth<MaxN>{});
}

// One input row's taps for the output rows JA..JB of an R-row tile (depthwise_tileR): output row j reads
// it as its kernel row i - j, so with wi = w + i KW its weights are wi - j KW. Each input vector is loaded
// once per tap and feeds the JB - JA + 1 rows' FMAs; one broadcast weight per row and tap.
template <class V, int R, int NV, int JA, int JB, int KW_>
NPCORE_INLINE void depthwise_row_taps(typename V::reg (&acc)[R][NV], const float* rr, const float* wi,
                                      int64_t kw_n, int64_t dw) {
  constexpr int W = V::W;
  const int64_t KW = KW_ > 0 ? KW_ : kw_n;
  // Not unrolled: GCC would hoist every tap's broadcasts and spill accumulators.
#pragma GCC unroll 1
  for (int64_t kw = 0; kw < KW; ++kw) {
    typename V::reg x[NV];
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) {
      x[q] = V::load(rr + kw * dw + W * q);
      pin_register(x[q]);
    }
#pragma GCC unroll 8
    for (int j = JA; j <= JB; ++j) {
      const auto wv = V::set1(wi[kw - j * KW]);
#pragma GCC unroll 8
      for (int q = 0; q < NV; ++q) acc[j][q] = V::fmadd(wv, x[q], acc[j][q]);
    }
  }
}

// depthwise_row_taps<JA, JB> for run-time ja <= jb (< R).
template <class V, int R, int NV, int KW_, int JA = 0, int JB = 0>
NPCORE_INLINE void depthwise_row_taps_for(int64_t ja, int64_t jb, typename V::reg (&acc)[R][NV],
                                          const float* rr, const float* wi, int64_t kw_n, int64_t dw) {
  if constexpr (JA < R) {
    if constexpr (JB >= R) {
      depthwise_row_taps_for<V, R, NV, KW_, JA + 1, JA + 1>(ja, jb, acc, rr, wi, kw_n, dw);
    } else {
      if (ja == JA && jb == JB) {
        depthwise_row_taps<V, R, NV, JA, JB, KW_>(acc, rr, wi, kw_n, dw);
        return;
      }
      depthwise_row_taps_for<V, R, NV, KW_, JA, JB + 1>(ja, jb, acc, rr, wi, kw_n, dw);
    }
  }
}

// R consecutive output rows at once (stride 1 and dilation 1 down the columns, stride 1 along the rows),
// NV vectors from vector v0: rows oh .. oh + R - 1 read the KH + R - 1 input rows from oh's first tap row,
// and input row i is kernel row i - j of output row j, so each input vector, loaded once per tap, feeds
// up to R rows' FMAs (R NV accumulators, NV input registers, one broadcast weight). Each row's sum runs
// over its taps in the order depthwise_tile takes them (kernel rows, then columns): the same values.
// `rows` are oh's tap rows (rows.at(i) for i < KH + R - 1); dst row stride ld.
template <class V, int R, int NV, int KW_ = 0>
NPCORE_INLINE void depthwise_tileR(const Conv2dParams& p, const float* w, const DepthwiseRows& rows,
                                   float* dst, int64_t ld, int64_t v0, int64_t last, int64_t c,
                                   const Epilogue<V>& ep) {
  constexpr int W = V::W;
  const int64_t KH = p.kernel_h, KW = KW_ > 0 ? KW_ : p.kernel_w, dw = p.dilation_w;
  typename V::reg acc[R][NV];
#pragma GCC unroll 8
  for (int j = 0; j < R; ++j)
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) acc[j][q] = V::zero();
  for (int64_t i = 0; i < KH + R - 1; ++i) {
    const int64_t ja = i - KH + 1 > 0 ? i - KH + 1 : 0, jb = i < R - 1 ? i : R - 1;
    depthwise_row_taps_for<V, R, NV, KW_>(ja, jb, acc, rows.at(i) + v0 * W, w + i * KW, KW, dw);
  }
  const auto shift = ep.shift(c);  // only now: the loops above need every register
#pragma GCC unroll 8
  for (int j = 0; j < R; ++j) {
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) {
      const auto y = ep.apply(acc[j][q], shift);
      if (q + 1 < NV || last == W)
        V::store(dst + j * ld + (v0 + q) * W, y);
      else
        V::store_mask(dst + j * ld + (v0 + q) * W, V::mask_first(last), y);
    }
  }
}

// Output rows depthwise_rows computes at once when it can (stride 1 and dilation 1 down the columns,
// stride 1 along the rows); callers that choose how many rows to ask for take multiples of it.
constexpr int kDepthwiseGroup = 4;

// Output rows [oh0, oh1) of channel c (row stride OW, dst at row oh0) from buf, which holds the padded
// rows from pr0 on; or, with ring > 0, a ring of that many rows in which padded row r is at slot r % ring
// (every row the output rows read present).
template <class V>
void depthwise_rows(const Conv2dParams& p, const DepthwiseLayout& L, const float* w, const float* buf, int64_t pr0,
                    int64_t oh0, int64_t oh1, int64_t OW, float* dst, int64_t c, const Epilogue<V>& ep,
                    int64_t ring = 0, const float* pf = nullptr, int64_t pf_floats = 0) {
  constexpr int W = V::W, PV = 8;
  const int64_t vecs = (OW + W - 1) / W, last = OW - W * (vecs - 1);
  const auto shift = ep.shift(c);
  // Prefetch [pf, pf + pf_floats) (the next channel's rows) a few lines per output row.
  const int64_t pf_per_row = oh1 > oh0 ? (pf_floats / 16 + (oh1 - oh0) - 1) / (oh1 - oh0) : 0;
  int64_t pf_line = 0;
  auto prefetch_rows = [&](int64_t n_rows) {
    for (int64_t k = 0; k < pf_per_row * n_rows && pf_line * 16 < pf_floats; ++k, ++pf_line)
      __builtin_prefetch(pf + pf_line * 16);
  };
  int64_t oh = oh0;
  // Kernel widths 7 and 3 (the cores') with their taps known at compile time.
  auto with_kernel_width = [&](auto&& f) {
    if (p.kernel_w == 7) f(TileWidth<7>{});
    else if (p.kernel_w == 3) f(TileWidth<3>{});
    else f(TileWidth<0>{});
  };
  if (p.stride_h == 1 && p.dilation_h == 1 && p.stride_w == 1) {
    // Groups of R4 rows in tiles of NV4 vectors (R4 NV4 accumulators), then a pair in tiles of NV2. The
    // widths fill the register file: R4 NV4 accumulators + NV4 inputs + 1 weight <= V::kRegs (AVX2: 4 x 3,
    // AVX-512: 4 x 6). Wider tiles mean fewer broadcasts per FMA (1 / NV) and, on AVX-512, one tile for a
    // 56-wide row (4 vectors, where 3 left a 1-vector tile: one broadcast per FMA). Each row's sum takes
    // its taps in the same order whatever the width: the same values.
    constexpr int R4 = kDepthwiseGroup, NV4 = (V::kRegs - 1) / (R4 + 1), NV2 = V::kRegs / 4;
    auto rows_at_once = [&](auto r_tag, auto nv_tag) {
      constexpr int R = decltype(r_tag)::n, NV = decltype(nv_tag)::n;
      for (; oh + R - 1 < oh1; oh += R) {
        float* d = dst + (oh - oh0) * OW;
        const DepthwiseRows row{buf, ring ? oh % ring : oh - pr0, 1, ring, L.row};
        if (pf) prefetch_rows(R);
        with_kernel_width([&](auto kw_tag) {
          constexpr int KW_ = decltype(kw_tag)::n;
          for (int64_t v = 0; v < vecs; v += NV) {
            const int64_t n = vecs - v < NV ? vecs - v : NV, l = v + n == vecs ? last : W;
            with_tile_width<NV>(n, [&](auto t) {
              depthwise_tileR<V, R, decltype(t)::n, KW_>(p, w, row, d, OW, v, l, c, ep);
            });
          }
        });
        for (int j = 0; j < R; ++j) ep.finish(d + j * OW, OW);
      }
    };
    rows_at_once(TileWidth<R4>{}, TileWidth<NV4>{});
    rows_at_once(TileWidth<2>{}, TileWidth<NV2>{});
  }
  for (; oh < oh1; ++oh) {
    float* d = dst + (oh - oh0) * OW;
    const int64_t r = oh * p.stride_h;
    const DepthwiseRows row{buf, ring ? r % ring : r - pr0, p.dilation_h, ring, L.row};
    if (pf) prefetch_rows(1);
    // Tiles of PV vectors; the row's rest in one tile of fewer.
    for (int64_t v = 0; v < vecs; v += PV) {
      const int64_t n = vecs - v < PV ? vecs - v : PV, l = v + n == vecs ? last : W;
      if (n == PV && p.stride_w == 1) {  // the common full tile, taps known at compile time
        with_kernel_width([&](auto kw_tag) {
          depthwise_tile<V, PV, decltype(kw_tag)::n>(p, L, w, row, d, v, l, shift, ep);
        });
        continue;
      }
      with_tile_width<PV>(n, [&](auto t) {
        depthwise_tile<V, decltype(t)::n>(p, L, w, row, d, v, l, shift, ep);
      });
    }
    ep.finish(d, OW);
  }
}

template <class V>
class DepthwiseConv final : public ConvKernel {
 public:
  DepthwiseConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    out_ = p_.output_shape(in, "native depthwise conv");
    wpack_ = shared_pack(spec, PackKey{"depthwise", resolve_isa(spec.isa), {}}, &pack_depthwise_weights);
    epilogue_ = Epilogue<V>(spec.act, spec.bias, p_.out_channels, p_.out_channels);
    L_ = DepthwiseLayout(p_, in[3], out_[3], V::W);
    rows_ = (out_[2] - 1) * p_.stride_h + (p_.kernel_h - 1) * p_.dilation_h + 1;  // every row a tap reads
    threads_ = planned_threads();
  }

  Backend backend() const override { return Backend::Native; }
  bool team_safe() const override { return true; }
  std::unique_ptr<RunState> make_state() const override { return nullptr; }
  const float* packed_weights() const override { return wpack_->data(); }
  size_t scratch_floats() const override { return size_t(threads_) * plane_floats(); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    const int64_t C = p_.out_channels, H = in_[2], Wd = in_[3], KK = p_.kernel_h * p_.kernel_w;
    const int64_t jobs = in_[0] * C;
    parallel_for_dynamic(jobs, threads_, [&](int64_t j) {
      const int64_t n = j / C, c = j % C;
      float* buf = scratch + size_t(thread_slot()) * plane_floats();
      depthwise_pad(p_, L_, in.image(n) + c * H * Wd, 0, H, Wd, 0, rows_, buf);
      depthwise_rows<V>(p_, L_, wpack_->data() + c * KK, buf, 0, 0, out_[2], out_[3],
                        out.image(n) + c * out_[2] * out_[3], c, epilogue_);
    });
  }

 private:
  size_t plane_floats() const { return size_t(rows_ * L_.row); }

  Conv2dParams p_;
  Shape in_, out_;
  DepthwiseLayout L_;
  int64_t rows_ = 0;
  PackedRef wpack_;  // shared by the layer's kernels (engine/packed_weights.h)
  Epilogue<V> epilogue_;
  int threads_ = 1;
};

}  // namespace npcore::native::NPCORE_ISA_NS
