#include "layers/point_pooled2d.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "engine/rng.h"
#include "layers/grid_sample.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {

PointPooled2d::PointPooled2d(std::string name, Shape in_shape, int64_t outdims, PointPooled2dParams p)
    : Readout(std::move(name), in_shape, outdims), p_(p) {
  if (p_.pool_steps < 0)
    throw ConfigError(name_ + ": PointPooled2d pool_steps is " + std::to_string(p_.pool_steps) +
                      "; it must be a non-negative integer");
  if (p_.pool_kern < 1)
    throw ConfigError(name_ + ": PointPooled2d pool_kern is " + std::to_string(p_.pool_kern) +
                      "; it must be at least 1");
}

void PointPooled2d::declare(WeightSpec& spec) const {
  const int64_t c = in_shape_[0], n = outdims_;
  spec.expect(key("grid"), {1, n, 1, 2});
  spec.expect(key("features"), {1, c * (p_.pool_steps + 1), 1, n});
  if (p_.bias) spec.expect(key("bias"), {n});
}

void PointPooled2d::load(const StateDict& sd) {
  prepared_ = false;
  Tensor g = sd.get_float(key("grid")), f = sd.get_float(key("features"));
  grid_.assign(g.data(), g.data() + g.numel());
  features_.assign(f.data(), f.data() + f.numel());
  bias_.clear();
  if (p_.bias) {
    Tensor b = sd.get_float(key("bias"));
    bias_.assign(b.data(), b.data() + b.numel());
  }
}

void PointPooled2d::init(uint64_t seed) {
  prepared_ = false;
  Rng rng(seed);
  const int64_t m = p_.pool_steps + 1, c = in_shape_[0], n = outdims_;
  grid_.resize(size_t(2 * n));
  for (float& v : grid_) v = float(rng.uniform() * 1.8 - 0.9);
  features_.resize(size_t(m * c * n));
  for (float& v : features_) v = float(rng.normal()) / float(c);
  bias_.assign(p_.bias ? size_t(n) : 0, 0.f);
}

void PointPooled2d::prepare(const EngineOptions& opt) {
  if (grid_.empty()) throw WeightError(name_ + ": prepare() before load() or init()");
  const int64_t mc = in_shape_[0] * (p_.pool_steps + 1), n = outdims_;
  for (float& v : grid_) v = std::clamp(v, -1.f, 1.f);  // the forward clamps the parameter itself
  feat_t_.assign(size_t(n * mc), 0.f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < mc; ++k) feat_t_[size_t(i * mc + k)] = features_[size_t(k * n + i)];
  prepared_ = true;
}

void PointPooled2d::check_input(const Shape& x) const {
  Readout::check_input(x);
  int64_t h = x[2], w = x[3];
  for (int64_t s = 1; s <= p_.pool_steps; ++s) {
    h /= p_.pool_kern;
    w /= p_.pool_kern;
    if (h < 1 || w < 1)
      throw ShapeError(name_ + ": PointPooled2d: pooling step " + std::to_string(s) + " of " +
                       std::to_string(p_.pool_steps) + " (kernel " + std::to_string(p_.pool_kern) +
                       ") leaves no pixel of the " + std::to_string(x[2]) + "x" + std::to_string(x[3]) +
                       " map");
  }
}

size_t PointPooled2d::scratch_floats(const Shape& x) const {
  // Two pooled maps (ping-pong) and one level's taps.
  const int64_t c = x[1];
  int64_t h = x[2] / p_.pool_kern, w = x[3] / p_.pool_kern;
  const size_t pooled = p_.pool_steps > 0 ? round_floats(size_t(c * h * w)) : 0;
  return 2 * pooled + round_floats(size_t(outdims_) * (sizeof(BilinearTap) / sizeof(float)));
}

void PointPooled2d::run(const Tensor& x, const float* shift, float* out, float* scratch, int threads) const {
  const int64_t nb = x.dim(0), c = x.dim(1), n = outdims_, m = p_.pool_steps + 1;
  const int64_t h0 = x.dim(2) / p_.pool_kern, w0 = x.dim(3) / p_.pool_kern;
  const size_t pooled = p_.pool_steps > 0 ? round_floats(size_t(c * h0 * w0)) : 0;
  float* pool[2] = {scratch, scratch + pooled};
  auto* taps = reinterpret_cast<BilinearTap*>(scratch + 2 * pooled);
  for (int64_t b = 0; b < nb; ++b) {
    float* y = out + b * n;
    if (p_.bias)
      std::memcpy(y, bias_.data(), size_t(n) * sizeof(float));
    else
      std::fill(y, y + n, 0.f);
    const float sx = shift ? shift[2 * b] : 0.f, sy = shift ? shift[2 * b + 1] : 0.f;
    const float* map = x.image(b);
    int64_t h = x.dim(2), w = x.dim(3);
    for (int64_t level = 0; level < m; ++level) {
      if (level > 0) {  // the next average pooling of the previous level
        float* dst = pool[(level - 1) & 1];
        avg_pool_k(map, c, h, w, p_.pool_kern, dst, threads);
        map = dst;
        h /= p_.pool_kern;
        w /= p_.pool_kern;
      }
      for (int64_t i = 0; i < n; ++i)
        taps[i] =
            bilinear_tap(grid_[size_t(2 * i)] + sx, grid_[size_t(2 * i + 1)] + sy, h, w, p_.align_corners);
      // Features of level l are channels [l * C, (l + 1) * C) of the concatenation.
      sample_dot(map, c, h * w, taps, n, feat_t_.data() + level * c, m * c, y, threads);
    }
  }
}

}  // namespace npcore
