#pragma once
// neuralpredictors' PointPooled2d readout (layers/readouts/point_pooled.py) in eval mode: each neuron
// reads the feature map at its grid point (clamped to [-1, 1], plus the image's shift) on the map and on
// pool_steps successive average poolings (kernel = stride = pool_kern), and takes a dot product of the
// C * (pool_steps + 1) values with its features, plus a bias.
#include "layers/readout.h"

namespace npcore {

struct PointPooled2dParams {
  int64_t pool_steps = 0, pool_kern = 2;
  bool bias = true;
  bool align_corners = true;
};

class PointPooled2d final : public Readout {
 public:
  PointPooled2d(std::string name, Shape in_shape, int64_t outdims, PointPooled2dParams p);
  const char* type() const override { return "PointPooled2d"; }
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(uint64_t seed) override;
  void prepare(const EngineOptions& opt) override;
  size_t scratch_floats(const Shape& x) const override;
  // Also refuses a map that pool_steps poolings would shrink to nothing.
  void check_input(const Shape& x) const override;
  void run(const Tensor& x, const float* shift, float* out, float* scratch, int threads) const override;

 private:
  PointPooled2dParams p_;
  std::vector<float> grid_;      // [outdims, 2]; clamped by prepare()
  std::vector<float> features_;  // [C * levels, outdims]
  std::vector<float> bias_;
  std::vector<float> feat_t_;  // [outdims, levels * C]
};

}  // namespace npcore
