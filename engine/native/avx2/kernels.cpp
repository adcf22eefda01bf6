// The AVX2 + FMA kernels: the algorithm templates of engine/native/common/ instantiated with this ISA's vector
// traits, inside namespace npcore::native::avx2. Only this namespace is compiled for the ISA
// (#pragma GCC target below, after engine/native/common/outside_isa.h: see there why);
// only called after CPUID said the CPU has them (engine/native/dispatch.cpp).
#include "engine/native/common/outside_isa.h"

#if defined(__clang__)
// clang has no #pragma GCC target: CMakeLists.txt compiles this file with the ISA's flags instead (the
// fuzz build's way; the release build and its symbol check are GCC's).
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#include "engine/native/avx2/vec.h"

#define NPCORE_ISA_NS avx2
#include "engine/native/common/table.h"

namespace npcore::native::avx2 {

const Kernels& table() {
  // Register budget (16 vector registers): direct conv 4 channels x 3 vectors; Winograd GEMM
  // 4 channels x 3 vectors, and 8 x 1 for 7x7 kernels; FFT complex GEMM 2 channels x 2 vectors (x re, im).
  static const Kernels k = make_table<Vec, 4, 4, 3, 8, 2, 2>(Isa::Avx2);
  return k;
}

}  // namespace npcore::native::avx2

#if !defined(__clang__)
#pragma GCC pop_options
#endif
