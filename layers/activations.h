#pragma once
// The nonlinearities of neuralpredictors.layers.activations and torch.nn as one layer type:
// AdaptiveELU (elu(x - xshift) + yshift), Elu1 (elu(x) + 1), Exp, Log1Exp, SoftThreshold, and torch.nn's
// ELU, ReLU, Sigmoid. No parameters; fusion folds them into the preceding conv's epilogue.
#include "layers/layer.h"

namespace npcore {

class ActivationLayer : public Layer {
 public:
  // `type_name` is the PyTorch class name reported by type().
  ActivationLayer(std::string name, std::string type_name, const Activation& act);
  const char* type() const override { return type_name_.c_str(); }
  const Activation& activation() const { return act_; }
  Shape output_shape(const Shape& in) const override { return in; }
  // SoftThreshold keeps its `zero` buffer in the state_dict (a scalar, 0 when built): logaddexp(x, zero).
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;
  void save(StateDict& sd) const override;
  bool as_activation(Activation* out) const override {
    *out = act_;
    return true;
  }
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;

 private:
  bool has_zero() const { return act_.kind == ActKind::SoftThreshold; }
  std::string type_name_;
  Activation act_;
  float zero_ = 0.0f;  // SoftThreshold's buffer
};

// An in-place op applying `act` to every element.
std::unique_ptr<Op> make_activation_op(const Activation& act, const Shape& in, Isa isa = Isa::Auto);

}  // namespace npcore
