#pragma once
// neuralpredictors' RotationEquivariant2dCore: a Stacked2dCore whose convolutions are HermiteConv2D layers
// computing every feature at num_rotations rotations (a layer's output channel is rotation * C + c).
// Layer l is the Sequential "features.layer<l>":  hermite_conv,  [norm],  [bias | scale],  [nonlin]
// with upstream's quirks kept (../shared/CORES.md): layer0 uses `stride` (not input_stride); hidden layers
// take hidden[l-1] * R inputs; `hidden_padding`, when None, is hidden_kern[0] // 2 for every hidden layer,
// and 0 means 0. Norms are shared by the R rotations of a feature (rot_eq_batch_norm, the default), or
// plain per-channel layers over all C * R channels (rot_eq_batch_norm=False, where upstream crashes).
#include "cores/stacked2d_core.h"

namespace npcore {

class ConfigReader;

// RotationEquivariant2dCore's own keyword arguments.
struct RotationEquivariantOptions {
  int64_t num_rotations = 8;
  int64_t upsampling = 2;
  bool rot_eq_batch_norm = true;
  double init_std = 0.1;  // coeffs ~ normal(0, init_std) at init
};

// Reads num_rotations, upsampling, rot_eq_batch_norm and init_std, and refuses what upstream refuses for
// this core given the already parsed Stacked2dCore options (skip > 0). Does not call r.finish().
RotationEquivariantOptions parse_rotation_equivariant_options(ConfigReader& r, const Stacked2dOptions& o);

class RotationEquivariant2dCore : public Stacked2dCore {
 public:
  // Throws ConfigError for skip > 0 (NotImplementedError upstream) and invalid Hermite parameters.
  RotationEquivariant2dCore(const Stacked2dOptions& o, const RotationEquivariantOptions& r);
  const char* type() const override { return "RotationEquivariant2dCore"; }
  const RotationEquivariantOptions& rotation_options() const { return r_; }

 private:
  // add_bn_layer with rot_eq_batch_norm=False: BatchNorm2d / Bias2DLayer / Scale2DLayer over C * R channels.
  void add_plain_norm_layers(Sequential& layer, int64_t l) const;

  RotationEquivariantOptions r_;
};

}  // namespace npcore
