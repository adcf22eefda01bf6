#pragma once
// What CoreHandle and ModelHandle share (internal to api/): the public shape and options in the
// engine's terms.
#include <string>

#include "engine/options.h"
#include "engine/tensor.h"
#include "npcore/core.h"

namespace npcore::api_detail {

// "[1, 1, 64, 64]"
std::string shape_str(const Shape4& s);
// Throws ShapeError unless every dimension is >= 1.
Shape to_shape(const Shape4& s);
// Throws UsageError for negative threads, ConfigError for an unknown backend.
EngineOptions engine_options(const CoreOptions& o);

}  // namespace npcore::api_detail
