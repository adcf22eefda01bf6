#pragma once
// One ISA's dispatch table from the algorithm templates, given its vector traits V and its register
// blocking (output channels per micro-tile of the direct convolution; of the Winograd GEMM, with
// `wino_vecs` vectors of tiles, and `wino_ocb_big` channels x 1 vector for 7x7 kernels; of the FFT
// convolution's complex GEMM, `fft_ocb` channels x `fft_vecs` vectors of tiles). Included by
// engine/native/<isa>/kernels.cpp after it defines NPCORE_ISA_NS, inside that ISA's target region.
#include "engine/native/common/depth_separable.h"
#include "engine/native/common/depthwise_conv.h"
#include "engine/native/common/direct_conv.h"
#include "engine/native/common/fft_conv.h"
#include "engine/native/common/fma_probe.h"
#include "engine/native/common/max_pool.h"
#include "engine/native/common/pointwise_conv.h"
#include "engine/native/common/simd_math.h"
#include "engine/native/common/winograd_conv.h"

namespace npcore::native::NPCORE_ISA_NS {

template <class V, int DirectOcb, int WinoOcb, int WinoVecs, int WinoOcbBig>
std::unique_ptr<ConvKernel> make_direct_conv(const ConvSpec& spec, const Shape& in) {
  return std::unique_ptr<ConvKernel>(new DirectConv<V, DirectOcb>(spec, in));
}

template <class V, int DirectOcb, int WinoOcb, int WinoVecs, int WinoOcbBig>
std::unique_ptr<ConvKernel> make_winograd_conv(const ConvSpec& spec, const Shape& in) {
  return std::unique_ptr<ConvKernel>(new WinogradConv<V, WinoOcb, WinoVecs, WinoOcbBig>(spec, in));
}

template <class V, int FftOcb, int FftVecs>
std::unique_ptr<ConvKernel> make_fft_conv(const ConvSpec& spec, const Shape& in) {
  return std::unique_ptr<ConvKernel>(new FftConv<V, FftOcb, FftVecs>(spec, in));
}

// The 1x1 GEMM uses the direct convolution's register blocking (DirectOcb channels x 3 vectors).
template <class V, int DirectOcb, int WinoOcb, int WinoVecs, int WinoOcbBig>
std::unique_ptr<ConvKernel> make_pointwise_conv(const ConvSpec& spec, const Shape& in) {
  return std::unique_ptr<ConvKernel>(new PointwiseConv<V, DirectOcb, 3>(spec, in));
}

template <class V, int DirectOcb, int WinoOcb, int WinoVecs, int WinoOcbBig>
std::unique_ptr<ConvKernel> make_depthwise_conv(const ConvSpec& spec, const Shape& in) {
  return std::unique_ptr<ConvKernel>(new DepthwiseConv<V>(spec, in));
}

template <class V, int DirectOcb, int WinoOcb, int WinoVecs, int WinoOcbBig>
std::unique_ptr<ConvKernel> make_depth_separable_conv(const ConvSpec& pw1, const ConvSpec& dw, const ConvSpec& pw2,
                                                      const Shape& in) {
  return std::unique_ptr<ConvKernel>(new DepthSeparableConv<V, DirectOcb, 3>(pw1, dw, pw2, in));
}

template <class V, int DirectOcb, int WinoOcb, int WinoVecs, int WinoOcbBig, int FftOcb, int FftVecs>
Kernels make_table(Isa isa) {
  Kernels t;
  t.isa = isa;
  t.lanes = V::W;
  t.direct = &make_direct_conv<V, DirectOcb, WinoOcb, WinoVecs, WinoOcbBig>;
  t.winograd = &make_winograd_conv<V, DirectOcb, WinoOcb, WinoVecs, WinoOcbBig>;
  t.fft = &make_fft_conv<V, FftOcb, FftVecs>;
  t.pointwise = &make_pointwise_conv<V, DirectOcb, WinoOcb, WinoVecs, WinoOcbBig>;
  t.depthwise = &make_depthwise_conv<V, DirectOcb, WinoOcb, WinoVecs, WinoOcbBig>;
  t.depth_separable = &make_depth_separable_conv<V, DirectOcb, WinoOcb, WinoVecs, WinoOcbBig>;
  t.activation = &activation<V>;
  t.max_pool_2x2 = &max_pool_2x2<V>;
  t.fma_probe = &fma_probe<V>;
  return t;
}

}  // namespace npcore::native::NPCORE_ISA_NS
