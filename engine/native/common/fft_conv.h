// Tiled FFT convolution (stride 1, dilation 1, groups 1, kernels 5..9 per side) over vector traits V (see
// simd_math.h). The output is cut into MH x MW tiles (M = T - K + 1, T = 16): tile t's outputs are the
// valid part of the circular correlation of its T x T input patch (zero outside the image) with the
// kernel, computed in the frequency domain:
//   forward   X[f][ic][t] = rFFT2(patch_t,ic)[f]           f < T (T/2 + 1) complex points (u, k)
//   GEMM      Y[f][oc][t] = sum_ic X[f][ic][t] Wc[f][ic][oc]   Wc = conj(FFT2(w)) / T^2, made in double
//   inverse   y_t,oc = irFFT2(Y[.][oc][t]) (the first MH x MW points), + bias, activation, store
// Of the T (T/2 + 1) points, those of the columns k = 0 and T/2 past u = T/2 are conjugates of others and
// are neither stored nor multiplied (130 of 144 points remain for T = 16; kernels.h fft_point).
// Every SIMD lane holds a different tile (a group is GV vectors of tiles, numbered across the whole batch),
// so the FFT butterflies are plain vector arithmetic. Per group, a thread transforms all input channels,
// runs the T (T/2 + 1) complex GEMMs (4 real FMAs per complex multiply-add, OCB output channels x GV
// vectors in registers) and transforms back with the fused epilogue. Each GEMM's result overwrites its
// own input point (one buffer for X and Y), and the run allocates nothing.
//
// Accuracy: the transforms are a few float32 roundings of well-conditioned (unitary up to scale) sums, and
// the channel sums are float32 sums of IC terms per frequency: about as exact as direct summation and
// several times more exact than PyTorch's float32 path (docs/ACCURACY.md).
#pragma once
#include <omp.h>

#include <cstring>

#include "engine/native/common/simd_math.h"
#include "engine/parallel.h"

namespace npcore::native::NPCORE_ISA_NS {

// cos(2 pi k / 16), k < 16.
constexpr float kFftCos16[16] = {1.0f,
                                 0.92387953251128674f,
                                 0.70710678118654752f,
                                 0.38268343236508977f,
                                 0.0f,
                                 -0.38268343236508977f,
                                 -0.70710678118654752f,
                                 -0.92387953251128674f,
                                 -1.0f,
                                 -0.92387953251128674f,
                                 -0.70710678118654752f,
                                 -0.38268343236508977f,
                                 0.0f,
                                 0.38268343236508977f,
                                 0.70710678118654752f,
                                 0.92387953251128674f};

// In-place complex FFT of 16 points per lane, natural order in and out: X[k] = sum_j x[j] e^{-+2 pi i jk/16}
// (minus for the forward transform, plus for the inverse; unnormalised). Radix-2, decimation in time;
// the loops unroll completely, so twiddles 1 and -+i cost no multiplications.
template <class V, bool Inverse>
NPCORE_INLINE void fft16(typename V::reg (&re)[16], typename V::reg (&im)[16]) {
  using reg = typename V::reg;
  constexpr int rev[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i)
    if (i < rev[i]) {
      const reg tr = re[i], ti = im[i];
      re[i] = re[rev[i]];
      im[i] = im[rev[i]];
      re[rev[i]] = tr;
      im[rev[i]] = ti;
    }
#pragma GCC unroll 4
  for (int len = 2; len <= 16; len *= 2) {
    const int half = len / 2, step = 16 / len;
#pragma GCC unroll 8
    for (int s = 0; s < 16; s += len)
#pragma GCC unroll 8
      for (int j = 0; j < half; ++j) {
        const int a = s + j, b = a + half, t = j * step;  // twiddle e^{-+2 pi i t / 16}
        const float c = kFftCos16[t], sn = Inverse ? kFftCos16[(t + 12) % 16] : -kFftCos16[(t + 12) % 16];
        reg br, bi;  // (re[b] + i im[b]) (c + i sn)
        if (t == 0) {
          br = re[b];
          bi = im[b];
        } else if (t == 4) {  // c = 0, sn = -+1
          if (Inverse) {
            br = V::sub(V::zero(), im[b]);
            bi = re[b];
          } else {
            br = im[b];
            bi = V::sub(V::zero(), re[b]);
          }
        } else {
          br = V::fnmadd(im[b], V::set1(sn), V::mul(re[b], V::set1(c)));
          bi = V::fmadd(re[b], V::set1(sn), V::mul(im[b], V::set1(c)));
        }
        re[b] = V::sub(re[a], br);
        im[b] = V::sub(im[a], bi);
        re[a] = V::add(re[a], br);
        im[a] = V::add(im[a], bi);
      }
  }
}

// Complex multiply-accumulate of one point: acc[o][q] += x[q] w[o] for OCB output channels (w: re, im
// pairs) and NV vectors of tiles (x: NV real vectors, then NV imaginary ones, `half` floats apart).
template <class V, int OCB, int NV>
NPCORE_INLINE void complex_outer_fma(typename V::reg (&ar)[OCB][NV], typename V::reg (&ai)[OCB][NV], const float* w,
                                     const float* x, int64_t half) {
  typename V::reg xr[NV], xi[NV];
#pragma GCC unroll 4
  for (int q = 0; q < NV; ++q) {
    xr[q] = V::load(x + V::W * q);
    xi[q] = V::load(x + half + V::W * q);
  }
#pragma GCC unroll 8
  for (int o = 0; o < OCB; ++o) {
    const auto wr = V::set1(w[2 * o]), wi = V::set1(w[2 * o + 1]);
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) {
      ar[o][q] = V::fmadd(xr[q], wr, ar[o][q]);
      ar[o][q] = V::fnmadd(xi[q], wi, ar[o][q]);
      ai[o][q] = V::fmadd(xr[q], wi, ai[o][q]);
      ai[o][q] = V::fmadd(xi[q], wr, ai[o][q]);
    }
  }
}

