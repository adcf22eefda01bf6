#pragma once
// neuralpredictors' SqueezeExcitationBlock: per image, the global average of each channel goes through
// Linear(C -> C/r) (`se.1`), ReLU, Linear(C/r -> C) (`se.3`), Sigmoid; the input is scaled per channel by
// the result. Runs in place.
#include "layers/layer.h"

namespace npcore {

class SqueezeExcitationBlock : public Layer {
 public:
  SqueezeExcitationBlock(std::string name, int64_t channels, int64_t reduction);
  const char* type() const override { return "SqueezeExcitationBlock"; }
  Shape output_shape(const Shape& in) const override;
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;  // torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  void save(StateDict& sd) const override;
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;

 private:
  int64_t c_, hidden_;
  Tensor w1_, b1_, w2_, b2_;  // [hidden, C], [hidden], [C, hidden], [C]
};

}  // namespace npcore
