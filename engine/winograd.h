#pragma once
// Winograd minimal filtering F(m x m, r x r) for stride-1 convolutions: the transform matrices, built
// exactly (rational Toom-Cook) for chosen interpolation points, and the native backend's kernel that
// uses them. Y = A^T [ (G g G^T) . (B^T d B) ] A computes an m x m output tile of the cross-correlation
// of an (m + r - 1)^2 input tile d with an r x r filter g, with (m + r - 1)^2 multiplications per input
// channel instead of m^2 r^2.
#include <array>
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

// The same matrices for F(2, A - 1) as compile-time constants (float), so that the kernels' transforms
// unroll with zero terms dropped and +-1 terms as additions. Built by the same construction as
// winograd_transforms (a test checks they agree).
namespace winograd_detail {
constexpr double kPoints[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
constexpr double ipow(double x, int n) {
  double r = 1.0;
  for (int i = 0; i < n; ++i) r *= x;
  return r;
}
}  // namespace winograd_detail

template <int A>
struct WinogradConst {
  static_assert(A >= 3 && A <= 8, "F(2, r) with r = A - 1 in 2..7");
  // B^T [A, A]: row k < A-1 holds prod_{q != p_k} (x - q), the last row prod_q (x - q) (ascending powers).
  static constexpr std::array<float, A * A> bt() {
    std::array<float, A * A> out{};
    for (int k = 0; k < A; ++k) {
      double c[A + 1] = {1.0};
      int deg = 0;
      for (int q = 0; q < A - 1; ++q) {
        if (q == k) continue;
        for (int i = deg + 1; i >= 1; --i) c[i] = c[i - 1] - winograd_detail::kPoints[q] * c[i];
        c[0] = -winograd_detail::kPoints[q] * c[0];
        ++deg;
      }
      for (int j = 0; j < A; ++j) out[size_t(k * A + j)] = float(c[j]);
    }
    return out;
  }
  // A^T [2, A]: row i holds p^i for the finite points and, in the last row, 1 at infinity.
  static constexpr std::array<float, 2 * A> at() {
    std::array<float, 2 * A> out{};
    for (int i = 0; i < 2; ++i) {
      for (int k = 0; k < A - 1; ++k) out[size_t(i * A + k)] = float(winograd_detail::ipow(winograd_detail::kPoints[k], i));
      out[size_t(i * A + A - 1)] = i == 1 ? 1.0f : 0.0f;
    }
    return out;
  }
  static constexpr std::array<float, A * A> BT = bt();
  static constexpr std::array<float, 2 * A> AT = at();
};

// Whether the native backend computes this convolution with Winograd F(2x2, r x r): stride 1, no
// dilation, groups 1, square odd kernel 3..7, enough channels to amortise the transforms.
bool winograd_eligible(const ConvSpec& spec, const Shape& in);
// The kernel (AVX-512 builds only; elsewhere winograd_eligible is false).
std::unique_ptr<ConvKernel> make_winograd_conv(const ConvSpec& spec, const Shape& in);

}  // namespace npcore
