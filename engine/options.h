#pragma once
// How a core (or a stand-alone layer) is prepared and run: the conv backend, fusion, Winograd and the
// thread count. Passed to Core::prepare; plans keep a copy.
#include <cstddef>

#include "engine/conv.h"

namespace npcore {

struct EngineOptions {
  Backend backend = Backend::Native;  // the fastest; reference, gemm and onednn for checking
  bool fuse = true;                   // fold norms/affines and activations into convs
  bool winograd = true;               // native backend: Winograd for eligible convs (ConvSpec::allow_winograd)
  int threads = 0;                    // 0: OpenMP's default (all cores)
  Isa isa = Isa::Auto;                // native kernels' ISA (Auto: NPCORE_ISA, else the CPU's best)
  Precision precision = Precision::Accurate;  // native: Winograd for 3x3 only; Fast: also 5x5/7x7
  // Bytes one plan may allocate for a run (its workspace: activations, concatenation and kernel scratch;
  // plus the output tensor); 0: no cap. A shape that would pass it fails in plan() with ResourceError.
  size_t max_memory = 0;
};

}  // namespace npcore
