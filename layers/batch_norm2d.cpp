#include "layers/batch_norm2d.h"

#include <cmath>

#include "engine/error.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

class AffineOp final : public Op {
 public:
  explicit AffineOp(ChannelAffine a) : a_(std::move(a)) {}
  bool in_place() const override { return true; }
  void run(const Tensor& in, Tensor& out, float*, RunState*) const override {
    if (out.data() != in.data()) out.copy_from(in);
    a_.apply(out);
  }

 private:
  ChannelAffine a_;
};

// Expands C parameters to R*C channels (channel r*C + c takes entry c).
std::vector<float> repeated(const Tensor& t, int64_t repeat) {
  std::vector<float> v;
  const int64_t c = t.numel();
  v.reserve(size_t(c * repeat));
  for (int64_t r = 0; r < repeat; ++r) v.insert(v.end(), t.data(), t.data() + c);
  return v;
}

}  // namespace

void check_channels(const std::string& layer, const Shape& in, int64_t channels) {
  if (in.rank() != 4) throw ShapeError(layer + ": input must be NCHW (rank 4), got " + in.str());
  if (in[1] != channels)
    throw ShapeError(layer + ": input " + in.str() + " has " + std::to_string(in[1]) + " channels, the layer takes " +
                     std::to_string(channels));
}

std::unique_ptr<Op> make_affine_op(const ChannelAffine& a, const Shape& in) {
  auto op = std::make_unique<AffineOp>(a);
  op->in_shape = op->out_shape = in;
  return op;
}

// ---- BatchNorm2d ------------------------------------------------------------------------------------

BatchNorm2d::BatchNorm2d(std::string name, int64_t channels, bool affine, double eps, int64_t repeat)
    : Layer(std::move(name)), c_(channels), repeat_(repeat), affine_(affine), eps_(eps) {
  if (c_ <= 0 || repeat_ <= 0) throw ConfigError(this->name() + ": BatchNorm needs a positive channel count");
  mean_ = Tensor({c_});
  var_ = Tensor({c_});
  var_.fill(1.0f);
  if (affine_) {
    weight_ = Tensor({c_});
    weight_.fill(1.0f);
    bias_ = Tensor({c_});
  }
}

std::string BatchNorm2d::param(const char* field) const {
  return key(repeat_ > 1 ? std::string("batch_norm.") + field : std::string(field));
}

Shape BatchNorm2d::output_shape(const Shape& in) const {
  check_channels(label(), in, c_ * repeat_);
  return in;
}

void BatchNorm2d::declare(WeightSpec& spec) const {
  if (affine_) {
    spec.expect(param("weight"), {c_});
    spec.expect(param("bias"), {c_});
  }
  spec.expect(param("running_mean"), {c_});
  spec.expect(param("running_var"), {c_});
  spec.expect_counter(param("num_batches_tracked"));
}

void BatchNorm2d::load(const StateDict& sd) {
  mean_ = sd.get_float(param("running_mean"));
  var_ = sd.get_float(param("running_var"));
  for (int64_t i = 0; i < c_; ++i)
    if (!(var_.data()[i] >= 0.0f))  // also refuses NaN
      throw WeightError(sd.source() + ": " + param("running_var") + "[" + std::to_string(i) +
                        "] = " + std::to_string(var_.data()[i]) + ": a variance must be non-negative");
  if (affine_) {
    weight_ = sd.get_float(param("weight"));
    bias_ = sd.get_float(param("bias"));
  }
}

void BatchNorm2d::init(Rng&) {
  mean_.fill(0.0f);
  var_.fill(1.0f);
  if (affine_) {
    weight_.fill(1.0f);
    bias_.fill(0.0f);
  }
}

void BatchNorm2d::save(StateDict& sd) const {
  if (affine_) {
    sd.add_float(param("weight"), weight_);
    sd.add_float(param("bias"), bias_);
  }
  sd.add_float(param("running_mean"), mean_);
  sd.add_float(param("running_var"), var_);
}

