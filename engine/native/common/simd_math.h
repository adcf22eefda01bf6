// Vector transcendental functions, activations, the conv epilogue and the register-tile FMA step, written
// once over a vector-traits type V (engine/native/<isa>/vec.h). Included only by a per-ISA kernels.cpp,
// after it defines NPCORE_ISA_NS (its namespace): every function here then belongs to that ISA.
#pragma once
#ifndef NPCORE_ISA_NS
#error "engine/native/common/*.h are included by engine/native/<isa>/kernels.cpp only"
#endif
#include <cstdint>

#include "engine/activation.h"
#include "engine/native/kernels.h"

namespace npcore::native::NPCORE_ISA_NS {

#define NPCORE_INLINE inline __attribute__((always_inline))

// expm1(x) = 2^n (1 + expm1(r)) - 1 with n = round(x / ln2), r = x - n ln2: sets p[i] = expm1(r) (degree-9
// polynomial) and n[i] for N vectors, stage by stage, so that a core overlaps their N dependency chains;
// the caller clamps x and forms 2^n. The same operations on each vector whatever N.
template <class V, int N>
NPCORE_INLINE void expm1_reduced_n(const typename V::reg (&x)[N], typename V::reg (&n)[N], typename V::reg (&p)[N]) {
  typename V::reg r[N];
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) n[i] = V::round(V::mul(x[i], V::set1(1.44269504088896341f)));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) r[i] = V::fnmadd(n[i], V::set1(0.693145751953125f), x[i]);  // ln2 high part (exact product)
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) r[i] = V::fnmadd(n[i], V::set1(1.428606765330187045e-06f), r[i]);  // ln2 low part
  const float c[8] = {1.0f / 362880.0f, 1.0f / 40320.0f, 1.0f / 5040.0f, 1.0f / 720.0f,
                      1.0f / 120.0f,    1.0f / 24.0f,    1.0f / 6.0f,    0.5f};
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = V::set1(c[0]);
#pragma GCC unroll 7
  for (int k = 1; k < 8; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < N; ++i) p[i] = V::fmadd(p[i], r[i], V::set1(c[k]));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = V::add(V::mul(V::mul(p[i], r[i]), r[i]), r[i]);  // expm1(r)
}

template <class V>
NPCORE_INLINE typename V::reg expm1_reduced(typename V::reg x, typename V::reg& n_out) {
  const typename V::reg xs[1] = {x};
  typename V::reg n[1], p[1];
  expm1_reduced_n<V, 1>(xs, n, p);
  n_out = n[0];
  return p[0];
}

// 2^n * (1 + p) - 1 split so that neither the small nor the large range loses bits:
//   x = n ln2 + r, |r| <= ln2/2;  expm1(x) = 2^n expm1(r) + (2^n - 1).
// expm1(r) by its Taylor series to degree 9 (error < 2e-10 relative on |r| <= 0.347).
template <class V>
NPCORE_INLINE typename V::reg expm1_ps(typename V::reg x) {
  x = V::max(V::set1(-88.0f), V::min(V::set1(88.0f), x));  // x second: a NaN passes through
  typename V::reg n;
  const auto p = expm1_reduced<V>(x, n);
  const auto two_n = V::ldexp(V::set1(1.0f), n);
  return V::fmadd(two_n, p, V::sub(two_n, V::set1(1.0f)));
}

// alpha expm1(min(x, 0)) where x <= 0, else x: ELU without its shifts, on N vectors stage by stage (see
// expm1_reduced_n). expm1 as expm1_ps (same reduction and polynomial), clamped to [-20, 0] instead, where
// expm1 rounds to -1 below -17 and 2^n is a normal float (one-step ldexp). NaN passes through.
template <class V, int N>
NPCORE_INLINE void elu_ps_n(typename V::reg (&v)[N], typename V::reg alpha) {
  typename V::reg x[N], n[N], p[N];
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) x[i] = V::max(V::set1(-20.0f), V::min(V::zero(), v[i]));  // v second in each: a NaN passes
  expm1_reduced_n<V, N>(x, n, p);
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) {
    const auto two_n = V::pow2(n[i]);
    const auto e = V::fmadd(two_n, p[i], V::sub(two_n, V::set1(1.0f)));
    v[i] = V::select(V::gt(v[i], V::zero()), V::mul(alpha, e), v[i]);
  }
}

template <class V>
NPCORE_INLINE typename V::reg elu_ps(typename V::reg v, typename V::reg alpha) {
  typename V::reg vs[1] = {v};
  elu_ps_n<V, 1>(vs, alpha);
  return vs[0];
}

