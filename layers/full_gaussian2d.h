#pragma once
// neuralpredictors' FullGaussian2d readout (layers/readouts/gaussian.py) in eval mode: each neuron reads
// the feature map at its mean position mu (clamped to [-1, 1]; sigma is not used at eval), plus the
// image's shift, by bilinear grid_sample with zero padding, and takes a dot product with its feature
// vector, plus a bias. mu is a parameter (_mu) or, with a grid_mean_predictor, mu_transform(source_grid);
// features are per neuron (_features [1, C, 1, N]) or shared (scales * _features[..., index]).
#include <memory>

#include "layers/mlp_shifter.h"
#include "layers/readout.h"

namespace npcore {

struct FullGaussian2dParams {
  bool bias = true;
  bool align_corners = true;
  std::string gauss_type = "full";  // full, uncorrelated, isotropic: the shape of sigma
  // grid_mean_predictor (when predicted_grid): Linear(in, .), [ELU, Linear] * hidden_layers, [Tanh].
  bool predicted_grid = false;
  int64_t grid_input_dims = 2, hidden_layers = 0, hidden_features = 20;
  bool final_tanh = false;
  // Shared features: match ids of this readout's neurons (empty: not shared).
  std::vector<int64_t> match_ids;
};

class FullGaussian2d final : public Readout {
 public:
  FullGaussian2d(std::string name, Shape in_shape, int64_t outdims, FullGaussian2dParams p);
  const char* type() const override { return "FullGaussian2d"; }
  bool any_spatial_size() const override { return true; }
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(uint64_t seed) override;
  void prepare(const EngineOptions& opt) override;
  size_t scratch_floats(const Shape& x) const override;
  void run(const Tensor& x, const float* shift, float* out, float* scratch, int threads) const override;
  // The eval grid [outdims, 2] (x, y) after prepare().
  const std::vector<float>& grid() const { return grid_; }

 private:
  int64_t shared_count() const;  // distinct match ids
  FullGaussian2dParams p_;
  std::unique_ptr<DenseStack> mu_transform_;
  std::vector<float> mu_;             // [outdims, 2] (_mu) or source_grid [outdims, grid_input_dims]
  std::vector<float> features_;       // [C, outdims] or, shared, [C, K]
  std::vector<float> scales_;         // shared: [outdims]
  std::vector<int64_t> share_index_;  // shared: [outdims]
  std::vector<float> bias_;           // [outdims] or empty
  // Prepared.
  std::vector<float> grid_;    // [outdims, 2], clamped
  std::vector<float> feat_t_;  // [outdims, C]: each neuron's features contiguous
};

}  // namespace npcore
