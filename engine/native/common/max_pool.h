// Max pooling, kernel 2 stride 2 without padding (the VGG case), over vector traits V: per output row, two
// input rows are reduced vertically, then even and odd columns horizontally (2W inputs -> W outputs).
#pragma once
#include <cmath>

#include "engine/native/common/simd_math.h"

namespace npcore::native::NPCORE_ISA_NS {

// max(a, b) that returns NaN when either is NaN, as PyTorch's max pooling does.
template <class V>
NPCORE_INLINE typename V::reg max_nan(typename V::reg a, typename V::reg b) {
  return V::select(V::unord(a, b), V::max(a, b), V::add(a, b));
}

template <class V>
void max_pool_2x2(const float* x, float* y, int64_t H, int64_t Wd, int64_t OH, int64_t OW) {
  constexpr int W = V::W;
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* r0 = x + 2 * oh * Wd;
    const float* r1 = r0 + Wd;
    float* o = y + oh * OW;
    int64_t ow = 0;
    for (; ow + W <= OW && 2 * ow + 2 * W <= Wd; ow += W) {
      const auto lo = max_nan<V>(V::load(r0 + 2 * ow), V::load(r1 + 2 * ow));
      const auto hi = max_nan<V>(V::load(r0 + 2 * ow + W), V::load(r1 + 2 * ow + W));
      V::store(o + ow, max_nan<V>(V::even(lo, hi), V::odd(lo, hi)));
    }
    for (; ow < OW; ++ow) {
      float m = r0[2 * ow];
      const float rest[3] = {r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]};
      for (float v : rest)
        if (v > m || v != v) m = v;
      o[ow] = m;
    }
  }
  (void)H;
}

}  // namespace npcore::native::NPCORE_ISA_NS
