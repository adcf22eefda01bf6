#include "layers/mlp_shifter.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/rng.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {

DenseStack::DenseStack(std::string prefix, std::vector<int64_t> dims, bool bias, Act between, Act after_last)
    : prefix_(std::move(prefix)), between_(between), after_last_(after_last) {
  for (size_t i = 0; i + 1 < dims.size(); ++i) {
    DenseLayer l;
    l.in = dims[i];
    l.out = dims[i + 1];
    if (l.in <= 0 || l.out <= 0)
      throw ConfigError(prefix_ + ": Linear layer " + std::to_string(i) + " has " + std::to_string(l.in) +
                        " inputs and " + std::to_string(l.out) + " outputs; both must be positive");
    l.bias = bias;
    l.weight.assign(size_t(l.in * l.out), 0.f);
    if (bias) l.b.assign(size_t(l.out), 0.f);
    layers_.push_back(std::move(l));
  }
}

void DenseStack::declare(WeightSpec& spec) const {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string k = prefix_ + "." + std::to_string(2 * i);
    spec.expect(k + ".weight", {layers_[i].out, layers_[i].in});
    if (layers_[i].bias) spec.expect(k + ".bias", {layers_[i].out});
  }
}

void DenseStack::load(const StateDict& sd) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string k = prefix_ + "." + std::to_string(2 * i);
    Tensor w = sd.get_float(k + ".weight");
    std::copy(w.data(), w.data() + w.numel(), layers_[i].weight.begin());
    if (layers_[i].bias) {
      Tensor b = sd.get_float(k + ".bias");
      std::copy(b.data(), b.data() + b.numel(), layers_[i].b.begin());
    }
  }
}

void DenseStack::init(Rng& rng) {
  for (auto& l : layers_) {
    const double bound = 1.0 / std::sqrt(double(l.in));  // nn.Linear's default range
    for (float& v : l.weight) v = float((2 * rng.uniform() - 1) * bound);
    for (float& v : l.b) v = float((2 * rng.uniform() - 1) * bound);
  }
}

int64_t DenseStack::max_width() const {
  int64_t m = 0;
  for (const auto& l : layers_) m = std::max({m, l.in, l.out});
  return m;
}

void DenseStack::run(const float* in, int64_t rows, float* out, float* tmp) const {
  const int64_t mw = max_width();
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = in + r * layers_.front().in;
    float* buf[2] = {tmp, tmp + mw};
    for (size_t i = 0; i < layers_.size(); ++i) {
      const DenseLayer& l = layers_[i];
      const bool last = i + 1 == layers_.size();
      float* dst = last ? out + r * l.out : buf[i & 1];
      const Act act = last ? after_last_ : between_;
      for (int64_t o = 0; o < l.out; ++o) {
        float s = l.bias ? l.b[size_t(o)] : 0.f;
        const float* w = l.weight.data() + o * l.in;
        for (int64_t k = 0; k < l.in; ++k) s += w[k] * src[k];
        if (act == Act::Tanh) s = std::tanh(s);
        if (act == Act::Elu) s = s > 0.f ? s : std::expm1(s);
        dst[o] = s;
      }
      src = dst;
    }
  }
}

MlpShifter::MlpShifter(std::string name, int64_t input_channels, int64_t hidden_channels,
                       int64_t shift_layers, bool bias)
    : name_(name),
      mlp_(
          name + ".mlp",
          [&] {
            if (shift_layers < 1)
              throw ConfigError(name + ": MLPShifter shift_layers is " + std::to_string(shift_layers) +
                                "; it must be at least 1");
            std::vector<int64_t> d{input_channels};
            for (int64_t i = 0; i + 1 < shift_layers; ++i) d.push_back(hidden_channels);
            d.push_back(2);
            return d;
          }(),
          bias, DenseStack::Act::Tanh, DenseStack::Act::Tanh) {}

}  // namespace npcore
