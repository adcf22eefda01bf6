#pragma once
// Helpers for the rotation-equivariance tests (test_hermite.cpp, test_rotation_equivariant.cpp): the
// 90-degree rotation of feature maps and the cycling of their rotation channels, and state_dict edits.
#include <memory>
#include <string>

#include "engine/tensor.h"
#include "weights/state_dict.h"

namespace npcore::test {

// numpy.rot90 on the spatial axes of a square NCHW tensor: out[n][c][i][j] = in[n][c][j][W-1-i]
// (counter-clockwise as displayed with row 0 at the top).
inline Tensor rot90(const Tensor& t) {
  const int64_t N = t.dim(0), C = t.dim(1), H = t.dim(2), W = t.dim(3);
  Tensor out({N, C, W, H});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const float* src = t.image(n) + c * H * W;
      float* dst = out.image(n) + c * H * W;
      for (int64_t i = 0; i < W; ++i)
        for (int64_t j = 0; j < H; ++j) dst[i * H + j] = src[j * W + (W - 1 - i)];
    }
  return out;
}

// Cycles rotation channels: the channels are `blocks` consecutive groups of [R, C] (rotation-major, as
// HermiteConv2D writes them, one group per stacked layer); out rotation r takes in rotation (r - shift) mod
// R.
inline Tensor cycle_rotations(const Tensor& t, int64_t R, int64_t shift, int64_t blocks = 1) {
  const int64_t N = t.dim(0), Ct = t.dim(1), HW = t.dim(2) * t.dim(3);
  const int64_t per_block = Ct / blocks, C = per_block / R;
  Tensor out(t.shape());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t src_r = ((r - shift) % R + R) % R;
          const float* src = t.image(n) + (b * per_block + src_r * C + c) * HW;
          float* dst = out.image(n) + (b * per_block + r * C + c) * HW;
          for (int64_t i = 0; i < HW; ++i) dst[i] = src[i];
        }
  return out;
}

// A copy of `sd` with the float tensor `name` replaced by `value` (it keeps sd's bytes alive).
inline StateDict with_replaced(const StateDict& sd, const std::string& name, const Tensor& value) {
  StateDict out(sd.source());
  out.keep_alive(std::make_shared<StateDict>(sd));
  for (const std::string& k : sd.order()) {
    if (k == name)
      out.add_float(k, value);
    else
      out.add(k, sd.at(k));
  }
  return out;
}

}  // namespace npcore::test
