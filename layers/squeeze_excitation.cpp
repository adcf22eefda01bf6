#include "layers/squeeze_excitation.h"

#include <cmath>

#include "engine/error.h"
#include "engine/parallel.h"
#include "engine/rng.h"
#include "layers/batch_norm2d.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

class SqueezeExcitationOp final : public Op {
 public:
  // Takes copies of the parameters: a plan must not change when its layer is reloaded or re-initialised.
  SqueezeExcitationOp(const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2)
      : w1_(w1.clone()),
        b1_(b1.clone()),
        w2_(w2.clone()),
        b2_(b2.clone()),
        c_(w2.dim(0)),
        hidden_(w1.dim(0)),
        threads_(planned_threads()) {}
  bool in_place() const override { return true; }
  size_t scratch_floats() const override { return size_t(2 * c_ + hidden_); }

 protected:
  void do_run(const Tensor& in, Tensor& out, float* scratch, RunState*) const override {
    if (out.data() != in.data()) out.copy_from(in);
    const int64_t N = out.dim(0), HW = out.dim(2) * out.dim(3);
    float* mean = scratch;            // [C]
    float* hid = scratch + c_;        // [hidden]
    float* gate = hid + hidden_;      // [C]
    for (int64_t n = 0; n < N; ++n) {
      float* x = out.image(n);
      // [C, HW] -> [C]: the squeeze
      parallel_for(c_, threads_, [&](int64_t c) {
        double s = 0.0;
        const float* p = x + c * HW;
        for (int64_t i = 0; i < HW; ++i) s += p[i];
        mean[c] = float(s / double(HW));
      });
      // [hidden, C] @ [C] -> [hidden], ReLU
      for (int64_t j = 0; j < hidden_; ++j) {
        float s = b1_.data()[j];
        for (int64_t c = 0; c < c_; ++c) s += w1_.data()[j * c_ + c] * mean[c];
        hid[j] = s > 0.0f ? s : 0.0f;
      }
      // [C, hidden] @ [hidden] -> [C], Sigmoid
      for (int64_t c = 0; c < c_; ++c) {
        float s = b2_.data()[c];
        for (int64_t j = 0; j < hidden_; ++j) s += w2_.data()[c * hidden_ + j] * hid[j];
        gate[c] = 1.0f / (1.0f + std::exp(-s));
      }
      // the excitation: scale each channel
      parallel_for(c_, threads_, [&](int64_t c) {
        float* p = x + c * HW;
        const float g = gate[c];
#pragma omp simd
        for (int64_t i = 0; i < HW; ++i) p[i] *= g;
      });
    }
  }

 private:
  Tensor w1_, b1_, w2_, b2_;
  int64_t c_, hidden_;
  int threads_;
};

}  // namespace

SqueezeExcitationBlock::SqueezeExcitationBlock(std::string name, int64_t channels, int64_t reduction)
    : Layer(std::move(name)), c_(channels) {
  if (channels <= 0) throw ConfigError(label() + ": channel count must be positive, got " + std::to_string(channels));
  if (reduction <= 0) throw ConfigError(label() + ": reduction must be positive, got " + std::to_string(reduction));
  hidden_ = channels / reduction;
  w1_ = Tensor({hidden_, c_});
  b1_ = Tensor({hidden_});
  w2_ = Tensor({c_, hidden_});
  b2_ = Tensor({c_});
}

Shape SqueezeExcitationBlock::output_shape(const Shape& in) const {
  check_channels(label(), in, c_);
  return in;
}

void SqueezeExcitationBlock::declare(WeightSpec& spec) const {
  spec.expect(key("se.1.weight"), {hidden_, c_});
  spec.expect(key("se.1.bias"), {hidden_});
  spec.expect(key("se.3.weight"), {c_, hidden_});
  spec.expect(key("se.3.bias"), {c_});
}

void SqueezeExcitationBlock::load(const StateDict& sd) {
  w1_ = sd.get_float(key("se.1.weight"));
  b1_ = sd.get_float(key("se.1.bias"));
  w2_ = sd.get_float(key("se.3.weight"));
  b2_ = sd.get_float(key("se.3.bias"));
}

void SqueezeExcitationBlock::init(Rng& rng) {
  const float a1 = c_ ? 1.0f / std::sqrt(float(c_)) : 0.0f, a2 = hidden_ ? 1.0f / std::sqrt(float(hidden_)) : 0.0f;
  rng.fill_uniform(w1_, -a1, a1);
  rng.fill_uniform(b1_, -a1, a1);
  rng.fill_uniform(w2_, -a2, a2);
  rng.fill_uniform(b2_, -a2, a2);
}

void SqueezeExcitationBlock::save(StateDict& sd) const {
  sd.add_float(key("se.1.weight"), w1_);
  sd.add_float(key("se.1.bias"), b1_);
  sd.add_float(key("se.3.weight"), w2_);
  sd.add_float(key("se.3.bias"), b2_);
}

std::unique_ptr<Op> SqueezeExcitationBlock::make_op(const Shape& in, const EngineOptions&) const {
  auto op = std::make_unique<SqueezeExcitationOp>(w1_, b1_, w2_, b2_);
  op->in_shape = op->out_shape = output_shape(in);
  return op;
}

}  // namespace npcore
