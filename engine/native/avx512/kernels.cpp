// The AVX-512 kernels: the algorithm templates of engine/native/common/ instantiated with this ISA's vector
// traits, inside namespace npcore::native::avx512. Only this namespace is compiled for the ISA
// (#pragma GCC target below, after engine/native/common/outside_isa.h: see there why);
// only called after CPUID said the CPU has them (engine/native/dispatch.cpp).
#include "engine/native/common/outside_isa.h"

#if defined(__clang__)
// clang has no #pragma GCC target: CMakeLists.txt compiles this file with the ISA's flags instead (the
// fuzz build's way; the release build and its symbol check are GCC's).
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")
#endif

#include "engine/native/avx512/vec.h"

#define NPCORE_ISA_NS avx512
#include "engine/native/common/table.h"

namespace npcore::native::avx512 {

const Kernels& table() {
  // Register budget (32 vector registers): direct conv 8 channels x 3 vectors; Winograd GEMM
  // 8 channels x 3 vectors, and 16 x 1 for 7x7 kernels; FFT complex GEMM 8 channels x 1 vector (x re, im):
  // a group of 16 tiles, whose spectra (130 points x 64 channels x 16 tiles, ~1 MB) stay in L2 as AVX2's
  // do; 2 vectors (4 x 2) doubled them and the GEMM read them from L3 (hid7x7 at 144x256 ~17% slower).
  static const Kernels k = make_table<Vec, 8, 8, 3, 16, 8, 1>(Isa::Avx512);
  return k;
}

}  // namespace npcore::native::avx512

#if !defined(__clang__)
#pragma GCC pop_options
#endif
