#pragma once
// The native backend's dispatch table: one per instruction set, each built from the algorithm templates
// in engine/native/common/ instantiated with that ISA's vector traits (engine/native/<isa>/vec.h) in its
// own translation unit, inside its own namespace, which alone is compiled for the ISA (#pragma GCC target;
// engine/native/common/outside_isa.h)
// (npcore::native::avx2, ::avx512), so that no inline function compiled for one ISA can be picked by the
// linker for another (tests/check_isa_symbols.sh checks the objects). Adding an ISA (NEON) means one
// folder with a vec.h and a kernels.cpp, and one line in dispatch.cpp.
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/activation.h"
#include "engine/conv.h"
#include "engine/isa.h"
#include "engine/packed_weights.h"
#include "engine/tensor.h"

namespace npcore::native {

struct Kernels {
  Isa isa = Isa::Generic;
  int lanes = 1;  // floats per vector (register blockings are the kernels' template arguments: table.h)
  // Register-blocked direct convolution (stride 1, groups 1).
  std::unique_ptr<ConvKernel> (*direct)(const ConvSpec& spec, const Shape& in) = nullptr;
  // Winograd F(2x2, r x r), r in {3, 5, 7} (winograd_eligible).
  std::unique_ptr<ConvKernel> (*winograd)(const ConvSpec& spec, const Shape& in) = nullptr;
  // Tiled FFT convolution (fft_eligible): stride 1, dilation 1, groups 1, kernels 5..9 per side.
  std::unique_ptr<ConvKernel> (*fft)(const ConvSpec& spec, const Shape& in) = nullptr;
  // 1x1 convolution, stride 1, no padding, groups 1: a register-blocked GEMM over channels.
  std::unique_ptr<ConvKernel> (*pointwise)(const ConvSpec& spec, const Shape& in) = nullptr;
  // Depthwise convolution (groups = in = out channels), any kernel, stride, padding and dilation.
  std::unique_ptr<ConvKernel> (*depthwise)(const ConvSpec& spec, const Shape& in) = nullptr;
  // The depth-separable block fused: pointwise -> depthwise -> pointwise (depth_separable.h).
  std::unique_ptr<ConvKernel> (*depth_separable)(const ConvSpec& pw1, const ConvSpec& dw, const ConvSpec& pw2,
                                                 const Shape& in) = nullptr;
  // The vectorised activations (simd_math vectorised()) in place; others take the scalar loop.
  void (*activation)(const Activation& a, float* x, int64_t n) = nullptr;
  // Max pooling, kernel 2 stride 2, no padding, of one plane [H, W] -> [OH, OW] (2 OH <= H, 2 OW <= W).
  void (*max_pool_2x2)(const float* x, float* y, int64_t H, int64_t W, int64_t OH, int64_t OW) = nullptr;
  // The FMA peak probe's loop (engine/peak.cpp): iters x 12 vector FMAs on independent chains.
  float (*fma_probe)(long iters) = nullptr;
};

// The table for `isa` (resolved: not Auto), or null for Generic (the portable paths).
const Kernels* kernels(Isa isa);

// Baseline helpers the per-ISA code calls so that it instantiates no standard-library templates itself.
// Packed weights drop subnormal values: an FMA with a subnormal operand takes a microcode assist (~100x
// slower on Intel cores), and each dropped term w*x changes a sum by less than 1.2e-38 * |x|.
float flush_subnormal(float w);
// The packed forms (PackFn, engine/packed_weights.h; kernels get them through shared_pack so that the
// kernels of one layer share one copy per form). key.blocking[0] is ocb, the output channels per block.
// Direct conv weights [OC, IC, KH, KW] -> [OC/ocb][KH][IC][KW][ocb], zero past OC.
PackedWeights pack_direct_weights(const ConvSpec& spec, const PackKey& key);
// Winograd U = G g G^T (in double) packed [p][OC/ocb][IC][ocb], zero past OC.
PackedWeights pack_winograd_weights(const ConvSpec& spec, const PackKey& key);
// The FFT convolution's frequency points of a t x t tile (t even): the real 2D FFT's (u, k), u < t,
// k <= t/2, less the columns k = 0 and k = t/2 at u > t/2, which are the conjugates of those at t - u
// (the spectrum of real data is Hermitian): 2 (t/2 + 1) + (t/2 - 1) t points (130 for t = 16).
constexpr int fft_points(int t) { return 2 * (t / 2 + 1) + (t / 2 - 1) * t; }
// Index of (u, k) among them (u <= t/2 when k is 0 or t/2).
constexpr int fft_point(int u, int k, int t) {
  return k == 0 ? u : k == t / 2 ? t / 2 + 1 + u : 2 * (t / 2 + 1) + (k - 1) * t + u;
}
// FFT conv weights: conj(FFT2(w zero-padded to t x t)) / t^2 (in double), rounded to float, packed
// [f][OC/ocb][IC][ocb][re, im] for the fft_points(t) points f = fft_point(u, k, t), zero past OC;
// key.blocking = {t, ocb}.
PackedWeights pack_fft_weights(const ConvSpec& spec, const PackKey& key);
// 1x1 conv weights [OC, IC, 1, 1] -> [OC/ocb][IC][ocb], zero past OC; key.blocking = {ocb}.
PackedWeights pack_pointwise_weights(const ConvSpec& spec, const PackKey& key);
// Depthwise conv weights [C, 1, KH, KW], copied (subnormals flushed).
PackedWeights pack_depthwise_weights(const ConvSpec& spec, const PackKey& key);
// Per padded output channel: act.in_shift - bias[c] (in_shift alone past `channels`).
AlignedBuffer epilogue_shifts(const Activation& act, const float* bias, int64_t channels, int64_t padded);

// The per-ISA tables (engine/native/<isa>/kernels.cpp).
namespace avx2 {
const Kernels& table();
}
namespace avx512 {
const Kernels& table();
}

}  // namespace npcore::native
