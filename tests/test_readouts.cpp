// The readout kernels (layers/grid_sample.h) against a plain transcription of grid_sample's bilinear,
// zero-padded sampling in double precision: random points inside and outside [-1, 1], both
// align_corners, odd and tiny map sizes, one and several threads; and avg_pool_k against direct sums.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "engine/rng.h"
#include "layers/grid_sample.h"

using namespace npcore;

namespace {

// torch.nn.functional.grid_sample(map[None], grid[None, None, None, :]) for one channel.
double naive_sample(const float* map, int64_t h, int64_t w, double x, double y, bool align) {
  const double ix = align ? (x + 1) / 2 * double(w - 1) : ((x + 1) * double(w) - 1) / 2;
  const double iy = align ? (y + 1) / 2 * double(h - 1) : ((y + 1) * double(h) - 1) / 2;
  const double x0 = std::floor(ix), y0 = std::floor(iy);
  double v = 0;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      const double cx = x0 + dx, cy = y0 + dy;
      const double wgt = (dx ? ix - x0 : 1 - (ix - x0)) * (dy ? iy - y0 : 1 - (iy - y0));
      if (cx >= 0 && cx < double(w) && cy >= 0 && cy < double(h))
        v += wgt * map[int64_t(cy) * w + int64_t(cx)];
    }
  return v;
}

}  // namespace

TEST_CASE("readout kernels: bilinear_tap + sample_dot equal grid_sample's formula", "[readout]") {
  Rng rng(17);
  for (bool align : {true, false})
    for (auto [c, h, w] :
         {std::tuple<int64_t, int64_t, int64_t>{3, 1, 1}, {5, 7, 9}, {16, 36, 64}, {2, 2, 13}})
      for (int threads : {1, 2}) {
        DYNAMIC_SECTION("align_corners " << align << ", map " << c << "x" << h << "x" << w << ", " << threads
                                         << " threads") {
          const int64_t n = 53;
          std::vector<float> map(size_t(c * h * w)), feat(size_t(n * c)), pts(size_t(2 * n));
          for (float& v : map) v = float(rng.normal());
          for (float& v : feat) v = float(rng.normal());
          for (float& v : pts) v = float(rng.uniform() * 3.0 - 1.5);  // a third of them outside [-1, 1]
          pts[0] = -1.f, pts[1] = 1.f, pts[2] = 1.f, pts[3] = -1.f;   // corners exactly
          std::vector<BilinearTap> taps(static_cast<size_t>(n));
          for (int64_t i = 0; i < n; ++i)
            taps[size_t(i)] = bilinear_tap(pts[size_t(2 * i)], pts[size_t(2 * i + 1)], h, w, align);
          std::vector<float> out(size_t(n), 0.5f);  // sample_dot accumulates onto out
          sample_dot(map.data(), c, h * w, taps.data(), n, feat.data(), c, out.data(), threads);
          for (int64_t i = 0; i < n; ++i) {
            double want = 0.5;
            for (int64_t ch = 0; ch < c; ++ch)
              want += double(feat[size_t(i * c + ch)]) * naive_sample(map.data() + ch * h * w, h, w,
                                                                      pts[size_t(2 * i)],
                                                                      pts[size_t(2 * i + 1)], align);
            INFO("neuron " << i << " at (" << pts[size_t(2 * i)] << ", " << pts[size_t(2 * i + 1)] << ")");
            CHECK(out[size_t(i)] == Approx(want).margin(1e-5));
          }
        }
      }
}

TEST_CASE("readout kernels: a point far outside or not finite reads zeros", "[readout]") {
  for (float x : {1e30f, -1e30f, NAN, INFINITY}) {
    const BilinearTap t = bilinear_tap(x, 0.f, 5, 5, true);
    for (float wgt : t.w) CHECK(wgt == 0.f);
  }
}

TEST_CASE("readout kernels: avg_pool_k is nn.AvgPool2d(k, k) (floor mode, no padding)", "[readout]") {
  Rng rng(3);
  const int64_t c = 3, h = 7, w = 10, k = 3;
  std::vector<float> in(size_t(c * h * w)), out(size_t(c * (h / k) * (w / k)));
  for (float& v : in) v = float(rng.normal());
  avg_pool_k(in.data(), c, h, w, k, out.data(), 2);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h / k; ++y)
      for (int64_t x = 0; x < w / k; ++x) {
        double s = 0;
        for (int64_t dy = 0; dy < k; ++dy)
          for (int64_t dx = 0; dx < k; ++dx) s += in[size_t(ch * h * w + (y * k + dy) * w + x * k + dx)];
        CHECK(out[size_t(ch * (h / k) * (w / k) + y * (w / k) + x)] ==
              Approx(s / double(k * k)).margin(1e-6));
      }
}
