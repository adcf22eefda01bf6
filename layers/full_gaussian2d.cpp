#include "layers/full_gaussian2d.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "engine/error.h"
#include "engine/rng.h"
#include "layers/grid_sample.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

std::vector<float> to_vector(const Tensor& t) {
  return std::vector<float>(t.data(), t.data() + t.numel());
}

}  // namespace

FullGaussian2d::FullGaussian2d(std::string name, Shape in_shape, int64_t outdims, FullGaussian2dParams p)
    : Readout(std::move(name), in_shape, outdims), p_(std::move(p)) {
  if (p_.gauss_type != "full" && p_.gauss_type != "uncorrelated" && p_.gauss_type != "isotropic")
    throw ConfigError(name_ + ": FullGaussian2d gauss_type '" + p_.gauss_type +
                      "' is not one of full, uncorrelated, isotropic");
  if (!p_.match_ids.empty() && int64_t(p_.match_ids.size()) != outdims)
    throw ConfigError(name_ + ": shared_match_ids has " + std::to_string(p_.match_ids.size()) +
                      " entries for " + std::to_string(outdims) + " neurons (one per neuron is needed)");
  if (p_.predicted_grid) {
    std::vector<int64_t> dims{p_.grid_input_dims};
    for (int64_t i = 0; i < p_.hidden_layers; ++i) dims.push_back(p_.hidden_features);
    dims.push_back(2);
    if (p_.hidden_layers > 0) dims[1] = p_.hidden_features;
    mu_transform_ =
        std::make_unique<DenseStack>(key("mu_transform"), dims, true, DenseStack::Act::Elu,
                                     p_.final_tanh ? DenseStack::Act::Tanh : DenseStack::Act::None);
  }
}

int64_t FullGaussian2d::shared_count() const {
  return int64_t(std::set<int64_t>(p_.match_ids.begin(), p_.match_ids.end()).size());
}

void FullGaussian2d::declare(WeightSpec& spec) const {
  const int64_t c = in_shape_[0], n = outdims_;
  if (p_.predicted_grid) {
    spec.expect(key("source_grid"), {n, p_.grid_input_dims});
    mu_transform_->declare(spec);
  } else {
    spec.expect(key("_mu"), {1, n, 1, 2});
  }
  if (p_.gauss_type == "full") spec.expect(key("sigma"), {1, n, 2, 2});
  if (p_.gauss_type == "uncorrelated") spec.expect(key("sigma"), {1, n, 1, 2});
  if (p_.gauss_type == "isotropic") spec.expect(key("sigma"), {1, n, 1, 1});
  if (p_.match_ids.empty()) {
    spec.expect(key("_features"), {1, c, 1, n});
  } else {
    spec.expect(key("_features"), {1, c, 1, shared_count()});
    spec.expect(key("scales"), {1, 1, 1, n});
    spec.ignore_prefix(key("feature_sharing_index"));  // an integer buffer, read by load()
  }
  if (p_.bias) spec.expect(key("bias"), {n});
}

void FullGaussian2d::load(const StateDict& sd) {
  prepared_ = false;
  mu_ = to_vector(sd.get_float(key(p_.predicted_grid ? "source_grid" : "_mu")));
  if (mu_transform_) mu_transform_->load(sd);
  features_ = to_vector(sd.get_float(key("_features")));
  if (!p_.match_ids.empty()) {
    scales_ = to_vector(sd.get_float(key("scales")));
    share_index_ = read_index_buffer(sd, key("feature_sharing_index"), outdims_, shared_count());
    // The buffer must be np.unique(match_ids, return_inverse=True)[1], as neuralpredictors makes it.
    std::vector<int64_t> ids(p_.match_ids);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int64_t i = 0; i < outdims_; ++i) {
      const int64_t want = std::lower_bound(ids.begin(), ids.end(), p_.match_ids[size_t(i)]) - ids.begin();
      if (share_index_[size_t(i)] != want)
        throw WeightError(sd.source() + ": " + key("feature_sharing_index") + "[" + std::to_string(i) +
                          "] is " + std::to_string(share_index_[size_t(i)]) + " but shared_match_ids gives " +
                          std::to_string(want));
    }
  }
  bias_.clear();
  if (p_.bias) bias_ = to_vector(sd.get_float(key("bias")));
}

