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
#include "engine/native/common/direct_conv.h"
#include "engine/native/common/max_pool.h"
#include "engine/native/common/simd_math.h"
#include "engine/native/common/winograd_conv.h"

namespace npcore::native::avx2 {
namespace {

// Register budget (16 vector registers): direct conv 4 channels x 3 vectors; Winograd GEMM
// 4 channels x 3 vectors, and 8 x 1 for 7x7 kernels.
constexpr int kDirectOcb = 4, kWinoOcb = 4, kWinoVecs = 3, kWinoOcbBig = 8;

std::unique_ptr<ConvKernel> make_direct(const ConvSpec& spec, const Shape& in) {
  return std::unique_ptr<ConvKernel>(new DirectConv<Vec, kDirectOcb>(spec, in));
}
std::unique_ptr<ConvKernel> make_winograd(const ConvSpec& spec, const Shape& in) {
  return std::unique_ptr<ConvKernel>(new WinogradConv<Vec, kWinoOcb, kWinoVecs, kWinoOcbBig>(spec, in));
}

}  // namespace

const Kernels& table() {
  static const Kernels k = [] {
    Kernels t;
    t.isa = Isa::Avx2;
    t.lanes = Vec::W;
    t.direct_ocb = kDirectOcb;
    t.winograd_ocb = kWinoOcb;
    t.winograd_vecs = kWinoVecs;
    t.winograd_ocb_big = kWinoOcbBig;
    t.winograd_vecs_big = 1;
    t.direct = &make_direct;
    t.winograd = &make_winograd;
    t.activation = &activation<Vec>;
    t.max_pool_2x2 = &max_pool_2x2<Vec>;
    return t;
  }();
  return k;
}

}  // namespace npcore::native::avx2

#if !defined(__clang__)
#pragma GCC pop_options
#endif
