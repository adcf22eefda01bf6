#pragma once
// Parsing of Stacked2dCore-family configs (internal: uses ConfigReader / nlohmann::json).
#include "cores/config_reader.h"
#include "cores/stacked2d_core.h"

namespace npcore {

// Defaults that differ between Stacked2dCore, SE2dCore and RotationEquivariant2dCore.
struct Stacked2dDefaults {
  bool bias = true;
  bool se = false;  // accept n_se_blocks / se_reduction (SE2dCore)
};

// Reads every Stacked2dCore argument (and SE2dCore's when d.se), resolving lists and stack, validating
// the combinations upstream refuses. Does not call r.finish(): the caller may read more keys first.
Stacked2dOptions parse_stacked2d_options(ConfigReader& r, const Stacked2dDefaults& d);

// Resolves `nonlinearity_type` / `nonlinearity_config` (AdaptiveELU uses elu_shift instead).
Activation parse_nonlinearity(ConfigReader& r, const std::string& type, double xshift, double yshift);

}  // namespace npcore
