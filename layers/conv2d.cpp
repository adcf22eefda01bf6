#include "layers/conv2d.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/rng.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

class KernelOp final : public Op {
 public:
  KernelOp(std::unique_ptr<ConvKernel> k, double flops, std::vector<ConvRun> runs)
      : k_(std::move(k)), flops_(flops), runs_(std::move(runs)) {}
  size_t scratch_floats() const override { return k_->scratch_floats(); }
  std::unique_ptr<RunState> make_state() const override { return k_->make_state(); }
  double conv_flops() const override { return flops_; }
  void list_convs(std::vector<ConvRun>& out) const override { out.insert(out.end(), runs_.begin(), runs_.end()); }
  bool team_safe() const override { return k_->team_safe(); }

 protected:
  void do_run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const override {
    k_->run(in, out, scratch, state);
  }

 private:
  std::unique_ptr<ConvKernel> k_;
  double flops_;
  std::vector<ConvRun> runs_;
};

// A conv whose absorbed max pool its kernel cannot do: the conv into scratch, then the pool into out.
class ConvPoolOp final : public Op {
 public:
  ConvPoolOp(std::unique_ptr<Op> conv, std::unique_ptr<Op> pool) : conv_(std::move(conv)), pool_(std::move(pool)) {
    in_shape = conv_->in_shape;
    out_shape = pool_->out_shape;
  }
  size_t scratch_floats() const override {
    return mid_floats() + std::max(conv_->scratch_floats(), pool_->scratch_floats());
  }
  std::unique_ptr<RunState> make_state() const override { return conv_->make_state(); }
  double conv_flops() const override { return conv_->conv_flops(); }
  void list_convs(std::vector<ConvRun>& out) const override { conv_->list_convs(out); }

 protected:
  void do_run(const Tensor& in, Tensor& out, float* scratch, RunState* state) const override {
    Tensor mid = Tensor::wrap(scratch, conv_->out_shape);
    conv_->run(in, mid, scratch + mid_floats(), state);
    pool_->run(mid, out, scratch + mid_floats(), nullptr);
  }

 private:
  size_t mid_floats() const { return round_floats(size_t(conv_->out_shape.numel())); }
  std::unique_ptr<Op> conv_, pool_;
};

}  // namespace

std::unique_ptr<Op> make_kernel_op(std::unique_ptr<ConvKernel> k, double flops, std::vector<ConvRun> runs,
                                   const Shape& in, const Shape& out) {
  auto op = std::make_unique<KernelOp>(std::move(k), flops, std::move(runs));
  op->in_shape = in;
  op->out_shape = out;
  return op;
}

Conv2d::Conv2d(std::string name, const Conv2dParams& params) : Layer(std::move(name)), p_(params) {
  p_.validate(label());
  weight_ = Tensor(p_.weight_shape());
  if (p_.bias) bias_ = Tensor({p_.out_channels});
}

Shape Conv2d::output_shape(const Shape& in) const { return p_.output_shape(in, label()); }

void Conv2d::declare(WeightSpec& spec) const {
  Shape w = p_.weight_shape();
  spec.expect(key("weight"), {w.begin(), w.end()});
  if (p_.bias) spec.expect(key("bias"), {p_.out_channels});
}

void Conv2d::load(const StateDict& sd) {
  weight_ = sd.get_float(key("weight"));
  if (p_.bias) bias_ = sd.get_float(key("bias"));
  prepared_ = false;
}

void Conv2d::init(Rng& rng) {
  // xavier_normal_: std = sqrt(2 / (fan_in + fan_out)), fan = channels * receptive field
  const double rf = double(p_.kernel_h * p_.kernel_w);
  const double fan_in = double(p_.in_channels / p_.groups) * rf, fan_out = double(p_.out_channels) * rf;
  rng.fill_normal(weight_, 0.0f, float(std::sqrt(2.0 / (fan_in + fan_out))));
  if (p_.bias) bias_.fill(0.0f);
  prepared_ = false;
}

void Conv2d::save(StateDict& sd) const {
  sd.add_float(key("weight"), weight_);
  if (p_.bias) sd.add_float(key("bias"), bias_);
}

void Conv2d::set_weights(Tensor weight, Tensor bias) {
  if (weight.shape() != p_.weight_shape())
    throw ShapeError(label() + ": weight " + weight.shape().str() + ", expected " + p_.weight_shape().str());
  if (p_.bias && bias.shape() != Shape{p_.out_channels})
    throw ShapeError(label() + ": bias " + bias.shape().str() + ", expected [" + std::to_string(p_.out_channels) + "]");
  weight_ = std::move(weight);
  bias_ = p_.bias ? std::move(bias) : Tensor();
  prepared_ = false;
}

void Conv2d::absorb_affine(const ChannelAffine& a) {
  affine_ = affine_.then(a);
  prepared_ = false;
}

void Conv2d::absorb_activation(const Activation& a) {
  act_ = a;
  has_act_ = true;
}

void Conv2d::absorb_max_pool(const MaxPool2dParams& p) {
  pool_ = p;
  has_pool_ = true;
}