// exp(x) = 2^n (1 + expm1(r)); ldexp reaches the subnormal range below x = -87.3.
template <class V>
NPCORE_INLINE typename V::reg exp_ps(typename V::reg x) {
  const auto hi = V::set1(88.7228f);
  const auto over = V::gt(x, hi);
  x = V::max(V::set1(-104.0f), V::min(hi, x));
  const auto n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  auto r = V::fnmadd(n, V::set1(0.693145751953125f), x);
  r = V::fnmadd(n, V::set1(1.428606765330187045e-06f), r);
  auto p = V::set1(1.0f / 5040.0f);
  p = V::fmadd(p, r, V::set1(1.0f / 720.0f));
  p = V::fmadd(p, r, V::set1(1.0f / 120.0f));
  p = V::fmadd(p, r, V::set1(1.0f / 24.0f));
  p = V::fmadd(p, r, V::set1(1.0f / 6.0f));
  p = V::fmadd(p, r, V::set1(0.5f));
  p = V::fmadd(p, r, V::set1(1.0f));
  p = V::fmadd(p, r, V::set1(1.0f));
  return V::select(over, V::ldexp(p, n), V::set1(__builtin_inff()));
}

// Whether act_ps computes this activation (the others fall back to the scalar loop).
inline bool vectorised(const Activation& a) {
  return a.kind == ActKind::None || a.kind == ActKind::ELU || a.kind == ActKind::ReLU ||
         a.kind == ActKind::Sigmoid || a.kind == ActKind::Exp;
}

// y = f(x - shift_in) + shift_out for the vectorised kinds; shift_in already includes any bias.
template <class V>
NPCORE_INLINE typename V::reg act_ps(const Activation& a, typename V::reg x, typename V::reg shift_in,
                                     typename V::reg shift_out) {
  const auto v = V::sub(x, shift_in);
  typename V::reg y;
  switch (a.kind) {
    case ActKind::ELU: y = elu_ps<V>(v, V::set1(a.alpha)); break;
    case ActKind::ReLU: y = V::max(V::zero(), v); break;  // v second: NaN passes
    case ActKind::Sigmoid: y = V::div(V::set1(1.0f), V::add(V::set1(1.0f), exp_ps<V>(V::sub(V::zero(), v)))); break;
    case ActKind::Exp: y = exp_ps<V>(v); break;
    default: y = v; break;
  }
  return V::add(y, shift_out);
}

template <class V>
void activation(const Activation& a, float* x, int64_t n) {
  if (!vectorised(a)) {
    apply_activation_scalar(a, x, n);
    return;
  }
  const auto sin = V::set1(a.in_shift), sout = V::set1(a.out_shift);
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(x + i, act_ps<V>(a, V::load(x + i), sin, sout));
  if (i < n) {
    const auto m = V::mask_first(n - i);
    V::store_mask(x + i, m, act_ps<V>(a, V::loadz(m, x + i), sin, sout));
  }
}

