#include "engine/rng.h"

#include <cmath>

namespace npcore {

uint64_t Rng::next_u64() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  const double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * M_PI * u2;
  spare_ = r * std::sin(th);
  has_spare_ = true;
  return r * std::cos(th);
}

void Rng::fill_normal(Tensor& t, float mean, float std) {
  for (int64_t n = 0; n < (t.rank() ? t.dim(0) : 1); ++n) {
    float* p = t.rank() ? t.image(n) : t.data();
    for (int64_t i = 0; i < t.image_size(); ++i) p[i] = mean + std * float(normal());
  }
}

void Rng::fill_uniform(Tensor& t, float lo, float hi) {
  for (int64_t n = 0; n < (t.rank() ? t.dim(0) : 1); ++n) {
    float* p = t.rank() ? t.image(n) : t.data();
    for (int64_t i = 0; i < t.image_size(); ++i) p[i] = lo + (hi - lo) * float(uniform());
  }
}

}  // namespace npcore
