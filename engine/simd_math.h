#pragma once
// AVX-512 versions of the activations' transcendental functions, accurate to a few ulp, so that
// epilogues run at vector speed. Only included where __AVX512F__ is defined.
#include "engine/intrinsics.h"

#include <cmath>
#include <vector>

#include "engine/activation.h"

namespace npcore::simd {

// Packed weights drop subnormal values: an FMA with a subnormal operand takes a microcode assist (~100x
// slower on Intel cores; trained weights pushed towards zero by sparsity penalties can hold such
// values), and each dropped term w*x changes a sum by less than 1.2e-38 * |x|.
inline float flush_subnormal(float w) { return std::fabs(w) < 1.17549435e-38f ? 0.0f : w; }

// 2^n * (1 + p) - 1 split so that neither the small nor the large range loses bits:
//   x = n ln2 + r, |r| <= ln2/2;  expm1(x) = 2^n expm1(r) + (2^n - 1).
// expm1(r) by its Taylor series to degree 9 (error < 2e-10 relative on |r| <= 0.347).
inline __m512 expm1_ps(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-88.0f), hi = _mm512_set1_ps(88.0f);
  x = _mm512_max_ps(lo, _mm512_min_ps(hi, x));  // x second: a NaN passes through
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 high part (exact product)
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);    // ln2 low part
  // p = r + r^2/2! + ... + r^9/9!  (Horner on r * (1 + r/2 + r^2/6 + ...))
  __m512 p = _mm512_set1_ps(1.0f / 362880.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 40320.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 5040.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_mul_ps(_mm512_mul_ps(p, r), r);
  p = _mm512_add_ps(p, r);  // expm1(r)
  const __m512 two_n = _mm512_scalef_ps(_mm512_set1_ps(1.0f), n);
  return _mm512_fmadd_ps(two_n, p, _mm512_sub_ps(two_n, _mm512_set1_ps(1.0f)));
}

// exp(x) = expm1(x) + 1 is accurate for x >= -ln2/2; below, 2^n (1 + expm1(r)) avoids the cancellation.
inline __m512 exp_ps(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(88.7228f);
  const __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  x = _mm512_max_ps(lo, _mm512_min_ps(hi, x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512 y = _mm512_scalef_ps(p, n);  // scalef handles 2^n beyond the normal exponent range
  return _mm512_mask_mov_ps(y, over, _mm512_set1_ps(__builtin_inff()));
}

// Whether act_ps computes this activation (the others fall back to the scalar loop).
inline bool vectorised(const Activation& a) {
  return a.kind == ActKind::None || a.kind == ActKind::ELU || a.kind == ActKind::ReLU ||
         a.kind == ActKind::Sigmoid || a.kind == ActKind::Exp;
}

// y = f(x - shift_in) + out_shift for the vectorised kinds; shift_in already includes any bias.
inline __m512 act_ps(const Activation& a, __m512 x, __m512 shift_in, __m512 shift_out) {
  const __m512 v = _mm512_sub_ps(x, shift_in);
  __m512 y;
  switch (a.kind) {
    case ActKind::ELU: {
      const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
      y = _mm512_mask_mov_ps(_mm512_mul_ps(_mm512_set1_ps(a.alpha), expm1_ps(v)), pos, v);
      break;
    }
    case ActKind::ReLU: y = _mm512_max_ps(_mm512_setzero_ps(), v); break;  // v second: NaN passes
    case ActKind::Sigmoid:
      y = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), v))));
      break;
    case ActKind::Exp: y = exp_ps(v); break;
    default: y = v; break;
  }
  return _mm512_add_ps(y, shift_out);
}

// The end of a native conv kernel: y = f(acc + bias[oc] - in_shift) + out_shift. Vectorised activations
// run on the accumulators; for the others the bias goes in as a subtraction of (in_shift - bias) and the
// scalar loop applies f to the stored values.
class Epilogue {
 public:
  Epilogue() = default;
  // `bias` may be null; `channels` is padded to `padded` with the activation's in_shift.
  Epilogue(const Activation& act, const float* bias, int64_t channels, int64_t padded)
      : act_(act), vector_(vectorised(act)) {
    shift_.assign(size_t(padded), act.in_shift);
    for (int64_t c = 0; c < channels; ++c) shift_[size_t(c)] = act.in_shift - (bias ? bias[c] : 0.0f);
    scalar_ = act;
    scalar_.in_shift = 0.0f;
  }
  // The per-channel term to pass to apply().
  __m512 shift(int64_t oc) const { return _mm512_set1_ps(shift_[size_t(oc)]); }
  __m512 apply(__m512 acc, __m512 shift) const {
    return vector_ ? act_ps(act_, acc, shift, _mm512_set1_ps(act_.out_shift)) : _mm512_sub_ps(acc, shift);
  }
  // After storing n values of one channel at dst: the activation, if apply() could not.
  void finish(float* dst, int64_t n) const {
    if (!vector_) apply_activation(scalar_, dst, n);
  }

 private:
  Activation act_, scalar_;
  std::vector<float> shift_;  // per output channel: in_shift - bias
  bool vector_ = false;
};

// The register-tile step of the native kernels: acc[o][q] += w[o] * x[16q .. 16q+16) for OCB broadcast
// weights and NV vectors of x (an outer product; OCB*NV FMAs per OCB + NV loads).
template <int OCB, int NV>
inline __attribute__((always_inline)) void outer_fma(__m512 (&acc)[OCB][NV], const float* w, const float* x) {
  __m512 xv[NV];
#pragma GCC unroll 4
  for (int q = 0; q < NV; ++q) xv[q] = _mm512_loadu_ps(x + 16 * q);
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o) {
    const __m512 wv = _mm512_set1_ps(w[o]);
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) acc[o][q] = _mm512_fmadd_ps(wv, xv[q], acc[o][q]);
  }
}

}  // namespace npcore::simd
