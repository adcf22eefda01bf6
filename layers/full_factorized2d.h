#pragma once
// neuralpredictors' FullFactorized2d readout (layers/readouts/factorized.py; aliases
// SpatialXFeatureLinear, FullSXF) in eval mode: y[n, o] = sum_c features[o, c] * sum_hw x[n, c, h, w] *
// mask[o, h, w] + bias[o], where mask is the spatial weight l2-normalised per neuron (normalize), then
// clamped at 0 (constrain_pos, which also clamps the features) or made absolute (positive_spatial).
#include "layers/readout.h"

namespace npcore {

struct FullFactorized2dParams {
  bool bias = true;
  bool normalize = true;
  bool constrain_pos = false;
  bool positive_spatial = false;
  std::vector<int64_t> match_ids;  // shared features (empty: not shared)
};

class FullFactorized2d final : public Readout {
 public:
  FullFactorized2d(std::string name, Shape in_shape, int64_t outdims, FullFactorized2dParams p);
  const char* type() const override { return "FullFactorized2d"; }
  bool takes_shift() const override { return false; }
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(uint64_t seed) override;
  void prepare(const EngineOptions& opt) override;
  void run(const Tensor& x, const float* shift, float* out, float* scratch, int threads) const override;

 private:
  int64_t shared_count() const;
  FullFactorized2dParams p_;
  std::vector<float> spatial_;   // [outdims, H, W]
  std::vector<float> features_;  // [outdims, C] or, shared, [K, C]
  std::vector<float> scales_;    // shared: [outdims]
  std::vector<int64_t> share_index_;
  std::vector<float> bias_;
  std::vector<float> mask_;  // prepared [outdims, H * W]
  std::vector<float> feat_;  // prepared [outdims, C]
};

}  // namespace npcore
