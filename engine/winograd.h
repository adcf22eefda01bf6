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

// The transforms for F(2, r), r in {3, 5, 7}, with the interpolation points 0, 1, -1, 2, -2, 1/2, -1/2
// (as many as alpha - 1 needs) and infinity: a copy of WinogradConst<r + 1>'s. Throws BackendError for
// other sizes.
WinogradTransforms winograd_transforms(int m, int r);

// The matrices of F(2, r), r = A - 1, built at compile time (exactly: the points are dyadic rationals),
// so that the kernels' transforms unroll with zero terms dropped and +-1 terms as additions.
namespace winograd_detail {
constexpr double kPoints[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
constexpr double ipow(double x, int n) {
  double r = 1.0;
  for (int i = 0; i < n; ++i) r *= x;
  return r;
}
// B^T [A, A]: row k < A-1 holds prod_{q != p_k} (x - q), the last row prod_q (x - q) (ascending powers).
template <int A>
constexpr std::array<double, A * A> bt() {
  std::array<double, A * A> out{};
  for (int k = 0; k < A; ++k) {
    double c[A + 1] = {};
    c[0] = 1.0;
    int deg = 0;
    for (int q = 0; q < A - 1; ++q) {
      if (q == k) continue;
      for (int i = deg + 1; i >= 1; --i) c[i] = c[i - 1] - kPoints[q] * c[i];
      c[0] = -kPoints[q] * c[0];
      ++deg;
    }
    for (int j = 0; j < A; ++j) out[size_t(k * A + j)] = c[j];
  }
  return out;
}

// A^T [2, A]: row i holds p^i for the finite points and, in the last row, 1 at infinity.
template <int A>
constexpr std::array<double, 2 * A> at() {
  std::array<double, 2 * A> out{};
  for (int i = 0; i < 2; ++i) {
    for (int k = 0; k < A - 1; ++k) out[size_t(i * A + k)] = ipow(kPoints[k], i);
    out[size_t(i * A + A - 1)] = i == 1 ? 1.0 : 0.0;
  }
  return out;
}

// G [A, A-1]: row k holds p_k^j / prod_{q != p_k} (p_k - q); the row at infinity selects the last tap.
template <int A>
constexpr std::array<double, A * (A - 1)> g() {
  constexpr int R = A - 1;
  std::array<double, A * R> out{};
  for (int k = 0; k < A - 1; ++k) {
    double f = 1.0;
    for (int q = 0; q < A - 1; ++q)
      if (q != k) f *= kPoints[k] - kPoints[q];
    for (int j = 0; j < R; ++j) out[size_t(k * R + j)] = ipow(kPoints[k], j) / f;
  }
  out[size_t((A - 1) * R + R - 1)] = 1.0;
  return out;
}

template <size_t N>
constexpr std::array<float, N> to_float(const std::array<double, N>& d) {
  std::array<float, N> f{};
  for (size_t i = 0; i < N; ++i) f[i] = float(d[i]);
  return f;
}

// The kernels' B^T pass computes rows 2q-1 and 2q (points +p, -p) as E + O and E - O, which holds when
// those rows differ only in the sign of their odd-j coefficients.
template <int A>
constexpr bool pm_pairs(const std::array<double, A * A>& b) {
  for (int k = 1; k + 1 < A; k += 2)
    for (int j = 0; j < A; ++j)
      if (b[size_t((k + 1) * A + j)] != (j % 2 ? -b[size_t(k * A + j)] : b[size_t(k * A + j)])) return false;
  return true;
}
}  // namespace winograd_detail

template <int A>
struct WinogradConst {
  static_assert(A >= 3 && A <= 8, "F(2, r) with r = A - 1 in 2..7");
  static constexpr std::array<double, A * A> BTd = winograd_detail::bt<A>();
  static constexpr std::array<double, 2 * A> ATd = winograd_detail::at<A>();
  static constexpr std::array<double, A*(A - 1)> Gd = winograd_detail::g<A>();
  static constexpr std::array<float, A * A> BT = winograd_detail::to_float(BTd);
  static constexpr std::array<float, 2 * A> AT = winograd_detail::to_float(ATd);
  static_assert(winograd_detail::pm_pairs<A>(BTd),
                "B^T rows of the points +p and -p must differ only in odd coefficients' signs");
};

// Whether the native backend can compute this convolution with Winograd F(2x2, r x r): stride 1, no
// dilation, groups 1, square odd kernel 3..7, enough channels to amortise the transforms. It does so on
// the AVX2 and AVX-512 ISAs, for 3x3 always and for 5x5/7x7 with Precision::Fast where the tiled FFT does
// not run (it runs on every 5x5/7x7 conv eligible here, so in practice 3x3 only; native_algorithm in
// engine/conv.h says what it picks).
bool winograd_eligible(const ConvSpec& spec, const Shape& in);

}  // namespace npcore
