#pragma once
// neuralpredictors' Stacked2dCore and SE2dCore (a Stacked2dCore with squeeze-and-excitation blocks on its
// last n_se_blocks layers and other defaults). Layer l is the Sequential "features.layer<l>":
//   conv | ds_conv | attention_conv,  [norm],  [bias | scale],  [nonlin],  [seg_ex_block]
// with upstream's quirks kept (layer0's conv never has a bias; hidden convs always do), so that a
// state_dict trained in PyTorch loads and computes the same here. See ../shared/CORES.md.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cores/core.h"

namespace npcore {

// Stacked2dCore's constructor arguments, resolved to per-layer lists (neuralpredictors' names).
struct Stacked2dOptions {
  int64_t input_channels = 1;
  int64_t layers = 3;
  std::vector<int64_t> hidden_channels;  // per layer
  int64_t input_kern = 9;
  std::vector<int64_t> hidden_kern;      // per hidden layer (layers - 1)
  int64_t skip = 0;
  int64_t stride = 1, input_stride = 1;
  bool final_nonlinearity = true;
  double elu_xshift = 0.0, elu_yshift = 0.0;
  std::vector<bool> bias, batch_norm, batch_norm_scale;  // per layer
  bool pad_input = true;
  // As given: nullopt for None; Stacked2dCore treats 0 like None, RotationEquivariant2dCore does not.
  std::optional<std::pair<int64_t, int64_t>> hidden_padding;
  bool hidden_padding_is_pair = false;  // given as [h, w] (truthy upstream even when zero)
  int64_t hidden_dilation = 1;
  std::vector<int64_t> stack;  // resolved indices
  bool depth_separable = false, attention_conv = false, linear = false;
  std::string nonlinearity_type = "AdaptiveELU";
  Activation nonlinearity;  // resolved, with elu_shift for AdaptiveELU
  // SE2dCore only.
  int64_t n_se_blocks = 0, se_reduction = 32;
};

class Stacked2dCore : public Core {
 public:
  explicit Stacked2dCore(const Stacked2dOptions& o);
  const char* type() const override { return "Stacked2dCore"; }
  const Stacked2dOptions& config() const { return o_; }

 protected:
  // For subclasses that build their own layers (RotationEquivariant2dCore).
  struct NoBuild {};
  Stacked2dCore(const Stacked2dOptions& o, NoBuild);
  // Appends norm / bias / scale for layer l (add_bn_layer upstream); rotations R >= 1 makes them
  // rotation-equivariant (parameters shared by the R rotations of each feature).
  void add_norm_layers(Sequential& layer, int64_t l, int64_t rotations = 0) const;
  // Appends the nonlinearity for layer l, if it gets one.
  void add_activation(Sequential& layer, int64_t l) const;
  // Adds the state_dict prefixes that neuralpredictors stores but inference ignores.
  void set_common_wiring();

  Stacked2dOptions o_;
};

class SE2dCore : public Stacked2dCore {
 public:
  explicit SE2dCore(const Stacked2dOptions& o) : Stacked2dCore(o) {}
  const char* type() const override { return "SE2dCore"; }
};

}  // namespace npcore
