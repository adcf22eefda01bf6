// Winograd F(2, r) transforms (engine/winograd.h) and which convolutions the native backend computes with
// Winograd; the kernels are engine/native/common/winograd_conv.h, instantiated per ISA.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/error.h"
#include "engine/parallel.h"
#include "engine/winograd.h"


namespace npcore {

namespace {

// A copy of a compile-time array into a vector, through a pointer the optimiser cannot see through.
// GCC 12.2 with -march=native on this project's machines (rocketlake tuning; also skylake-avx512 and
// icelake-server, not x86-64-v4 or sapphirerapids) folds vector::assign from these constexpr arrays into
// wrong constants (e.g. A^T's row 0 of F(2, 3) came out 1 1 1 1 instead of 1 1 1 0); the exactness test
// in tests/test_winograd.cpp caught it.
template <size_t N>
std::vector<double> opaque_copy(const std::array<double, N>& a) {
  const double* p = a.data();
  __asm__("" : "+r"(p));
  return std::vector<double>(p, p + N);
}

template <int A>
WinogradTransforms copy_transforms() {
  using W = WinogradConst<A>;
  WinogradTransforms t;
  t.m = 2;
  t.r = A - 1;
  t.alpha = A;
  t.AT = opaque_copy(W::ATd);
  t.G = opaque_copy(W::Gd);
  t.BT = opaque_copy(W::BTd);
  return t;
}

}  // namespace

WinogradTransforms winograd_transforms(int m, int r) {
  if (m == 2 && r == 3) return copy_transforms<4>();
  if (m == 2 && r == 5) return copy_transforms<6>();
  if (m == 2 && r == 7) return copy_transforms<8>();
  throw BackendError("winograd: F(" + std::to_string(m) + ", " + std::to_string(r) +
                     ") is not built (F(2, 3), F(2, 5), F(2, 7) are)");
}

bool winograd_eligible(const ConvSpec& spec, const Shape& in) {
  const Conv2dParams& p = spec.params;
  return p.groups == 1 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1 &&
         p.kernel_h == p.kernel_w && (p.kernel_h == 3 || p.kernel_h == 5 || p.kernel_h == 7) &&
         p.in_channels >= 16 && p.out_channels >= 16;
}

}  // namespace npcore
