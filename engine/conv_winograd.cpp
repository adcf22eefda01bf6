// Winograd F(2x2, r x r) convolution for the native backend (AVX-512), vectorised across 16 output tiles
// of one tile row at a time. Per image, per block of up to 48 tiles of one tile row:
//   input transform   V[p][ic][t] = (B^T d_t,ic B)[p]        p < alpha^2, d an alpha x alpha input patch
//   alpha^2 GEMMs      M[p][oc][t] = sum_ic U[p][oc][ic] V[p][ic][t]     U = G g G^T, made at creation
//   output transform  y_t,oc = A^T M[.][oc][t] A (2 x 2 pixels), + bias, activation, store
// The weights' transform happens once; the run allocates nothing (per-thread V and M live in scratch).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/error.h"
#include "engine/parallel.h"
#include "engine/winograd.h"

#if defined(__AVX512F__)
#include "engine/intrinsics.h"

#include "engine/simd_math.h"
#endif

namespace npcore {

namespace {

// A copy of a compile-time array into a vector, through a pointer the optimiser cannot see through.
// GCC 12.2 with -march=native on this project's machines (rocketlake tuning; also skylake-avx512 and
// icelake-server, not x86-64-v4 or sapphirerapids) folds vector::assign from these constexpr arrays into
// wrong constants (e.g. A^T's row 0 of F(2, 3) came out 1 1 1 1 instead of 1 1 1 0); the exactness test
// in tests/test_winograd.cpp caught it.
template <size_t N>
std::vector<double> opaque_copy(const std::array<double, N>& a) {
  const double* p = a.data();
  __asm__("" : "+r"(p));
  return std::vector<double>(p, p + N);
}

template <int A>
WinogradTransforms copy_transforms() {
  using W = WinogradConst<A>;
  WinogradTransforms t;
  t.m = 2;
  t.r = A - 1;
  t.alpha = A;
  t.AT = opaque_copy(W::ATd);
  t.G = opaque_copy(W::Gd);
  t.BT = opaque_copy(W::BTd);
  return t;
}

}  // namespace

WinogradTransforms winograd_transforms(int m, int r) {
  if (m == 2 && r == 3) return copy_transforms<4>();
  if (m == 2 && r == 5) return copy_transforms<6>();
  if (m == 2 && r == 7) return copy_transforms<8>();
  throw BackendError("winograd: F(" + std::to_string(m) + ", " + std::to_string(r) +
                     ") is not built (F(2, 3), F(2, 5), F(2, 7) are)");
}

#if defined(__AVX512F__)

namespace {

// A block is up to 3 tile vectors (48 tiles) of one tile row; the GEMM micro-tile is 8 output channels x
// 48 tiles (24 accumulators; per input channel 3 V loads and 8 weight broadcasts). For alpha 8 (7x7
// kernels) V and M of such a block (alpha^2 x channels x 48 floats, 768 KiB each at 64 channels) and U
// would not fit a core's L2 together, so the block shrinks to one tile vector and the micro-tile becomes
// 16 channels x 16 tiles.
struct Blocking {
  int ocb, vecs;
};
Blocking blocking_for(int alpha) { return alpha >= 8 ? Blocking{16, 1} : Blocking{8, 3}; }

// acc + c v for a coefficient c that is a compile-time constant once the caller's loops unroll: zero
// terms vanish and +-1 terms become an addition or a subtraction.
__attribute__((always_inline)) inline __m512 cfma(float c, __m512 v, __m512 acc) {
  if (c == 0.0f) return acc;
  if (c == 1.0f) return _mm512_add_ps(acc, v);
  if (c == -1.0f) return _mm512_sub_ps(acc, v);
  return _mm512_fmadd_ps(_mm512_set1_ps(c), v, acc);
}

class WinogradConv final : public ConvKernel {
 public:
  WinogradConv(const ConvSpec& spec, const Shape& in) : p_(spec.params), in_(in) {
    out_ = p_.output_shape(in, "winograd conv");
    const int r = int(p_.kernel_h);
    tr_ = winograd_transforms(2, r);
    a_ = tr_.alpha;
    P_ = a_ * a_;
    IC_ = p_.in_channels;
    OC_ = p_.out_channels;
    const Blocking bl = blocking_for(a_);
    ocb_ = bl.ocb;
    vecs_ = bl.vecs;
    blocks_ = (OC_ + ocb_ - 1) / ocb_;
    if (a_ != 4 && a_ != 6 && a_ != 8) throw BackendError("winograd: no kernel for " + p_.str());
    // U[p][oc][ic] = (G g G^T)[p], computed in double, packed [p][OC/ocb][IC][ocb] for the GEMM's broadcasts.
    u_ = aligned_floats(size_t(P_) * size_t(blocks_ * IC_ * ocb_));
    std::fill(u_.get(), u_.get() + size_t(P_) * size_t(blocks_ * IC_ * ocb_), 0.0f);
    std::vector<double> gg(size_t(a_ * r));
    for (int64_t oc = 0; oc < OC_; ++oc)
      for (int64_t ic = 0; ic < IC_; ++ic) {
        const float* g = spec.weight + (oc * IC_ + ic) * r * r;  // [r, r]
        // G g: [alpha, r]
        for (int i = 0; i < a_; ++i)
          for (int j = 0; j < r; ++j) {
            double s = 0;
            for (int k = 0; k < r; ++k) s += tr_.G[size_t(i * r + k)] * double(g[k * r + j]);
            gg[size_t(i * r + j)] = s;
          }
        // (G g) G^T: [alpha, alpha]
        for (int i = 0; i < a_; ++i)
          for (int j = 0; j < a_; ++j) {
            double s = 0;
            for (int k = 0; k < r; ++k) s += gg[size_t(i * r + k)] * tr_.G[size_t(j * r + k)];
            u_[size_t(i * a_ + j) * size_t(blocks_ * IC_ * ocb_) + size_t(((oc / ocb_) * IC_ + ic) * ocb_ + oc % ocb_)] =
                simd::flush_subnormal(float(s));
          }
      }
    epilogue_ = simd::Epilogue(spec.act, spec.bias, OC_, blocks_ * ocb_);
    TH_ = (out_[2] + 1) / 2;
    TW_ = (out_[3] + 1) / 2;
    const int64_t tw_vecs = (TW_ + 15) / 16;
    row_blocks_ = (tw_vecs + vecs_ - 1) / vecs_;
    threads_ = planned_threads();
  }

