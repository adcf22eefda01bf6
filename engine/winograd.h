#pragma once
// Winograd minimal filtering F(m x m, r x r) for stride-1 convolutions: the transform matrices, built
// exactly (rational Toom-Cook) for chosen interpolation points, and the native backend's kernel that
// uses them. Y = A^T [ (G g G^T) . (B^T d B) ] A computes an m x m output tile of the cross-correlation
// of an (m + r - 1)^2 input tile d with an r x r filter g, with (m + r - 1)^2 multiplications per input
// channel instead of m^2 r^2.
#include <memory>
#include <vector>

#include "engine/conv.h"

namespace npcore {

struct WinogradTransforms {
  int m = 0, r = 0, alpha = 0;  // alpha = m + r - 1
  std::vector<double> AT;       // [m, alpha]
  std::vector<double> G;        // [alpha, r]
  std::vector<double> BT;       // [alpha, alpha]
};

// The transforms for F(m, r) with the interpolation points 0, 1, -1, 2, -2, 1/2, -1/2, ... (as many as
// alpha - 1 needs) and infinity. Supported: m + r - 1 <= 8.
WinogradTransforms winograd_transforms(int m, int r);

// Whether the native backend computes this convolution with Winograd F(2x2, r x r): stride 1, no
// dilation, groups 1, square odd kernel 3..7, enough channels to amortise the transforms.
bool winograd_eligible(const ConvSpec& spec, const Shape& in);
// The kernel (AVX-512 builds only; elsewhere winograd_eligible is false).
std::unique_ptr<ConvKernel> make_winograd_conv(const ConvSpec& spec, const Shape& in);

}  // namespace npcore
