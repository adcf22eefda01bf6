#pragma once
// AVX2 + FMA vector traits: 8 floats, masks as vectors of all-ones/zero lanes. Included only by
// engine/native/avx2/kernels.cpp, after its #pragma GCC target("avx2,fma").
#include "engine/intrinsics.h"

#include <cstdint>

namespace npcore::native::avx2 {

struct Vec {
  static constexpr int W = 8;
  static constexpr int kRegs = 16;  // vector registers (ymm0-15): the kernels' tile shapes follow from it
  // The FFT convolution moves its tiles in and out of the lane-interleaved layout with scalar accesses
  // here: the in-register transpose (48 lane-crossing shuffles per 8 x 8 at this width, or 24 with a
  // dedicated network) plus masked tail stores (vmaskmovps, microcoded on AMD) measured 2-5% slower on the
  // 7x7 layers (Zen 5, docs/PERFORMANCE.md, merge of branch avx512).
  static constexpr bool kTransposeTiles = false;
  using reg = __m256;
  using mask = __m256;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float f) { return _mm256_set1_ps(f); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }  // b when either is NaN
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }    // a b + c
  static reg fnmadd(reg a, reg b, reg c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a b
  static reg round(reg x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static mask gt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static mask unord(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_UNORD_Q); }
  static reg select(mask m, reg if_false, reg if_true) { return _mm256_blendv_ps(if_false, if_true, m); }
  // Lanes [first, last) set (0 <= first <= last <= W).
  static mask mask_range(int64_t first, int64_t last) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i ge = _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(int(first) - 1));
    const __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(last)), lane);
    return _mm256_castsi256_ps(_mm256_and_si256(ge, lt));
  }
  static mask mask_first(int64_t n) { return mask_range(0, n); }
  static mask mask_all() { return _mm256_castsi256_ps(_mm256_set1_epi32(-1)); }
  // Whether every lane of m is set.
  static bool all(mask m) { return _mm256_movemask_ps(m) == 0xFF; }
  // Masked-out lanes read as zero and never touch memory.
  static reg loadz(mask m, const float* p) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
  static void store_mask(float* p, mask m, reg v) { _mm256_maskstore_ps(p, _mm256_castps_si256(m), v); }
  // Of the 2W floats a, b (a first): the even-indexed and odd-indexed ones, in order.
  static reg even(reg a, reg b) {
    const __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static reg odd(reg a, reg b) {
    const __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  // a0 b0 a1 b1 ... : the first W of them (lo) and the last W (hi).
  static reg interleave_lo(reg a, reg b) {
    return _mm256_permute2f128_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b), 0x20);
  }
  static reg interleave_hi(reg a, reg b) {
    return _mm256_permute2f128_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b), 0x31);
  }
  // 2^n for integer-valued n in [-126, 127] (a normal float): its exponent bits.
  static reg pow2(reg n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  // p * 2^n for integer-valued n in [-150, 128], in two steps so that each power stays a normal float.
  static reg ldexp(reg p, reg n) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  }
};

}  // namespace npcore::native::avx2
