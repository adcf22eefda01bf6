#pragma once
// Pointwise activations as one small value type, so that a conv kernel can apply them in its epilogue
// (fused) and a stand-alone layer can apply them in place. Every activation has the form
//   y = f(x - in_shift) + out_shift
// which covers neuralpredictors' AdaptiveELU (elu(x - xshift) + yshift) and Elu1 (elu(x) + 1).
#include <cstdint>
#include <string>

#include "engine/isa.h"

namespace npcore {

enum class ActKind {
  None,     // identity
  ELU,      // x > 0 ? x : alpha * (exp(x) - 1)                 (torch.nn.functional.elu)
  ReLU,     // max(x, 0)                                         (torch.nn.ReLU)
  Sigmoid,  // 1 / (1 + exp(-x))                                 (torch.nn.Sigmoid)
  Exp,      // exp(x)                                            (neuralpredictors Exp)
  Log1Exp,  // log(1 + exp(x)), computed as written upstream     (neuralpredictors Log1Exp)
  SoftThreshold,  // logaddexp(x, 0), the stable softplus        (neuralpredictors SoftThreshold)
};

struct Activation {
  ActKind kind = ActKind::None;
  float alpha = 1.0f;      // ELU alpha
  float in_shift = 0.0f;   // subtracted before f
  float out_shift = 0.0f;  // added after f

  bool is_identity() const { return kind == ActKind::None && in_shift == 0.0f && out_shift == 0.0f; }
  std::string str() const;  // "ELU(x - 0.5) + 1"
};

const char* act_kind_name(ActKind k);

// Applies the activation to n contiguous floats in place, with the vector code of `isa` (Auto: NPCORE_ISA,
// else the CPU's best; engine/isa.h).
void apply_activation(const Activation& a, float* x, int64_t n, Isa isa = Isa::Auto);
// The same with the portable scalar loops (the reference backend's, and the vector kernels' fallback).
void apply_activation_scalar(const Activation& a, float* x, int64_t n);

}  // namespace npcore
