#pragma once
// The engine's exceptions are the public ones (include/npcore/error.h): Error, ConfigError, ShapeError,
// FormatError, WeightError, BackendError, UsageError, ResourceError.
#include "npcore/error.h"