void Conv2d::fuse(const EngineOptions& opt) {
  // The algorithm choice depends on the parameters and options only (not the input's size), so this is
  // what make_op will find; where it is not (another ISA at plan time), make_op pools after the conv.
  ConvSpec s;
  s.params = p_;
  s.allow_winograd = opt.winograd;
  s.precision = opt.precision;
  s.isa = opt.isa;
  kernel_pools_ = false;
  if (opt.backend != Backend::Native) return;
  try {
    kernel_pools_ = native_pools(s, Shape{1, p_.in_channels, 8, 8});
  } catch (const ConfigError&) {
    // An ISA this CPU lacks: plan() says so, naming the option; nothing to fuse.
  }
}

void Conv2d::reset_fusion() {
  affine_ = ChannelAffine();
  act_ = Activation();
  has_act_ = false;
  has_pool_ = false;
  prepared_ = false;
}

void Conv2d::prepare(const EngineOptions&) {
  // y = (W*x + b) * s + t  ==  (W*s)*x + (b*s + t)
  const int64_t O = p_.out_channels, per = weight_.numel() / O;
  for (const std::vector<float>* v : {&affine_.scale, &affine_.shift})
    if (!v->empty() && int64_t(v->size()) != O)
      throw ShapeError(label() + ": a following per-channel layer has " + std::to_string(v->size()) +
                       " channels, the conv outputs " + std::to_string(O));
  folded_weight_ = weight_.clone();
  const bool any_bias = p_.bias || !affine_.shift.empty();
  folded_bias_ = any_bias ? Tensor({O}) : Tensor();
  for (int64_t o = 0; o < O; ++o) {
    const float s = affine_.scale.empty() ? 1.0f : affine_.scale[o];
    if (s != 1.0f)
      for (int64_t i = 0; i < per; ++i) folded_weight_.data()[o * per + i] *= s;
    if (any_bias) {
      float b = p_.bias ? bias_.data()[o] : 0.0f;
      if (!affine_.scale.empty()) b *= s;
      folded_bias_.data()[o] = b + (affine_.shift.empty() ? 0.0f : affine_.shift[o]);
    }
  }
  packs_ = std::make_shared<WeightPacks>();
  prepared_ = true;
}

ConvSpec Conv2d::spec(const EngineOptions& opt) const {
  if (!prepared_) throw UsageError(label() + ": plan() before prepare()");
  ConvSpec spec;
  spec.params = p_;
  spec.params.bias = !folded_bias_.empty();
  spec.weight = folded_weight_.data();
  spec.bias = folded_bias_.empty() ? nullptr : folded_bias_.data();
  spec.act = act_;
  spec.allow_winograd = opt.winograd;
  spec.precision = opt.precision;
  spec.isa = opt.isa;
  spec.packs = packs_.get();
  return spec;
}

ConvRun Conv2d::conv_run(const Shape& in, Backend backend, std::string algorithm, Isa isa) const {
  ConvRun run;
  run.layer = label();
  run.params = p_;
  run.in = in;
  run.backend = backend;
  run.algorithm = std::move(algorithm);
  run.isa = isa;
  return run;
}

std::unique_ptr<Op> Conv2d::make_op(const Shape& in, const EngineOptions& opt) const {
  ConvSpec spec = this->spec(opt);
  if (has_pool_) {
    const Shape pooled = pool_.output_shape(output_shape(in), label());
    if (opt.backend == Backend::Native && native_pools(spec, in)) {
      spec.pool_2x2 = true;
      Isa isa = Isa::Generic;
      std::string algorithm = native_algorithm(spec, in, &isa);
      std::vector<ConvRun> runs{conv_run(in, opt.backend, std::move(algorithm), isa)};
      runs[0].params = spec.params;
      return make_kernel_op(make_conv_kernel(opt.backend, spec, in), p_.flops(in), std::move(runs), in, pooled);
    }
    // Another algorithm (options other than fuse()'s): the conv into scratch, then the pool layer's op.
    return std::make_unique<ConvPoolOp>(unpooled_op(spec, in, opt), MaxPool2d(label(), pool_).plan(output_shape(in), opt));
  }
  return unpooled_op(spec, in, opt);
}

std::unique_ptr<Op> Conv2d::unpooled_op(const ConvSpec& spec, const Shape& in, const EngineOptions& opt) const {
  // Whatever name the native backend gives its choice (native_algorithm), so that new algorithms show up
  // in reports without a list here.
  Isa isa = Isa::Generic;
  std::string algorithm = opt.backend == Backend::Native ? native_algorithm(spec, in, &isa) : backend_name(opt.backend);
  std::vector<ConvRun> runs{conv_run(in, opt.backend, std::move(algorithm), isa)};
  runs[0].params = spec.params;  // as its kernel runs it (bias present once a norm is folded in)
  return make_kernel_op(make_conv_kernel(opt.backend, spec, in), p_.flops(in), std::move(runs), in, output_shape(in));
}

}  // namespace npcore
