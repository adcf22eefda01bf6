#pragma once
// Memory and per-thread state for running one plan (a core's, a layer's): one per thread, made by the
// plan, reused across calls so that a steady-state run allocates nothing.
#include <memory>

#include "engine/conv.h"
#include "engine/tensor.h"

namespace npcore {

struct Workspace {
  AlignedBuffer scratch;
  size_t scratch_floats = 0;
  std::unique_ptr<RunState> state;
  const void* owner = nullptr;  // the plan that made it (a plan refuses another's workspace)
};

}  // namespace npcore