  Backend backend() const override { return Backend::Native; }

  // One thread's V and M.
  size_t thread_floats() const {
    return round_floats(size_t(IC_) * size_t(v_stride())) + round_floats(size_t(blocks_ * ocb_) * size_t(m_stride()));
  }
  size_t scratch_floats() const override {
    return size_t(threads_) * thread_floats();
  }

  void run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    check_run_shapes(Backend::Native, p_, in_, out_, in, out);
    float* per_thread = scratch;
    for (int64_t n = 0; n < in_[0]; ++n) {
      const float* buf = in.image(n);
      const int64_t jobs = TH_ * row_blocks_;
      parallel_for(jobs, threads_, [&](int64_t j) {
        block(buf, out.image(n), j / row_blocks_, j % row_blocks_, per_thread + omp_get_thread_num() * thread_floats());
      });
    }
  }

 private:
  // V is [IC][P][T] and M is [OC][P][T] (T = tiles per block): the input transform writes one input
  // channel's alpha^2 points contiguously, the output transform reads one output channel's contiguously,
  // and the GEMM for point p walks V and M with a stride of one channel. That stride is a cache line more
  // than P*T floats: a multiple of 4 KiB would put every channel of a point in the same L1 set.
  int64_t v_stride() const { return P_ * vecs_ * 16 + 16; }
  int64_t m_stride() const { return P_ * vecs_ * 16 + 16; }

