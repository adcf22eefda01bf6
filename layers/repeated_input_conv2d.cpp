#include "layers/repeated_input_conv2d.h"

#include "engine/error.h"

namespace npcore {

Conv2dParams RepeatedInputConv2d::folded_params(const std::string& name, Conv2dParams p, int64_t repeats) {
  if (repeats < 1 || p.groups != 1 || p.in_channels % repeats != 0)
    throw ConfigError(name + ": cannot fold an input repeated " + std::to_string(repeats) + " times into " +
                      p.str() + " (needs groups=1 and in_channels divisible by the repeats)");
  p.in_channels /= repeats;
  return p;
}

RepeatedInputConv2d::RepeatedInputConv2d(std::string name, const Conv2dParams& params, int64_t repeats)
    : Layer(name),
      repeats_(repeats),
      stored_(name, params),
      folded_(name, folded_params(name, params, repeats)) {}

void RepeatedInputConv2d::prepare(const EngineOptions& opt) {
  // conv(repeat(x, R), W)[o] = sum_r sum_c W[o, r*C + c] * x[c]  =  conv(x, sum_r W[o, r*C + c])
  const Conv2dParams& p = stored_.params();
  const int64_t O = p.out_channels, C = p.in_channels / repeats_, K = p.kernel_h * p.kernel_w;
  const Tensor& w = stored_.weight();  // [O, R*C, kh, kw]
  Tensor folded({O, C, p.kernel_h, p.kernel_w});
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < K; ++k) {
        float s = 0.0f;
        for (int64_t r = 0; r < repeats_; ++r) s += w.data()[(o * repeats_ * C + r * C + c) * K + k];
        folded.data()[(o * C + c) * K + k] = s;
      }
  folded_.set_weights(folded, p.bias ? stored_.bias().clone() : Tensor());
  folded_.prepare(opt);
}

}  // namespace npcore
