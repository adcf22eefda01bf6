#pragma once
// Everything the per-ISA kernels use from outside their own namespace: the standard library, the
// intrinsics and the engine's headers. engine/native/<isa>/kernels.cpp includes this first, before it
// switches the target to its ISA (#pragma GCC target), so that every inline function and template these
// headers define - std::unique_ptr's destructor, ConvKernel's defaults - is compiled for the baseline even
// where a per-ISA object emits its own copy (as an unoptimised or -O1 build does). The linker keeps one
// of the copies for the whole library; were it an AVX-512 one, a CPU without AVX-512 would die with an
// illegal instruction. Only the ISA's own namespace (npcore::native::<isa>) is compiled for the ISA;
// tests/check_isa_symbols.sh checks this on the objects. A header the common templates need must be
// listed here.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/activation.h"
#include "engine/conv.h"
#include "engine/intrinsics.h"
#include "engine/native/kernels.h"
#include "engine/parallel.h"
#include "engine/tensor.h"
#include "engine/winograd.h"