template <class V, int OCB, int GV>
class FftConv final : public ConvKernel {
 public:
  static constexpr int W = V::W;
  static constexpr int G = GV * W;  // tiles per group
  static constexpr int T = 16;      // input tile side
  static constexpr int K2 = T / 2 + 1;
  static constexpr int F = fft_points(T);  // complex points per tile (130; kernels.h)
  using reg = typename V::reg;

  FftConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    out_ = p_.output_shape(in, "fft conv");
    IC_ = p_.in_channels;
    OC_ = p_.out_channels;
    MH_ = T - p_.kernel_h + 1;
    MW_ = T - p_.kernel_w + 1;
    w_ = shared_pack(spec, PackKey{"fft", resolve_isa(spec.isa), {T, OCB, 0, 0}}, &pack_fft_weights);
    blocks_ = w_->blocks;
    epilogue_ = Epilogue<V>(spec.act, spec.bias, OC_, blocks_ * OCB);
    tiles_h_ = (out_[2] + MH_ - 1) / MH_;
    tiles_w_ = (out_[3] + MW_ - 1) / MW_;
    const int64_t tiles = in_[0] * tiles_h_ * tiles_w_;
    groups_ = (tiles + G - 1) / G;
    threads_ = planned_threads();
    if (threads_ > groups_) threads_ = int(groups_ > 0 ? groups_ : 1);
  }

  Backend backend() const override { return Backend::Native; }
  // Overridden here so that no function of npcore's own namespace is compiled for this ISA.
  std::unique_ptr<RunState> make_state() const override { return nullptr; }

  // One point's channels in the group buffer: [C][re, im][G]; points a cache line more than that apart
  // (a multiple of 4 KiB would put every point of a channel in the same L1 set).
  int64_t point_stride() const {
    const int64_t c = IC_ > blocks_ * OCB ? IC_ : blocks_ * OCB;
    return c * 2 * G + 16;
  }
  // One thread's buffers: the group's points [F][point_stride], one point's GEMM result [OC][2][G], and
  // the input patches / output tiles [T][T][G] and the row spectra [T][K2][2][W].
  size_t thread_floats() const {
    return round_floats(size_t(F) * size_t(point_stride())) + round_floats(size_t(blocks_ * OCB * 2 * G)) +
           round_floats(size_t(T * T * G)) + round_floats(size_t(T * K2 * 2 * W));
  }
  const float* packed_weights() const override { return w_->data(); }
  size_t scratch_floats() const override { return size_t(threads_) * thread_floats(); }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    parallel_for(groups_, threads_, [&](int64_t g) {
      group(in, out, g, scratch + size_t(thread_slot()) * thread_floats());
    });
  }

 private:
  // Where lane l of group g sits: image n, output tile origin (oy, ox); false past the last tile.
  bool tile_of(int64_t g, int l, int64_t* n, int64_t* oy, int64_t* ox) const {
    const int64_t t = g * G + l, per_image = tiles_h_ * tiles_w_;
    if (t >= in_[0] * per_image) return false;
    *n = t / per_image;
    const int64_t r = t % per_image;
    *oy = (r / tiles_w_) * MH_;
    *ox = (r % tiles_w_) * MW_;
    return true;
  }

  void group(const Tensor& in, Tensor& out, int64_t g, float* scratch) const {
    const int64_t ps = point_stride();
    float* Z = scratch;                                                 // [F][C][2][G]
    float* Yp = Z + round_floats(size_t(F) * size_t(ps));               // [OC][2][G]
    float* patch = Yp + round_floats(size_t(blocks_ * OCB * 2 * G));    // [T][T][G]
    float* spec = patch + round_floats(size_t(T * T * G));              // [T][K2][2][W]
    int64_t n[G], oy[G], ox[G];
    int lanes = 0;
    while (lanes < G && tile_of(g, lanes, &n[lanes], &oy[lanes], &ox[lanes])) ++lanes;

    // Forward transforms, channel by channel. With V::kTransposeTiles a lane's patch row is a run of T
    // image floats (masked at the image's sides; zeros above and below it and for lanes past the last
    // tile), loaded as rows of W lanes' columns and transposed in registers into the lane-interleaved
    // layout: scalar stores at a G-float stride (and loads on the way out) took a quarter of the group's
    // time on AVX-512, their count being the same for every width while the FMAs' halves. Without it
    // (AVX2, where the transposes cost more than they save: vec.h), the patches are gathered lane by lane.
    const int64_t H = in_[2], Wd = in_[3];
    if constexpr (V::kTransposeTiles) {
      constexpr int JB = T / W;  // column blocks of a patch row
      int64_t row0[G];           // lane's first patch row's offset in its image's plane
      typename V::mask cmask[G][JB];
      bool cfull[G][JB];
      for (int l = 0; l < G; ++l) {
        const int64_t x0 = l < lanes ? ox[l] - p_.pad_w : 0;
        const int64_t j0 = x0 < 0 ? -x0 : 0, j1 = Wd - x0 < T ? Wd - x0 : T;
        row0[l] = l < lanes ? (oy[l] - p_.pad_h) * Wd + x0 : 0;
        for (int b = 0; b < JB; ++b) {
          const int64_t a = clamp(j0 - b * W, 0, W), e = clamp(j1 - b * W, 0, W);
          cmask[l][b] = V::mask_range(a, a < e ? e : a);
          cfull[l][b] = a == 0 && e == W;
        }
      }
      for (int64_t ic = 0; ic < IC_; ++ic) {
        for (int v = 0; v < GV; ++v) {
          for (int64_t i = 0; i < T; ++i) {
#pragma GCC unroll 2
            for (int b = 0; b < JB; ++b) {
              reg r[W];
#pragma GCC unroll 16
              for (int q = 0; q < W; ++q) {
                const int l = v * W + q;
                const int64_t yy = l < lanes ? oy[l] - p_.pad_h + i : -1;
                if (yy < 0 || yy >= H) {
                  r[q] = V::zero();
                  continue;
                }
                // Masked-off columns (outside the image) are not read.
                const float* src = in.image(n[l]) + ic * H * Wd + row0[l] + i * Wd + b * W;
                r[q] = cfull[l][b] ? V::load(src) : V::loadz(cmask[l][b], src);
              }
              transpose<V>(r);
#pragma GCC unroll 16
              for (int j = 0; j < W; ++j) V::store(patch + (i * T + b * W + j) * G + v * W, r[j]);
            }
          }
          forward(patch + v * W, spec, Z + ic * 2 * G + v * W, ps);
        }
      }
    } else {
      for (int64_t ic = 0; ic < IC_; ++ic) {
        std::memset(patch, 0, sizeof(float) * size_t(T * T * G));
        for (int l = 0; l < lanes; ++l) {
          const int64_t y0 = oy[l] - p_.pad_h, x0 = ox[l] - p_.pad_w;
          const int64_t j0 = x0 < 0 ? -x0 : 0, j1 = Wd - x0 < T ? Wd - x0 : T;
          const float* plane = in.image(n[l]) + ic * H * Wd;
          for (int64_t i = 0; i < T; ++i) {
            const int64_t yy = y0 + i;
            if (yy < 0 || yy >= H) continue;
            const float* src = plane + yy * Wd + x0;
            float* dst = patch + i * T * G + l;
            for (int64_t j = j0; j < j1; ++j) dst[j * G] = src[j];
          }
        }
        for (int v = 0; v < GV; ++v) forward(patch + v * W, spec, Z + ic * 2 * G + v * W, ps);
      }
    }

    // Per point: Y = X Wc, written over X once every output channel block is done.
    for (int64_t f = 0; f < F; ++f) {
      float* zf = Z + f * ps;
      for (int64_t b = 0; b < blocks_; ++b) {
        const float* w = w_->data() + size_t((f * blocks_ + b) * IC_ * OCB * 2);
        reg ar[OCB][GV], ai[OCB][GV];
#pragma GCC unroll 8
        for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 4
          for (int q = 0; q < GV; ++q) ar[o][q] = ai[o][q] = V::zero();
        const float* x = zf;
        for (int64_t ic = 0; ic < IC_; ++ic, x += 2 * G, w += 2 * OCB) complex_outer_fma<V, OCB, GV>(ar, ai, w, x, G);
        float* y = Yp + b * OCB * 2 * G;
#pragma GCC unroll 8
        for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 4
          for (int q = 0; q < GV; ++q) {
            V::store(y + o * 2 * G + W * q, ar[o][q]);
            V::store(y + o * 2 * G + G + W * q, ai[o][q]);
          }
      }
      std::memcpy(zf, Yp, sizeof(float) * size_t(OC_ * 2 * G));
    }

    // Inverse transforms with the epilogue, channel by channel; with V::kTransposeTiles the output tiles
    // leave the lane-interleaved layout through the same in-register transpose as the patches came in
    // (columns past MW_, never written by inverse, are transposed along but not stored).
    const int64_t OH = out_[2], OW = out_[3];
    if constexpr (V::kTransposeTiles) {
      int64_t rows[G], cols[G];
      for (int l = 0; l < lanes; ++l) {
        rows[l] = OH - oy[l] < MH_ ? OH - oy[l] : MH_;
        cols[l] = OW - ox[l] < MW_ ? OW - ox[l] : MW_;
      }
      for (int64_t oc = 0; oc < OC_; ++oc) {
        const reg shift = epilogue_.shift(oc);
        for (int v = 0; v < GV; ++v) inverse(Z + oc * 2 * G + v * W, ps, spec, patch + v * W, shift);
        for (int v = 0; v < GV && v * W < lanes; ++v) {
          for (int64_t i = 0; i < MH_; ++i) {
            for (int64_t b = 0; b * W < MW_; ++b) {
              reg r[W];
#pragma GCC unroll 16
              for (int j = 0; j < W; ++j) r[j] = V::load(patch + (i * T + b * W + j) * G + v * W);
              transpose<V>(r);
#pragma GCC unroll 16
              for (int q = 0; q < W; ++q) {
                const int l = v * W + q;
                if (l >= lanes || i >= rows[l]) continue;
                const int64_t k = cols[l] - b * W;  // columns of this block to store
                float* dst = out.image(n[l]) + (oc * OH + oy[l] + i) * OW + ox[l] + b * W;
                if (k >= W) {
                  V::store(dst, r[q]);
                } else if (k > 0) {
                  V::store_mask(dst, V::mask_first(k), r[q]);
                }
              }
            }
          }
        }
        for (int l = 0; l < lanes; ++l)
          for (int64_t i = 0; i < rows[l]; ++i)
            epilogue_.finish(out.image(n[l]) + (oc * OH + oy[l] + i) * OW + ox[l], cols[l]);
      }
    } else {
      for (int64_t oc = 0; oc < OC_; ++oc) {
        const reg shift = epilogue_.shift(oc);
        for (int v = 0; v < GV; ++v) inverse(Z + oc * 2 * G + v * W, ps, spec, patch + v * W, shift);
        for (int l = 0; l < lanes; ++l) {
          float* plane = out.image(n[l]) + oc * OH * OW;
          const int64_t rows = OH - oy[l] < MH_ ? OH - oy[l] : MH_, cols = OW - ox[l] < MW_ ? OW - ox[l] : MW_;
          for (int64_t i = 0; i < rows; ++i) {
            float* dst = plane + (oy[l] + i) * OW + ox[l];
            const float* src = patch + i * T * G + l;
            for (int64_t j = 0; j < cols; ++j) dst[j] = src[j * G];
            epilogue_.finish(dst, cols);
          }
        }
      }
    }
  }

  // W tiles' patches (p: [T][T], lane stride G) -> their spectra X[f] at z + f * ps (re; im G floats on).
  // Rows first, two at a time as one complex FFT (row a real, row b imaginary), split by symmetry.
  void forward(const float* p, float* spec, float* z, int64_t ps) const {
    const reg half = V::set1(0.5f);
    for (int i = 0; i < T; i += 2) {
      reg re[16], im[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) {
        re[j] = V::load(p + (i * T + j) * G);
        im[j] = V::load(p + ((i + 1) * T + j) * G);
      }
      fft16<V, false>(re, im);
      // A[k] = (Z[k] + conj Z[16-k]) / 2, B[k] = (Z[k] - conj Z[16-k]) / 2i.
#pragma GCC unroll 9
      for (int k = 0; k < K2; ++k) {
        const int m = (16 - k) % 16;
        float* sa = spec + (i * K2 + k) * 2 * W;
        float* sb = spec + ((i + 1) * K2 + k) * 2 * W;
        V::store(sa, V::mul(half, V::add(re[k], re[m])));
        V::store(sa + W, V::mul(half, V::sub(im[k], im[m])));
        V::store(sb, V::mul(half, V::add(im[k], im[m])));
        V::store(sb + W, V::mul(half, V::sub(re[m], re[k])));
      }
    }
#pragma GCC unroll 1
    for (int k = 0; k < K2; ++k) {
      reg re[16], im[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        re[i] = V::load(spec + (i * K2 + k) * 2 * W);
        im[i] = V::load(spec + (i * K2 + k) * 2 * W + W);
      }
      fft16<V, false>(re, im);
      const int us = k == 0 || k == 8 ? 9 : 16;  // the rest are conjugates
#pragma GCC unroll 16
      for (int u = 0; u < us; ++u) {
        float* d = z + fft_point(u, k, T) * ps;
        V::store(d, re[u]);
        V::store(d + G, im[u]);
      }
    }
  }

  // W tiles' spectra Y[f] at z + f * ps -> their first MH x MW outputs, shifted and activated, in
  // o: [T][T] with lane stride G. Columns first; then rows two at a time: Z = A + i B, whose inverse
  // FFT is row a (real part) + i row b (imaginary part) since both rows are real.
  void inverse(const float* z, int64_t ps, float* spec, float* o, reg shift) const {
#pragma GCC unroll 1
    for (int k = 0; k < K2; ++k) {
      reg re[16], im[16];
      const int us = k == 0 || k == 8 ? 9 : 16;
#pragma GCC unroll 16
      for (int u = 0; u < us; ++u) {
        const float* s = z + fft_point(u, k, T) * ps;
        re[u] = V::load(s);
        im[u] = V::load(s + G);
      }
      if (us == 9) {
#pragma GCC unroll 7
        for (int u = 9; u < 16; ++u) {
          re[u] = re[16 - u];
          im[u] = V::sub(V::zero(), im[16 - u]);
        }
      }
      fft16<V, true>(re, im);
      for (int i = 0; i < (MH_ + 1) / 2 * 2; ++i) {  // an even row count: the row pass takes pairs
        V::store(spec + (i * K2 + k) * 2 * W, re[i]);
        V::store(spec + (i * K2 + k) * 2 * W + W, im[i]);
      }
    }
    for (int i = 0; i < MH_; i += 2) {
      reg re[16], im[16];
      const float* sa = spec + i * K2 * 2 * W;
      const float* sb = spec + (i + 1) * K2 * 2 * W;  // row MH_ when MH_ is odd: computed, not stored
      // k = 0 and 8: the real parts only (a real row's spectrum is real there).
      re[0] = V::load(sa);
      im[0] = V::load(sb);
      re[8] = V::load(sa + 8 * 2 * W);
      im[8] = V::load(sb + 8 * 2 * W);
#pragma GCC unroll 7
      for (int k = 1; k < 8; ++k) {
        const reg ar = V::load(sa + k * 2 * W), ai = V::load(sa + k * 2 * W + W);
        const reg br = V::load(sb + k * 2 * W), bi = V::load(sb + k * 2 * W + W);
        re[k] = V::sub(ar, bi);  // A[k] + i B[k]
        im[k] = V::add(ai, br);
        re[16 - k] = V::add(ar, bi);  // conj A[k] + i conj B[k]
        im[16 - k] = V::sub(br, ai);
      }
      fft16<V, true>(re, im);
      for (int j = 0; j < MW_; ++j) {
        V::store(o + (i * T + j) * G, epilogue_.apply(re[j], shift));
        V::store(o + ((i + 1) * T + j) * G, epilogue_.apply(im[j], shift));
      }
    }
  }

  Conv2dParams p_;
  Shape in_, out_;
  int64_t IC_ = 0, OC_ = 0, MH_ = 0, MW_ = 0, blocks_ = 0, tiles_h_ = 0, tiles_w_ = 0, groups_ = 0;
  PackedRef w_;  // [F][blocks][IC][OCB][re, im], shared by the layer's kernels (engine/packed_weights.h)
  Epilogue<V> epilogue_;
  int threads_ = 1;
};

}  // namespace npcore::native::NPCORE_ISA_NS
