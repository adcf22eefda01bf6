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
  bool as_activation(Activation* out) const override {
    *out = act_;
    return true;
  }
  std::unique_ptr<Op> plan(const Shape& in, const EngineOptions& opt) const override;

 private:
  std::string type_name_;
  Activation act_;
};

// An in-place op applying `act` to every element.
std::unique_ptr<Op> make_activation_op(const Activation& act, const Shape& in);

}  // namespace npcore
