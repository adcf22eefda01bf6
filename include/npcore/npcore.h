#pragma once
// The umbrella header of npcore's public C++ API: #include <npcore/npcore.h>.
#include "npcore/core.h"
#include "npcore/error.h"
#include "npcore/export.h"
#include "npcore/model.h"
#include "npcore/version.h"
