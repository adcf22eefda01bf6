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

PackedWeights pack_pointwise_weights(const ConvSpec& spec, const PackKey& key) {
  const Conv2dParams& p = spec.params;
  const int64_t IC = p.in_channels, OC = p.out_channels, ocb = key.blocking[0];
  PackedWeights out;
  out.blocks = (OC + ocb - 1) / ocb;
  out.floats = size_t(out.blocks * IC * ocb);
  out.buffer = aligned_floats(out.floats);
  float* w = out.buffer.get();
  std::fill(w, w + out.floats, 0.0f);
  for (int64_t oc = 0; oc < OC; ++oc)
    for (int64_t ic = 0; ic < IC; ++ic)
      w[size_t(((oc / ocb) * IC + ic) * ocb + oc % ocb)] = flush_subnormal(spec.weight[oc * IC + ic]);
  return out;
}

PackedWeights pack_depthwise_weights(const ConvSpec& spec, const PackKey&) {
  const Conv2dParams& p = spec.params;
  PackedWeights out;
  out.floats = size_t(p.out_channels * p.kernel_h * p.kernel_w);
  out.buffer = aligned_floats(out.floats);
  for (size_t i = 0; i < out.floats; ++i) out.buffer[i] = flush_subnormal(spec.weight[i]);
  return out;
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

PackedWeights pack_fft_weights(const ConvSpec& spec, const PackKey& key) {
  const Conv2dParams& p = spec.params;
  const int t = int(key.blocking[0]);
  const int64_t ocb = key.blocking[1];
  const int64_t IC = p.in_channels, OC = p.out_channels, KH = p.kernel_h, KW = p.kernel_w;
  const int k2 = t / 2 + 1, F = fft_points(t);
  PackedWeights out;
  out.blocks = (OC + ocb - 1) / ocb;
  const size_t per_point = size_t(out.blocks * IC * ocb * 2), total = size_t(F) * per_point;
  out.floats = total;
  out.buffer = aligned_floats(total);
  float* u = out.buffer.get();
  std::fill(u, u + total, 0.0f);
  // e^{2 pi i m / t} for m < t.
  const double kPi = 3.14159265358979323846;
  std::vector<double> c(static_cast<size_t>(t)), s(static_cast<size_t>(t));
  for (int m = 0; m < t; ++m) {
    c[size_t(m)] = std::cos(2 * kPi * m / t);
    s[size_t(m)] = std::sin(2 * kPi * m / t);
  }
  // Wc[u][k] = sum_{a, b} w[a][b] e^{2 pi i (u a + k b) / t} / t^2: along the rows first (P[a][k]).
  std::vector<double> pr(static_cast<size_t>(KH * k2)), pi(static_cast<size_t>(KH * k2));
  const double scale = 1.0 / double(t * t);
  for (int64_t oc = 0; oc < OC; ++oc)
    for (int64_t ic = 0; ic < IC; ++ic) {
      const float* g = spec.weight + (oc * IC + ic) * KH * KW;
      for (int64_t a = 0; a < KH; ++a)
        for (int k = 0; k < k2; ++k) {
          double re = 0, im = 0;
          for (int64_t b = 0; b < KW; ++b) {
            const size_t m = size_t((k * b) % t);
            re += double(g[a * KW + b]) * c[m];
            im += double(g[a * KW + b]) * s[m];
          }
          pr[size_t(a * k2 + k)] = re;
          pi[size_t(a * k2 + k)] = im;
        }
      for (int v = 0; v < t; ++v)
        for (int k = 0; k < k2; ++k) {
          if ((k == 0 || k == t / 2) && v > t / 2) continue;  // the conjugate of (t - v, k)
          double re = 0, im = 0;
          for (int64_t a = 0; a < KH; ++a) {
            const size_t m = size_t((v * a) % t);
            const double xr = pr[size_t(a * k2 + k)], xi = pi[size_t(a * k2 + k)];
            re += xr * c[m] - xi * s[m];
            im += xr * s[m] + xi * c[m];
          }
          float* d = u + size_t(fft_point(v, k, t)) * per_point + size_t(((oc / ocb) * IC + ic) * ocb + oc % ocb) * 2;
          d[0] = flush_subnormal(float(re * scale));
          d[1] = flush_subnormal(float(im * scale));
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
