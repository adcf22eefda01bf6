#include "layers/full_factorized2d.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/error.h"
#include "engine/parallel.h"
#include "engine/rng.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {

FullFactorized2d::FullFactorized2d(std::string name, Shape in_shape, int64_t outdims,
                                   FullFactorized2dParams p)
    : Readout(std::move(name), in_shape, outdims), p_(std::move(p)) {
  if (!p_.match_ids.empty() && int64_t(p_.match_ids.size()) != outdims)
    throw ConfigError(name_ + ": shared_match_ids has " + std::to_string(p_.match_ids.size()) +
                      " entries for " + std::to_string(outdims) + " neurons (one per neuron is needed)");
}

int64_t FullFactorized2d::shared_count() const {
  return int64_t(std::set<int64_t>(p_.match_ids.begin(), p_.match_ids.end()).size());
}

void FullFactorized2d::declare(WeightSpec& spec) const {
  const int64_t c = in_shape_[0], h = in_shape_[1], w = in_shape_[2], n = outdims_;
  spec.expect(key("spatial"), {n, h, w});
  if (p_.match_ids.empty()) {
    spec.expect(key("_features"), {n, c});
  } else {
    spec.expect(key("_features"), {shared_count(), c});
    spec.expect(key("scales"), {n, 1});
    spec.ignore_prefix(key("feature_sharing_index"));
  }
  if (p_.bias) spec.expect(key("bias"), {n});
}

void FullFactorized2d::load(const StateDict& sd) {
  prepared_ = false;
  Tensor s = sd.get_float(key("spatial")), f = sd.get_float(key("_features"));
  spatial_.assign(s.data(), s.data() + s.numel());
  features_.assign(f.data(), f.data() + f.numel());
  if (!p_.match_ids.empty()) {
    Tensor sc = sd.get_float(key("scales"));
    scales_.assign(sc.data(), sc.data() + sc.numel());
    share_index_ = read_index_buffer(sd, key("feature_sharing_index"), outdims_, shared_count());
  }
  bias_.clear();
  if (p_.bias) {
    Tensor b = sd.get_float(key("bias"));
    bias_.assign(b.data(), b.data() + b.numel());
  }
}

void FullFactorized2d::init(uint64_t seed) {
  prepared_ = false;
  Rng rng(seed);
  const int64_t c = in_shape_[0], hw = in_shape_[1] * in_shape_[2], n = outdims_;
  spatial_.resize(size_t(n * hw));
  for (float& v : spatial_) v = float(rng.normal());
  const int64_t k = p_.match_ids.empty() ? n : shared_count();
  features_.resize(size_t(k * c));
  for (float& v : features_) v = float(rng.normal()) / float(c);
  if (!p_.match_ids.empty()) {
    scales_.assign(size_t(n), 1.f);
    std::vector<int64_t> ids(p_.match_ids);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    share_index_.clear();
    for (int64_t id : p_.match_ids)
      share_index_.push_back(std::lower_bound(ids.begin(), ids.end(), id) - ids.begin());
  }
  bias_.assign(p_.bias ? size_t(n) : 0, 0.f);
}

void FullFactorized2d::prepare(const EngineOptions& opt) {
  if (spatial_.empty()) throw WeightError(name_ + ": prepare() before load() or init()");
  const int64_t c = in_shape_[0], hw = in_shape_[1] * in_shape_[2], n = outdims_;
  mask_ = spatial_;
  for (int64_t o = 0; o < n; ++o) {
    float* m = mask_.data() + o * hw;
    if (p_.normalize) {
      // sqrt(sum of squares over h and w) + 1e-6, as normalized_spatial computes it.
      double ss = 0;
      for (int64_t i = 0; i < hw; ++i) ss += double(m[i]) * m[i];
      const float norm = float(std::sqrt(ss)) + 1e-6f;
      for (int64_t i = 0; i < hw; ++i) m[i] /= norm;
    }
    if (p_.constrain_pos)
      for (int64_t i = 0; i < hw; ++i) m[i] = std::max(m[i], 0.f);
    else if (p_.positive_spatial)
      for (int64_t i = 0; i < hw; ++i) m[i] = std::fabs(m[i]);
  }
  feat_.assign(size_t(n * c), 0.f);
  for (int64_t o = 0; o < n; ++o)
    for (int64_t ch = 0; ch < c; ++ch) {
      // constrain_pos clamps the stored features (the shared _features, before the scales) at 0.
      float v = p_.match_ids.empty() ? features_[size_t(o * c + ch)]
                                     : features_[size_t(share_index_[size_t(o)] * c + ch)];
      if (p_.constrain_pos && p_.match_ids.empty()) v = std::max(v, 0.f);
      if (!p_.match_ids.empty()) v *= scales_[size_t(o)];
      feat_[size_t(o * c + ch)] = v;
    }
  prepared_ = true;
}

void FullFactorized2d::run(const Tensor& x, const float* shift, float* out, float* scratch,
                           int threads) const {
  const int64_t nb = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3), n = outdims_;
  // [N, C, HW] x [O, HW] -> [N, C, O], then [N, C, O] . [O, C] -> [N, O]: per (image, neuron), the mask
  // row stays in cache while the image's channels stream past it.
  parallel_for(nb * n, threads, [&](int64_t job) {
    const int64_t b = job / n, o = job % n;
    const float* img = x.image(b);
    const float* m = mask_.data() + o * hw;
    const float* f = feat_.data() + o * c;
    float acc = 0.f;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* xc = img + ch * hw;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < hw; ++i) s += xc[i] * m[i];
      acc += f[ch] * s;
    }
    out[b * n + o] = acc + (p_.bias ? bias_[size_t(o)] : 0.f);
  });
}

}  // namespace npcore
