#pragma once
// Bilinear sampling at one point per neuron, as torch.nn.functional.grid_sample(mode="bilinear",
// padding_mode="zeros") computes it for a grid of shape [N, neurons, 1, 2], and the per-neuron dot
// product with a feature vector that every readout then takes. Kernels of their own: the taps (corner
// offsets and weights) depend on the position only, so they are computed once per neuron and reused
// over all channels; neurons are split over threads.
#include <cstdint>

namespace npcore {

// The four corners of one sampling point in an H x W map: offsets into the map (h * W + w) and
// weights; a corner outside the map has weight 0 (zero padding) and offset 0.
struct BilinearTap {
  int32_t off[4];
  float w[4];
};

// Taps for the normalised point (x, y) in [-1, 1] (x along width, y along height; outside reads
// zeros), with grid_sample's align_corners rule.
BilinearTap bilinear_tap(float x, float y, int64_t h, int64_t w, bool align_corners);

// out[n] += sum_c feat[n * feat_stride + c] * bilinear(map[c], tap[n]) for n in [0, neurons): the
// readout's weighted sum over channels of one image's map [C, H, W] (plane = H * W floats apart).
// feat is per neuron, contiguous over channels ([neurons, C] row-major with feat_stride >= C).
void sample_dot(const float* map, int64_t channels, int64_t plane, const BilinearTap* taps, int64_t neurons,
                const float* feat, int64_t feat_stride, float* out, int threads);

// Average pooling with kernel = stride = k, no padding, floor mode (nn.AvgPool2d(k, k)), on one image
// [C, H, W] -> [C, H / k, W / k].
void avg_pool_k(const float* in, int64_t channels, int64_t h, int64_t w, int64_t k, float* out, int threads);

}  // namespace npcore