  // Tile row ty, tiles [16 vecs_ rb, 16 vecs_ (rb + 1)) of it; x is one image [IC, H, W].
  void block(const float* x, float* y, int64_t ty, int64_t rb, float* scratch) const {
    const int64_t tw_vecs = (TW_ + 15) / 16;
    const int64_t v0 = rb * vecs_, nv = std::min<int64_t>(vecs_, tw_vecs - v0);
    const int64_t T = vecs_ * 16;  // V and M rows hold 48 tiles even when fewer are used
    float* V = scratch;                                                     // [IC][P][T]
    float* M = scratch + round_floats(size_t(IC_) * size_t(v_stride()));  // [OC][P][T]
    for (int64_t v = 0; v < nv; ++v) {
      // Which lanes of the two loads per column offset j fall inside the image (zero padding outside);
      // interior tile vectors load everything.
      __mmask16 lo[8], hi[8];
      for (int j = 0; j < a_; ++j) {
        const int64_t c0 = 2 * 16 * (v0 + v) + j - p_.pad_w;  // image column of lane 0 of the low load
        lo[j] = lane_mask(c0);
        hi[j] = lane_mask(c0 + 16);
      }
      for (int64_t ic = 0; ic < IC_; ++ic) {
        float* dst = V + ic * v_stride() + v * 16;
        switch (a_) {
          case 4: input_transform<4>(x, ty, (v0 + v) * 16, ic, lo, hi, dst, T); break;
          case 6: input_transform<6>(x, ty, (v0 + v) * 16, ic, lo, hi, dst, T); break;
          default: input_transform<8>(x, ty, (v0 + v) * 16, ic, lo, hi, dst, T); break;
        }
      }
    }
    for (int p = 0; p < P_; ++p)
      for (int64_t b = 0; b < blocks_; ++b) {
        const float* u = u_.get() + size_t(p) * size_t(blocks_ * IC_ * ocb_) + size_t(b * IC_ * ocb_);
        const float* vp = V + size_t(p) * size_t(T);
        float* mp = M + size_t(b * ocb_) * size_t(m_stride()) + size_t(p) * size_t(T);
        if (ocb_ == 16)
          gemm<16, 1>(u, vp, mp, T);
        else if (nv == 3)
          gemm<8, 3>(u, vp, mp, T);
        else if (nv == 2)
          gemm<8, 2>(u, vp, mp, T);
        else
          gemm<8, 1>(u, vp, mp, T);
      }
    for (int64_t v = 0; v < nv; ++v)
      for (int64_t oc = 0; oc < OC_; ++oc) {
        const float* src = M + oc * m_stride() + v * 16;
        switch (a_) {
          case 4: output_transform<4>(src, T, y, ty, (v0 + v) * 16, oc); break;
          case 6: output_transform<6>(src, T, y, ty, (v0 + v) * 16, oc); break;
          default: output_transform<8>(src, T, y, ty, (v0 + v) * 16, oc); break;
        }
      }
  }

  // out[k] = sum_j BT[k][j] in[j] for k < A. The interpolation points come in pairs +p, -p (rows 2q-1 and
  // 2q of B^T), whose rows differ only in the sign of their odd-j coefficients: with E and O the sums over
  // even and odd j of the +p row, the two rows are E + O and E - O, which saves a third of the FMAs.
  template <int A>
  __attribute__((always_inline)) void bt_rows(const __m512 (&in)[A], __m512 (&out)[A]) const {
    constexpr std::array<float, A * A> bt = WinogradConst<A>::BT;
    // sum over j = j0, j0 + step, ... of bt[k][j] in[j], with the constant coefficients folded: zero terms
    // vanish, +-1 terms are additions.
    auto dot = [&](int k, int j0, int step) __attribute__((always_inline)) {
      __m512 s = _mm512_setzero_ps();
      bool first = true;
#pragma GCC unroll 8
      for (int j = j0; j < A; j += step) {
        const float c = bt[size_t(k * A + j)];
        if (c == 0.0f) continue;
        if (c == 1.0f)
          s = first ? in[j] : _mm512_add_ps(s, in[j]);
        else if (c == -1.0f)
          s = first ? _mm512_sub_ps(_mm512_setzero_ps(), in[j]) : _mm512_sub_ps(s, in[j]);
        else
          s = first ? _mm512_mul_ps(_mm512_set1_ps(c), in[j]) : _mm512_fmadd_ps(_mm512_set1_ps(c), in[j], s);
        first = false;
      }
      return s;
    };
    out[0] = dot(0, 0, 1);
    out[A - 1] = dot(A - 1, 0, 1);
#pragma GCC unroll 4
    for (int k = 1; k + 1 < A; k += 2) {
      const __m512 e = dot(k, 0, 2), o = dot(k, 1, 2);
      out[k] = _mm512_add_ps(e, o);
      out[k + 1] = _mm512_sub_ps(e, o);
    }
  }

