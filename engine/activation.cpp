#include "engine/activation.h"

#include <cmath>
#include <cstdio>

#include "engine/native/kernels.h"

namespace npcore {

const char* act_kind_name(ActKind k) {
  switch (k) {
    case ActKind::None: return "Identity";
    case ActKind::ELU: return "ELU";
    case ActKind::ReLU: return "ReLU";
    case ActKind::Sigmoid: return "Sigmoid";
    case ActKind::Exp: return "Exp";
    case ActKind::Log1Exp: return "Log1Exp";
    case ActKind::SoftThreshold: return "SoftThreshold";
  }
  return "?";
}

std::string Activation::str() const {
  char buf[128];
  std::string s = act_kind_name(kind);
  if (kind == ActKind::ELU && alpha != 1.0f) {
    std::snprintf(buf, sizeof buf, "[alpha=%g]", alpha);
    s += buf;
  }
  if (in_shift != 0.0f) {
    std::snprintf(buf, sizeof buf, "(x - %g)", in_shift);
    s += buf;
  } else {
    s += "(x)";
  }
  if (out_shift != 0.0f) {
    std::snprintf(buf, sizeof buf, " + %g", out_shift);
    s += buf;
  }
  return s;
}

namespace {

// One templated loop per kind so that the compiler vectorises each body; `shift_in` is the total
// amount subtracted before f (activation in_shift minus a conv bias).
template <ActKind K>
void act_loop(float* x, int64_t n, float alpha, float shift_in, float shift_out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i] - shift_in;
    float y;
    if constexpr (K == ActKind::None) {
      y = v;
    } else if constexpr (K == ActKind::ELU) {
      y = v > 0.0f ? v : alpha * std::expm1(v);
    } else if constexpr (K == ActKind::ReLU) {
      y = v > 0.0f ? v : 0.0f;
    } else if constexpr (K == ActKind::Sigmoid) {
      y = 1.0f / (1.0f + std::exp(-v));
    } else if constexpr (K == ActKind::Exp) {
      y = std::exp(v);
    } else if constexpr (K == ActKind::Log1Exp) {
      y = std::log(1.0f + std::exp(v));
    } else {  // SoftThreshold: logaddexp(v, 0) = max(v, 0) + log1p(exp(-|v|))
      y = std::fmax(v, 0.0f) + std::log1p(std::exp(-std::fabs(v)));
    }
    x[i] = y + shift_out;
  }
}

void dispatch(const Activation& a, float bias, float* x, int64_t n) {
  const float sin = a.in_shift - bias;
  switch (a.kind) {
    case ActKind::None: act_loop<ActKind::None>(x, n, a.alpha, sin, a.out_shift); break;
    case ActKind::ELU: act_loop<ActKind::ELU>(x, n, a.alpha, sin, a.out_shift); break;
    case ActKind::ReLU: act_loop<ActKind::ReLU>(x, n, a.alpha, sin, a.out_shift); break;
    case ActKind::Sigmoid: act_loop<ActKind::Sigmoid>(x, n, a.alpha, sin, a.out_shift); break;
    case ActKind::Exp: act_loop<ActKind::Exp>(x, n, a.alpha, sin, a.out_shift); break;
    case ActKind::Log1Exp: act_loop<ActKind::Log1Exp>(x, n, a.alpha, sin, a.out_shift); break;
    case ActKind::SoftThreshold: act_loop<ActKind::SoftThreshold>(x, n, a.alpha, sin, a.out_shift); break;
  }
}

}  // namespace

void apply_activation_scalar(const Activation& a, float* x, int64_t n) { dispatch(a, 0.0f, x, n); }

void apply_activation(const Activation& a, float* x, int64_t n, Isa isa) {
  if (const native::Kernels* k = native::kernels(isa)) {
    k->activation(a, x, n);
    return;
  }
  dispatch(a, 0.0f, x, n);
}

}  // namespace npcore
