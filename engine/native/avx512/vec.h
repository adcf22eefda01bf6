#pragma once
// AVX-512 vector traits: 16 floats, __mmask16 masks. Included only by engine/native/avx512/kernels.cpp
// after its #pragma GCC target (avx512f, bw, vl, dq).
#include "engine/intrinsics.h"

#include <cstdint>

namespace npcore::native::avx512 {

struct Vec {
  static constexpr int W = 16;
  static constexpr int kRegs = 32;  // vector registers (zmm0-31): the kernels' tile shapes follow from it
  static constexpr bool kTransposeTiles = true;  // FFT tiles through in-register transposes (see avx2/vec.h)
  using reg = __m512;
  using mask = __mmask16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float f) { return _mm512_set1_ps(f); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }  // b when either is NaN
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg fnmadd(reg a, reg b, reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static reg round(reg x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static mask gt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static mask unord(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q); }
  static reg select(mask m, reg if_false, reg if_true) { return _mm512_mask_mov_ps(if_false, m, if_true); }
  static mask mask_range(int64_t first, int64_t last) {
    if (first >= last) return 0;
    return mask(((1u << (last - first)) - 1u) << first);
  }
  static mask mask_first(int64_t n) { return n >= 16 ? mask(0xFFFF) : n <= 0 ? mask(0) : mask((1u << n) - 1u); }
  static mask mask_all() { return mask(0xFFFF); }
  // Whether every lane of m is set.
  static bool all(mask m) { return m == mask(0xFFFF); }
  static reg loadz(mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store_mask(float* p, mask m, reg v) { _mm512_mask_storeu_ps(p, m, v); }
  static reg even(reg a, reg b) {
    return _mm512_permutex2var_ps(a, _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0), b);
  }
  static reg odd(reg a, reg b) {
    return _mm512_permutex2var_ps(a, _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1), b);
  }
  static reg interleave_lo(reg a, reg b) {
    return _mm512_permutex2var_ps(a, _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0), b);
  }
  static reg interleave_hi(reg a, reg b) {
    return _mm512_permutex2var_ps(a, _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8), b);
  }
  static reg ldexp(reg p, reg n) { return _mm512_scalef_ps(p, n); }
  // 2^n for integer-valued n in [-126, 127] (a normal float).
  static reg pow2(reg n) { return _mm512_scalef_ps(_mm512_set1_ps(1.0f), n); }
};

}  // namespace npcore::native::avx512