// The end of a native conv kernel: y = f(acc + bias[oc] - in_shift) + out_shift. Vectorised activations
// run on the accumulators; for the others the bias goes in as a subtraction of (in_shift - bias) and the
// scalar loop applies f to the stored values.
template <class V>
class Epilogue {
 public:
  Epilogue() = default;
  // `bias` may be null; `channels` is padded to `padded` with the activation's in_shift.
  Epilogue(const Activation& act, const float* bias, int64_t channels, int64_t padded)
      : act_(act), vector_(vectorised(act)), shift_(epilogue_shifts(act, bias, channels, padded)) {
    scalar_ = act;
    scalar_.in_shift = 0.0f;
  }
  typename V::reg shift(int64_t oc) const { return V::set1(shift_[oc]); }
  NPCORE_INLINE typename V::reg apply(typename V::reg acc, typename V::reg shift) const {
    return vector_ ? act_ps<V>(act_, acc, shift, V::set1(act_.out_shift)) : V::sub(acc, shift);
  }
  // apply() and, for an activation apply() leaves to finish(), that activation too (through memory).
  NPCORE_INLINE typename V::reg apply_all(typename V::reg acc, typename V::reg shift) const {
    if (vector_) return act_ps<V>(act_, acc, shift, V::set1(act_.out_shift));
    alignas(64) float v[V::W];
    V::store(v, V::sub(acc, shift));
    apply_activation_scalar(scalar_, v, V::W);
    return V::load(v);
  }
  // apply() with the activation's branch chosen at compile time (mode(): kShift, kElu, else kAny), for
  // kernels that pick it once per panel instead of per vector.
  enum Mode { kShift = 0, kElu = 1, kAny = 2 };
  int mode() const {
    if (!vector_ || (act_.kind == ActKind::None && act_.out_shift == 0.0f)) return kShift;
    return act_.kind == ActKind::ELU ? kElu : kAny;
  }
  // apply_m on N vectors, the ELU's stages interleaved over them (elu_ps_n); the same results.
  template <int M, int N>
  NPCORE_INLINE void apply_m_n(typename V::reg (&v)[N], const typename V::reg (&shift)[N]) const {
    if constexpr (M == kElu) {
#pragma GCC unroll 16
      for (int i = 0; i < N; ++i) v[i] = V::sub(v[i], shift[i]);
      elu_ps_n<V, N>(v, V::set1(act_.alpha));
      const auto out = V::set1(act_.out_shift);
#pragma GCC unroll 16
      for (int i = 0; i < N; ++i) v[i] = V::add(v[i], out);
    } else {
#pragma GCC unroll 16
      for (int i = 0; i < N; ++i) v[i] = apply_m<M>(v[i], shift[i]);
    }
  }
  template <int M>
  NPCORE_INLINE typename V::reg apply_m(typename V::reg acc, typename V::reg shift) const {
    if constexpr (M == kShift) return V::sub(acc, shift);
    else if constexpr (M == kElu)
      return V::add(elu_ps<V>(V::sub(acc, shift), V::set1(act_.alpha)), V::set1(act_.out_shift));
    else return apply(acc, shift);
  }
  // apply_m<kElu> in two passes: a kernel stores apply_m<kShift> (acc - shift), then this applies the rest,
  // ELU and out_shift, to n values of each of `rows` rows (stride ld) in place: the same operations per lane,
  // so the same bits, but run over memory, kU independent vectors at a time (one vector's polynomial is a
  // chain of ~20 dependent operations: alone, its latency bounds it), instead of next to a register tile's
  // live accumulators (which spilled them). kU vectors whose lanes are all > 0 (ELU is the identity there:
  // elu_ps selects v) skip the polynomial.
  void elu_rows(float* d, int64_t ld, int64_t rows, int64_t n) const {
    constexpr int kU = 4;
    const auto alpha = V::set1(act_.alpha), so = V::set1(act_.out_shift);
    const int64_t full = n / V::W * V::W, group = n / (kU * V::W) * (kU * V::W);
    for (int64_t r = 0; r < rows; ++r, d += ld) {
      int64_t i = 0;
      for (; i < group; i += kU * V::W) {
        typename V::reg v[kU];
        bool pos = true;
#pragma GCC unroll 4
        for (int u = 0; u < kU; ++u) {
          v[u] = V::load(d + i + u * V::W);
          pos = pos && V::all(V::gt(v[u], V::zero()));
        }
        if (!pos) elu_ps_n<V, kU>(v, alpha);  // the kU vectors' stages interleaved, as apply_m_n does
#pragma GCC unroll 4
        for (int u = 0; u < kU; ++u) V::store(d + i + u * V::W, V::add(v[u], so));
      }
      for (; i < full; i += V::W) V::store(d + i, V::add(elu_ps<V>(V::load(d + i), alpha), so));
      if (full < n) {
        const auto m = V::mask_first(n - full);
        V::store_mask(d + full, m, V::add(elu_ps<V>(V::loadz(m, d + full), alpha), so));
      }
    }
  }
  // After storing n values of one channel at dst: the activation, if apply() could not.
  void finish(float* dst, int64_t n) const {
    if (!vector_) apply_activation_scalar(scalar_, dst, n);
  }

 private:
  Activation act_, scalar_;
  bool vector_ = false;
  AlignedBuffer shift_;  // per output channel: in_shift - bias
};

// v limited to [lo, hi] (std::clamp is a standard-library template, which per-ISA code does not instantiate:
// outside_isa.h).
NPCORE_INLINE int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

// In-register transpose of a W x W block: lane j of r[i] goes to lane i of r[j], in log2(W) rounds, each
// interleaving row i with row i + W/2 into rows 2i, 2i + 1 (a rotation of the element index's bits; after
// log2(W) of them, row and column bits have swapped places): 64 two-source permutes for AVX-512's 16 x 16.
template <class V>
NPCORE_INLINE void transpose(typename V::reg (&r)[V::W]) {
  constexpr int W = V::W, H = W / 2;
#pragma GCC unroll 4
  for (int s = 1; s < W; s *= 2) {
    typename V::reg t[W];
#pragma GCC unroll 16
    for (int i = 0; i < H; ++i) {
      t[2 * i] = V::interleave_lo(r[i], r[i + H]);
      t[2 * i + 1] = V::interleave_hi(r[i], r[i + H]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i) r[i] = t[i];
  }
}

// The register-tile step: acc[o][q] += w[o] * x[W q .. W q + W) for OCB broadcast weights and NV vectors
// of x (an outer product; OCB*NV FMAs per OCB + NV loads).
template <class V, int OCB, int NV>
NPCORE_INLINE void outer_fma(typename V::reg (&acc)[OCB][NV], const float* w, const float* x) {
  typename V::reg xv[NV];
#pragma GCC unroll 4
  for (int q = 0; q < NV; ++q) xv[q] = V::load(x + V::W * q);
#pragma GCC unroll 16
  for (int o = 0; o < OCB; ++o) {
    const auto wv = V::set1(w[o]);
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) acc[o][q] = V::fmadd(wv, xv[q], acc[o][q]);
  }
}

}  // namespace npcore::native::NPCORE_ISA_NS