  // Lanes e of a 16-float load starting at image column c with 0 <= c + e < W.
  __mmask16 lane_mask(int64_t c) const {
    const int64_t first = std::max<int64_t>(0, -c), last = std::min<int64_t>(16, in_[3] - c);
    if (first >= last) return 0;
    return __mmask16(((1u << (last - first)) - 1u) << first);
  }

  // 16 tiles (tx0 .. tx0+15) of tile row ty, input channel ic of the image x [IC, H, W]: V[p] = (B^T d B)[p]
  // for each tile, written to v + p * p_stride (16 floats each). Padding is read as zeros: rows outside the
  // image are skipped and columns outside it are masked out of the loads (masked lanes never touch
  // memory). A = alpha, known at compile time so that every loop unrolls.
  template <int A>
  void input_transform(const float* x, int64_t ty, int64_t tx0, int64_t ic, const __mmask16* lo,
                       const __mmask16* hi, float* v, int64_t p_stride) const {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const int64_t H = in_[2], W = in_[3];
    __m512 t[A][A];  // [nu][row i]: (d B)[i][nu] = sum_j d[i][j] BT[nu][j], stored transposed for the 2nd pass
#pragma GCC unroll 8
    for (int i = 0; i < A; ++i) {
      const int64_t ih = 2 * ty + i - p_.pad_h;
      __m512 r[A];
      if (ih < 0 || ih >= H) {
#pragma GCC unroll 8
        for (int nu = 0; nu < A; ++nu) t[nu][i] = _mm512_setzero_ps();
        continue;
      }
      // Address arithmetic in integers: the window may start left of the row (its lanes are masked).
      const uintptr_t row = reinterpret_cast<uintptr_t>(x + (ic * H + ih) * W);
      const intptr_t c0 = intptr_t(2 * tx0 - p_.pad_w);
      // The next input channel's row, one plane further: hardware prefetchers do not follow jumps of a
      // whole plane (and prefetches never fault).
      const char* next = reinterpret_cast<const char*>(row + uintptr_t((H * W + c0) * intptr_t(sizeof(float))));
      _mm_prefetch(next, _MM_HINT_T0);
      _mm_prefetch(next + 64, _MM_HINT_T0);
      _mm_prefetch(next + 128, _MM_HINT_T0);
      __m512 d[A];
#pragma GCC unroll 8
      for (int j = 0; j < A; ++j) {  // d[j] = x[2k + j], k = 0..15 (tile k's column j)
        const float* src = reinterpret_cast<const float*>(row + uintptr_t((c0 + j) * intptr_t(sizeof(float))));
        d[j] = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo[j], src), even, _mm512_maskz_loadu_ps(hi[j], src + 16));
      }
      bt_rows<A>(d, r);
#pragma GCC unroll 8
      for (int nu = 0; nu < A; ++nu) t[nu][i] = r[nu];
    }
#pragma GCC unroll 8
    for (int nu = 0; nu < A; ++nu) {
      __m512 r[A];
      bt_rows<A>(t[nu], r);  // V[xi][nu] = sum_i BT[xi][i] (d B)[i][nu]
#pragma GCC unroll 8
      for (int xi = 0; xi < A; ++xi) _mm512_storeu_ps(v + (xi * A + nu) * p_stride, r[xi]);
    }
  }

  // M [OCB oc][T] = U [OCB oc][IC] x V [IC][T] for the first NV tile vectors of one point; V's and M's
  // rows are v_stride() and m_stride() apart.
  template <int OCB, int NV>
  void gemm(const float* u, const float* v, float* m, int64_t T) const {
    const int64_t vs = v_stride(), ms = m_stride();
    __m512 acc[OCB][NV];
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 3
      for (int q = 0; q < NV; ++q) acc[o][q] = _mm512_setzero_ps();
    for (int64_t ic = 0; ic < IC_; ++ic, u += OCB, v += vs) {
      // U streams from L2 (all alpha^2 points of it per block): fetch 32 input channels ahead.
      _mm_prefetch(reinterpret_cast<const char*>(u + 32 * OCB), _MM_HINT_T0);
      simd::outer_fma<OCB, NV>(acc, u, v);
    }
#pragma GCC unroll 16
    for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 3
      for (int q = 0; q < NV; ++q) _mm512_storeu_ps(m + o * ms + 16 * q, acc[o][q]);
  }

  // 16 tiles of one output channel: y = A^T M A (2 x 2 per tile), bias, activation, interleaved store.
  template <int A>
  void output_transform(const float* m, int64_t p_stride, float* y, int64_t ty, int64_t tx0, int64_t oc) const {
    constexpr std::array<float, 2 * A> at = WinogradConst<A>::AT;
    __m512 t[A][2];  // [xi][j] = sum_nu M[xi][nu] AT[j][nu]
#pragma GCC unroll 8
    for (int xi = 0; xi < A; ++xi) {
      __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
#pragma GCC unroll 8
      for (int nu = 0; nu < A; ++nu) {
        const __m512 mv = _mm512_loadu_ps(m + (xi * A + nu) * p_stride);
        s0 = cfma(at[size_t(nu)], mv, s0);
        s1 = cfma(at[size_t(A + nu)], mv, s1);
      }
      t[xi][0] = s0;
      t[xi][1] = s1;
    }
    const __m512 sin = epilogue_.shift(oc);
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const int64_t OH = out_[2], OW = out_[3];
    const int64_t x0 = 2 * tx0, valid = std::min<int64_t>(32, OW - x0);
    if (valid <= 0) return;
    const __mmask16 m0 = valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1u);
    const __mmask16 m1 = valid >= 32 ? __mmask16(0xFFFF) : valid <= 16 ? __mmask16(0) : __mmask16((1u << (valid - 16)) - 1u);
    for (int i = 0; i < 2; ++i) {
      const int64_t oy = 2 * ty + i;
      if (oy >= OH) break;
      __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();  // output columns 0 and 1 of the 16 tiles
#pragma GCC unroll 8
      for (int xi = 0; xi < A; ++xi) {
        c0 = cfma(at[size_t(i * A + xi)], t[xi][0], c0);
        c1 = cfma(at[size_t(i * A + xi)], t[xi][1], c1);
      }
      c0 = epilogue_.apply(c0, sin);
      c1 = epilogue_.apply(c1, sin);
      float* dst = y + (oc * OH + oy) * OW + x0;
      _mm512_mask_storeu_ps(dst, m0, _mm512_permutex2var_ps(c0, lo, c1));
      _mm512_mask_storeu_ps(dst + 16, m1, _mm512_permutex2var_ps(c0, hi, c1));
      epilogue_.finish(dst, valid);
    }
  }

  Conv2dParams p_;
  Shape in_, out_;
  WinogradTransforms tr_;
  int a_ = 0, P_ = 0;
  int ocb_ = 8, vecs_ = 1;
  int64_t IC_ = 0, OC_ = 0, blocks_ = 0, TH_ = 0, TW_ = 0, row_blocks_ = 0;
  AlignedBuffer u_;
  simd::Epilogue epilogue_;
  int threads_ = 1;
};

}  // namespace

bool winograd_eligible(const ConvSpec& spec, const Shape& in) {
  const Conv2dParams& p = spec.params;
  return p.groups == 1 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1 &&
         p.kernel_h == p.kernel_w && (p.kernel_h == 3 || p.kernel_h == 5 || p.kernel_h == 7) &&
         p.in_channels >= 16 && p.out_channels >= 16;
}

std::unique_ptr<ConvKernel> make_winograd_conv(const ConvSpec& spec, const Shape& in) {
  return std::make_unique<WinogradConv>(spec, in);
}

#else

bool winograd_eligible(const ConvSpec&, const Shape&) { return false; }
std::unique_ptr<ConvKernel> make_winograd_conv(const ConvSpec& spec, const Shape&) {
  throw BackendError("winograd: needs an AVX-512 build (" + spec.params.str() + ")");
}

#endif

}  // namespace npcore