void BatchNorm2d::set(Tensor mean, Tensor var, Tensor weight, Tensor bias) {
  mean_ = std::move(mean);
  var_ = std::move(var);
  if (affine_) {
    weight_ = std::move(weight);
    bias_ = std::move(bias);
  }
}

bool BatchNorm2d::as_channel_affine(ChannelAffine* out) const {
  Tensor a({c_}), b({c_});
  for (int64_t i = 0; i < c_; ++i) {
    // PyTorch: invstd = 1 / sqrt(var + eps) in float; alpha = weight * invstd; beta = bias - mean * alpha
    const float invstd = 1.0f / std::sqrt(var_.data()[i] + float(eps_));
    const float alpha = affine_ ? weight_.data()[i] * invstd : invstd;
    a.data()[i] = alpha;
    b.data()[i] = (affine_ ? bias_.data()[i] : 0.0f) - mean_.data()[i] * alpha;
  }
  out->scale = repeated(a, repeat_);
  out->shift = repeated(b, repeat_);
  return true;
}

std::unique_ptr<Op> BatchNorm2d::plan(const Shape& in, const EngineOptions&) const {
  ChannelAffine a;
  as_channel_affine(&a);
  return make_affine_op(a, output_shape(in));
}

// ---- Bias2d / Scale2d -------------------------------------------------------------------------------

Bias2d::Bias2d(std::string name, int64_t channels, int64_t repeat)
    : Layer(std::move(name)), c_(channels), repeat_(repeat), bias_({channels}) {}

std::vector<int64_t> Bias2d::param_shape() const {
  return repeat_ > 1 ? std::vector<int64_t>{1, 1, c_, 1, 1} : std::vector<int64_t>{1, c_, 1, 1};
}
Shape Bias2d::output_shape(const Shape& in) const {
  check_channels(label(), in, c_ * repeat_);
  return in;
}
void Bias2d::declare(WeightSpec& spec) const { spec.expect(key("bias"), param_shape()); }
void Bias2d::load(const StateDict& sd) { bias_ = sd.get_float(key("bias")).reshape({c_}); }
void Bias2d::init(Rng&) { bias_.fill(0.0f); }
void Bias2d::save(StateDict& sd) const {
  std::vector<int64_t> s = param_shape();
  sd.add_float(key("bias"), bias_.reshape(Shape(s.begin(), s.end())));
}
bool Bias2d::as_channel_affine(ChannelAffine* out) const {
  out->scale.clear();
  out->shift = repeated(bias_, repeat_);
  return true;
}
std::unique_ptr<Op> Bias2d::plan(const Shape& in, const EngineOptions&) const {
  ChannelAffine a;
  as_channel_affine(&a);
  return make_affine_op(a, output_shape(in));
}

Scale2d::Scale2d(std::string name, int64_t channels, int64_t repeat)
    : Layer(std::move(name)), c_(channels), repeat_(repeat), scale_({channels}) {
  scale_.fill(1.0f);
}

std::vector<int64_t> Scale2d::param_shape() const {
  return repeat_ > 1 ? std::vector<int64_t>{1, 1, c_, 1, 1} : std::vector<int64_t>{1, c_, 1, 1};
}
Shape Scale2d::output_shape(const Shape& in) const {
  check_channels(label(), in, c_ * repeat_);
  return in;
}
void Scale2d::declare(WeightSpec& spec) const { spec.expect(key("scale"), param_shape()); }
void Scale2d::load(const StateDict& sd) { scale_ = sd.get_float(key("scale")).reshape({c_}); }
void Scale2d::init(Rng&) { scale_.fill(1.0f); }
void Scale2d::save(StateDict& sd) const {
  std::vector<int64_t> s = param_shape();
  sd.add_float(key("scale"), scale_.reshape(Shape(s.begin(), s.end())));
}
bool Scale2d::as_channel_affine(ChannelAffine* out) const {
  out->scale = repeated(scale_, repeat_);
  out->shift.clear();
  return true;
}
std::unique_ptr<Op> Scale2d::plan(const Shape& in, const EngineOptions&) const {
  ChannelAffine a;
  as_channel_affine(&a);
  return make_affine_op(a, output_shape(in));
}

}  // namespace npcore
