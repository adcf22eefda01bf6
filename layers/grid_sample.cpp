#include "layers/grid_sample.h"

#include <algorithm>
#include <cmath>

#include "engine/parallel.h"

namespace npcore {

BilinearTap bilinear_tap(float x, float y, int64_t h, int64_t w, bool align_corners) {
  // grid_sample's unnormalisation: with align_corners -1 and 1 are the centres of the corner pixels,
  // without it the outer edges of the corner pixels.
  const float ix = align_corners ? (x + 1.f) / 2.f * float(w - 1) : ((x + 1.f) * float(w) - 1.f) / 2.f;
  const float iy = align_corners ? (y + 1.f) / 2.f * float(h - 1) : ((y + 1.f) * float(h) - 1.f) / 2.f;
  BilinearTap t{};
  if (!std::isfinite(ix) || !std::isfinite(iy)) return t;  // all weights 0 (PyTorch gives 0 for NaN grids)
  const float fx = std::floor(ix), fy = std::floor(iy);
  const float ax = ix - fx, ay = iy - fy;  // distances from the north-west corner
  const float wts[4] = {(1.f - ax) * (1.f - ay), ax * (1.f - ay), (1.f - ax) * ay, ax * ay};
  // Corners in order nw, ne, sw, se. Positions far outside the map are clamped before the cast.
  const double x0 = fx, y0 = fy;
  for (int k = 0; k < 4; ++k) {
    const double cx = x0 + (k & 1), cy = y0 + (k >> 1);
    if (cx >= 0 && cx < double(w) && cy >= 0 && cy < double(h)) {
      t.off[k] = int32_t(int64_t(cy) * w + int64_t(cx));
      t.w[k] = wts[k];
    }
  }
  return t;
}

void sample_dot(const float* map, int64_t channels, int64_t plane, const BilinearTap* taps, int64_t neurons,
                const float* feat, int64_t feat_stride, float* out, int threads) {
  // Blocks of neurons per thread job: the taps and features of a block stay in L1.
  const int64_t block = 16;
  const int64_t jobs = (neurons + block - 1) / block;
  parallel_for(jobs, threads, [&](int64_t j) {
    const int64_t n1 = std::min(neurons, (j + 1) * block);
    for (int64_t n = j * block; n < n1; ++n) {
      const BilinearTap& t = taps[n];
      const float* f = feat + n * feat_stride;
      const float *p0 = map + t.off[0], *p1 = map + t.off[1], *p2 = map + t.off[2], *p3 = map + t.off[3];
      const float w0 = t.w[0], w1 = t.w[1], w2 = t.w[2], w3 = t.w[3];
      float acc = 0.f;
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t o = c * plane;
        acc += f[c] * (w0 * p0[o] + w1 * p1[o] + w2 * p2[o] + w3 * p3[o]);
      }
      out[n] += acc;
    }
  });
}

void avg_pool_k(const float* in, int64_t channels, int64_t h, int64_t w, int64_t k, float* out, int threads) {
  const int64_t oh = h / k, ow = w / k;
  const float inv = 1.f / float(k * k);
  parallel_for(channels, threads, [&](int64_t c) {
    const float* src = in + c * h * w;
    float* dst = out + c * oh * ow;
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x) {
        float s = 0.f;
        for (int64_t dy = 0; dy < k; ++dy)
          for (int64_t dx = 0; dx < k; ++dx) s += src[(y * k + dy) * w + x * k + dx];
        dst[y * ow + x] = s * inv;
      }
  });
}

}  // namespace npcore
