#include "layers/readout.h"

#include <cstring>
#include <map>

#include "cores/config_reader.h"
#include "engine/error.h"
#include "layers/full_factorized2d.h"
#include "layers/full_gaussian2d.h"
#include "layers/point_pooled2d.h"
#include "weights/state_dict.h"

namespace npcore {
namespace {

std::string list_names(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// Training-only keyword arguments every readout accepts and ignores.
void ignore_training_keys(ConfigReader& r) {
  for (const char* k : {"init_mu_range", "init_sigma", "init_range", "init_noise", "batch_sample",
                        "feature_reg_weight", "gamma_readout", "spatial_and_feature_reg_weight",
                        "mean_activity", "source_grids", "share_transform"})
    r.ignore(k);
}

// share_features with shared_match_ids {data_key: [ids]} (MultiReadoutSharedParametersBase's
// arguments): this session's ids, or empty when features are not shared.
std::vector<int64_t> read_match_ids(ConfigReader& r, const std::string& data_key) {
  const bool share = r.get_bool("share_features", false);
  const nlohmann::json& ids = r.raw("shared_match_ids");
  if (!share) return {};
  if (!ids.is_object() || !ids.contains(data_key))
    r.fail("shared_match_ids", "must map every data_key (here '" + data_key +
                                   "') to a list of match ids when "
                                   "share_features is true");
  const nlohmann::json& v = ids.at(data_key);
  std::vector<int64_t> out;
  if (!v.is_array() || v.empty())
    r.fail("shared_match_ids", "must hold a non-empty list of integers for '" + data_key + "'");
  for (const auto& e : v) {
    if (!e.is_number_integer()) r.fail("shared_match_ids", "must hold integers for '" + data_key + "'");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

void refuse_weighted_features(ConfigReader& r) {
  if (r.get_bool("return_weighted_features", false))
    r.fail("return_weighted_features", "is not supported (the engine returns one value per neuron)");
}

std::unique_ptr<Readout> make_gaussian(ConfigReader& r, const std::string& key, const std::string& name,
                                       const Shape& in, int64_t n) {
  FullGaussian2dParams p;
  p.bias = r.get_bool("bias");
  p.align_corners = r.get_bool("align_corners", true);
  p.gauss_type = r.get_string("gauss_type", "full");
  if (p.gauss_type != "full" && p.gauss_type != "uncorrelated" && p.gauss_type != "isotropic")
    r.fail("gauss_type", "must be one of full, uncorrelated, isotropic");
  if (r.has("init_mu_range")) {
    const double v = r.get_number("init_mu_range");
    if (v <= 0 || v > 1) r.fail("init_mu_range", "must be in (0, 1] (FullGaussian2d refuses other values)");
  }
  if (r.has("init_sigma") && r.get_number("init_sigma") <= 0) r.fail("init_sigma", "must be positive");
  const nlohmann::json& gmp = r.raw("grid_mean_predictor");
  if (!gmp.is_null()) {
    if (r.has("grid_mean_predictor_type") && r.get_string("grid_mean_predictor_type") != "cortex")
      r.fail("grid_mean_predictor_type", "must be 'cortex', the only kind neuralpredictors has");
    ConfigReader g(gmp, r.where() + ": grid_mean_predictor");
    p.predicted_grid = true;
    p.hidden_layers = g.get_int("hidden_layers", 0);
    p.hidden_features = g.get_int("hidden_features", 20);
    p.final_tanh = g.get_bool("final_tanh", false);
    p.grid_input_dims = g.get_int("input_dimensions", 2);
    if (g.has("type") && g.get_string("type") != "cortex") g.fail("type", "must be 'cortex'");
    if (p.hidden_layers < 0) g.fail("hidden_layers", "must be non-negative");
    if (p.hidden_features < 1) g.fail("hidden_features", "must be positive");
    if (p.grid_input_dims < 1) g.fail("input_dimensions", "must be positive");
    g.finish();
  } else {
    r.ignore("grid_mean_predictor_type");
  }
  if (r.has("share_grid") && r.get_bool("share_grid"))
    r.fail("share_grid", "is not supported (shared grids are not implemented; share_features is)");
  p.match_ids = read_match_ids(r, key);
  refuse_weighted_features(r);
  ignore_training_keys(r);
  r.finish();
  return std::make_unique<FullGaussian2d>(name, in, n, p);
}

std::unique_ptr<Readout> make_point_pooled(ConfigReader& r, const std::string& key, const std::string& name,
                                           const Shape& in, int64_t n) {
  PointPooled2dParams p;
  p.pool_steps = r.get_int("pool_steps");
  p.bias = r.get_bool("bias");
  p.pool_kern = r.get_int("pool_kern");
  p.align_corners = r.get_bool("align_corners", true);
  const double ir = r.get_number("init_range");
  if (ir <= 0 || ir > 1) r.fail("init_range", "must be in (0, 1] (PointPooled2d refuses other values)");
  if (p.pool_steps < 0) r.fail("pool_steps", "must be a non-negative integer");
  if (p.pool_kern < 1) r.fail("pool_kern", "must be at least 1");
  refuse_weighted_features(r);
  ignore_training_keys(r);
  r.finish();
  return std::make_unique<PointPooled2d>(name, in, n, p);
}

std::unique_ptr<Readout> make_factorized(ConfigReader& r, const std::string& key, const std::string& name,
                                         const Shape& in, int64_t n) {
  FullFactorized2dParams p;
  p.bias = r.get_bool("bias");
  p.normalize = r.get_bool("normalize", true);
  p.constrain_pos = r.get_bool("constrain_pos", false);
  p.positive_spatial = r.get_bool("positive_spatial", false);
  r.get_bool("positive_weights", false);  // only the `weight` property reads it, never the forward
  p.match_ids = read_match_ids(r, key);
  ignore_training_keys(r);
  r.finish();
  return std::make_unique<FullFactorized2d>(name, in, n, p);
}

using Builder = std::unique_ptr<Readout> (*)(ConfigReader&, const std::string&, const std::string&,
                                             const Shape&, int64_t);
const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> m = {
      {"FullGaussian2d", make_gaussian},     {"PointPooled2d", make_point_pooled},
      {"FullFactorized2d", make_factorized}, {"SpatialXFeatureLinear", make_factorized},
      {"FullSXF", make_factorized},
  };
  return m;
}

}  // namespace

void Readout::check_input(const Shape& x) const {
  if (x.rank() != 4) throw ShapeError(name_ + ": " + type() + " reads an NCHW feature map, got " + x.str());
  if (x[1] != in_shape_[0] || (!any_spatial_size() && (x[2] != in_shape_[1] || x[3] != in_shape_[2])))
    throw ShapeError(name_ + ": " + type() + " has in_shape " + in_shape_.str() +
                     " but the core's output is " + Shape{x[1], x[2], x[3]}.str() +
                     (any_spatial_size() ? " (the channels must agree)" : ""));
}

const std::vector<std::string>& readout_names() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> r;
    for (const auto& [k, b] : builders()) r.push_back(k);
    return r;
  }();
  return v;
}

std::unique_ptr<Readout> make_readout(const std::string& type, ConfigReader& config,
                                      const std::string& data_key, const std::string& name,
                                      const Shape& in_shape, int64_t outdims) {
  auto it = builders().find(type);
  if (it == builders().end())
    throw ConfigError(config.where() + ": unknown readout type '" + type +
                      "'; accepted: " + list_names(readout_names()));
  if (outdims < 1)
    throw ConfigError(config.where() + ": data_key '" + data_key + "' has " + std::to_string(outdims) +
                      " neurons; at least 1 is needed");
  return it->second(config, data_key, name, in_shape, outdims);
}

std::vector<int64_t> read_index_buffer(const StateDict& sd, const std::string& key, int64_t n,
                                       int64_t limit) {
  const StoredTensor* t = sd.find(key);
  if (!t)
    throw WeightError(sd.source() + ": missing " + key + " [" + std::to_string(n) + "] (integer buffer)");
  if (t->shape != std::vector<int64_t>{n})
    throw WeightError(sd.source() + ": " + key + ": file has " + t->shape_str() + ", expected [" +
                      std::to_string(n) + "]");
  if (t->dtype != DType::I64 && t->dtype != DType::I32)
    throw WeightError(sd.source() + ": " + key + ": dtype " + dtype_name(t->dtype) + ", expected I64 or I32");
  if (!t->data) throw WeightError(sd.source() + ": " + key + ": data not loaded");
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t x;
    if (t->dtype == DType::I64) {
      std::memcpy(&x, t->data + 8 * i, 8);
    } else {
      int32_t y;
      std::memcpy(&y, t->data + 4 * i, 4);
      x = y;
    }
    if (x < 0 || x >= limit)
      throw WeightError(sd.source() + ": " + key + "[" + std::to_string(i) + "] is " + std::to_string(x) +
                        "; it must index one of the " + std::to_string(limit) + " shared feature vectors");
    v[size_t(i)] = x;
  }
  return v;
}

}  // namespace npcore
