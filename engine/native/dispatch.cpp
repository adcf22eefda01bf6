// The dispatch table lookup and the baseline helpers of the per-ISA kernels (compiled for the portable
// baseline like the rest of the library).
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/native/kernels.h"
#include "engine/winograd.h"

namespace npcore::native {

const Kernels* kernels(Isa isa) {
  isa = resolve_isa(isa);
  switch (isa) {
    case Isa::Avx512: return &avx512::table();
    case Isa::Avx2: return &avx2::table();
    default: return nullptr;
  }
}

float flush_subnormal(float w) { return std::fabs(w) < 1.17549435e-38f ? 0.0f : w; }

PackedWeights pack_direct_weights(const ConvSpec& spec, const PackKey& key) {
  const Conv2dParams& p = spec.params;
  const int64_t ocb = key.blocking[0];
  const int64_t IC = p.in_channels, OC = p.out_channels, KH = p.kernel_h, KW = p.kernel_w;
  PackedWeights out;
  out.blocks = (OC + ocb - 1) / ocb;
  const size_t per_block = size_t(IC * KH * KW * ocb), total = size_t(out.blocks) * per_block;
  out.floats = total;
  out.buffer = aligned_floats(total);
  float* w = out.buffer.get();
  std::fill(w, w + total, 0.0f);
  for (int64_t oc = 0; oc < OC; ++oc)
    for (int64_t ic = 0; ic < IC; ++ic)
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw)
          w[size_t(oc / ocb) * per_block + size_t(((kh * IC + ic) * KW + kw) * ocb + oc % ocb)] =
              flush_subnormal(spec.weight[((oc * IC + ic) * KH + kh) * KW + kw]);
  return out;
}

AlignedBuffer pack_pointwise_weights(const ConvSpec& spec, int ocb, int64_t* blocks) {
  const Conv2dParams& p = spec.params;
  const int64_t IC = p.in_channels, OC = p.out_channels;
  *blocks = (OC + ocb - 1) / ocb;
  const size_t total = size_t(*blocks * IC * ocb);
  AlignedBuffer w = aligned_floats(total);
  std::fill(w.get(), w.get() + total, 0.0f);
  for (int64_t oc = 0; oc < OC; ++oc)
    for (int64_t ic = 0; ic < IC; ++ic)
      w[size_t(((oc / ocb) * IC + ic) * ocb + oc % ocb)] = flush_subnormal(spec.weight[oc * IC + ic]);
  return w;
}

AlignedBuffer pack_depthwise_weights(const ConvSpec& spec) {
  const Conv2dParams& p = spec.params;
  const size_t total = size_t(p.out_channels * p.kernel_h * p.kernel_w);
  AlignedBuffer w = aligned_floats(total);
  for (size_t i = 0; i < total; ++i) w[i] = flush_subnormal(spec.weight[i]);
  return w;
}

PackedWeights pack_winograd_weights(const ConvSpec& spec, const PackKey& key) {
  const Conv2dParams& p = spec.params;
  const int64_t ocb = key.blocking[0];
  const int r = int(p.kernel_h);
  const WinogradTransforms tr = winograd_transforms(2, r);
  const int a = tr.alpha, P = a * a;
  const int64_t IC = p.in_channels, OC = p.out_channels;
  PackedWeights out;
  out.blocks = (OC + ocb - 1) / ocb;
  const size_t per_point = size_t(out.blocks * IC * ocb);
  out.floats = size_t(P) * per_point;
  out.buffer = aligned_floats(out.floats);
  float* u = out.buffer.get();
  std::fill(u, u + out.floats, 0.0f);
  std::vector<double> gg(size_t(a * r));
  for (int64_t oc = 0; oc < OC; ++oc)
    for (int64_t ic = 0; ic < IC; ++ic) {
      const float* g = spec.weight + (oc * IC + ic) * r * r;  // [r, r]
      for (int i = 0; i < a; ++i)  // G g: [alpha, r]
        for (int j = 0; j < r; ++j) {
          double s = 0;
          for (int k = 0; k < r; ++k) s += tr.G[size_t(i * r + k)] * double(g[k * r + j]);
          gg[size_t(i * r + j)] = s;
        }
      for (int i = 0; i < a; ++i)  // (G g) G^T: [alpha, alpha]
        for (int j = 0; j < a; ++j) {
          double s = 0;
          for (int k = 0; k < r; ++k) s += gg[size_t(i * r + k)] * tr.G[size_t(j * r + k)];
          u[size_t(i * a + j) * per_point + size_t(((oc / ocb) * IC + ic) * ocb + oc % ocb)] = flush_subnormal(float(s));
        }
    }
  return out;
}

AlignedBuffer epilogue_shifts(const Activation& act, const float* bias, int64_t channels, int64_t padded) {
  AlignedBuffer s = aligned_floats(size_t(padded));
  for (int64_t c = 0; c < padded; ++c) s[size_t(c)] = act.in_shift - (c < channels && bias ? bias[c] : 0.0f);
  return s;
}

}  // namespace npcore::native