void FullGaussian2d::init(uint64_t seed) {
  prepared_ = false;
  Rng rng(seed);
  const int64_t c = in_shape_[0], n = outdims_;
  const int64_t k = p_.match_ids.empty() ? n : shared_count();
  mu_.assign(size_t(n * (p_.predicted_grid ? p_.grid_input_dims : 2)), 0.f);
  for (float& v : mu_) v = float(rng.uniform() * 2 - 1) * (p_.predicted_grid ? 1.f : 0.9f);
  if (mu_transform_) mu_transform_->init(rng);
  features_.assign(size_t(c * k), 0.f);
  for (float& v : features_) v = float(rng.normal()) / float(c);
  if (!p_.match_ids.empty()) {
    scales_.assign(size_t(n), 1.f);
    share_index_.clear();
    std::vector<int64_t> ids(p_.match_ids);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int64_t id : p_.match_ids)
      share_index_.push_back(std::lower_bound(ids.begin(), ids.end(), id) - ids.begin());
  }
  bias_.assign(p_.bias ? size_t(n) : 0, 0.f);
  for (float& v : bias_) v = float(rng.normal()) * 0.1f;
}

void FullGaussian2d::prepare(const EngineOptions& opt) {
  const int64_t c = in_shape_[0], n = outdims_;
  if (mu_.empty()) throw WeightError(name_ + ": prepare() before load() or init()");
  // Eval grid: mu (predicted or the parameter) clamped to [-1, 1]; sigma * 0 adds nothing.
  grid_.assign(size_t(2 * n), 0.f);
  if (p_.predicted_grid) {
    std::vector<float> tmp(size_t(2 * mu_transform_->max_width()));
    mu_transform_->run(mu_.data(), n, grid_.data(), tmp.data());
  } else {
    grid_ = mu_;
  }
  for (float& v : grid_) v = std::clamp(v, -1.f, 1.f);
  // Features [C, N] (or shared [C, K] with scales) -> per neuron [N, C].
  feat_t_.assign(size_t(n * c), 0.f);
  const int64_t k = p_.match_ids.empty() ? n : shared_count();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      feat_t_[size_t(i * c + ch)] =
          p_.match_ids.empty() ? features_[size_t(ch * n + i)]
                               : scales_[size_t(i)] * features_[size_t(ch * k + share_index_[size_t(i)])];
  prepared_ = true;
}

size_t FullGaussian2d::scratch_floats(const Shape& x) const {
  return round_floats(size_t(outdims_) * (sizeof(BilinearTap) / sizeof(float)));
}

void FullGaussian2d::run(const Tensor& x, const float* shift, float* out, float* scratch, int threads) const {
  const int64_t nb = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), n = outdims_;
  auto* taps = reinterpret_cast<BilinearTap*>(scratch);
  for (int64_t b = 0; b < nb; ++b) {
    if (b == 0 || shift) {
      const float sx = shift ? shift[2 * b] : 0.f, sy = shift ? shift[2 * b + 1] : 0.f;
      for (int64_t i = 0; i < n; ++i)
        taps[i] =
            bilinear_tap(grid_[size_t(2 * i)] + sx, grid_[size_t(2 * i + 1)] + sy, h, w, p_.align_corners);
    }
    float* y = out + b * n;
    if (p_.bias)
      std::memcpy(y, bias_.data(), size_t(n) * sizeof(float));
    else
      std::fill(y, y + n, 0.f);
    sample_dot(x.image(b), c, h * w, taps, n, feat_t_.data(), c, y, threads);
  }
}

}  // namespace npcore
