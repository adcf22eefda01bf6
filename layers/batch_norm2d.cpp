#include "layers/batch_norm2d.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/parallel.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

class AffineOp final : public Op {
 public:
  explicit AffineOp(ChannelAffine a) : a_(std::move(a)), threads_(planned_threads()) {}
  bool in_place() const override { return true; }

 protected:
  void do_run(const Tensor& in, Tensor& out, float*, RunState*) const override {
    if (out.data() != in.data()) out.copy_from(in);
    a_.apply(out, threads_);
  }

 private:
  ChannelAffine a_;
  int threads_;
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

BatchNorm2d::BatchNorm2d(std::string name, int64_t channels, bool affine, double eps, int64_t rotations)
    : Layer(std::move(name)), c_(channels), rotations_(rotations), affine_(affine), eps_(eps) {
  if (c_ <= 0 || rotations_ < 0)
    throw ConfigError(label() + ": BatchNorm needs a positive channel count, got " + std::to_string(c_));
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
  return key(rotations_ > 0 ? std::string("batch_norm.") + field : std::string(field));
}

Shape BatchNorm2d::output_shape(const Shape& in) const {
  check_channels(label(), in, c_ * std::max<int64_t>(1, rotations_));
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
  out->scale = repeated(a, std::max<int64_t>(1, rotations_));
  out->shift = repeated(b, std::max<int64_t>(1, rotations_));
  return true;
}

std::unique_ptr<Op> BatchNorm2d::make_op(const Shape& in, const EngineOptions&) const {
  ChannelAffine a;
  as_channel_affine(&a);
  return make_affine_op(a, output_shape(in));
}

// ---- Bias2d / Scale2d -------------------------------------------------------------------------------

PerChannel2d::PerChannel2d(std::string name, Kind kind, int64_t channels, int64_t rotations)
    : Layer(std::move(name)), kind_(kind), c_(channels), rotations_(rotations) {
  if (c_ <= 0 || rotations_ < 0)
    throw ConfigError(label() + ": needs a positive channel count, got " + std::to_string(c_));
  value_ = Tensor({c_});
  value_.fill(kind_ == Kind::Bias ? 0.0f : 1.0f);
}

const char* PerChannel2d::type() const {
  if (kind_ == Kind::Bias) return rotations_ > 0 ? "RotationEquivariantBias2DLayer" : "Bias2DLayer";
  return rotations_ > 0 ? "RotationEquivariantScale2DLayer" : "Scale2DLayer";
}

std::vector<int64_t> PerChannel2d::param_shape() const {
  return rotations_ > 0 ? std::vector<int64_t>{1, 1, c_, 1, 1} : std::vector<int64_t>{1, c_, 1, 1};
}
Shape PerChannel2d::output_shape(const Shape& in) const {
  check_channels(label(), in, c_ * std::max<int64_t>(1, rotations_));
  return in;
}
void PerChannel2d::declare(WeightSpec& spec) const { spec.expect(key(field()), param_shape()); }
void PerChannel2d::load(const StateDict& sd) { value_ = sd.get_float(key(field())).reshape({c_}); }
void PerChannel2d::init(Rng&) {
  value_ = Tensor({c_});
  value_.fill(kind_ == Kind::Bias ? 0.0f : 1.0f);
}
void PerChannel2d::save(StateDict& sd) const {
  std::vector<int64_t> s = param_shape();
  sd.add_float(key(field()), value_.reshape(Shape(s.begin(), s.end())));
}
bool PerChannel2d::as_channel_affine(ChannelAffine* out) const {
  std::vector<float> v = repeated(value_, std::max<int64_t>(1, rotations_));
  out->scale.clear();
  out->shift.clear();
  (kind_ == Kind::Bias ? out->shift : out->scale) = std::move(v);
  return true;
}
std::unique_ptr<Op> PerChannel2d::make_op(const Shape& in, const EngineOptions&) const {
  ChannelAffine a;
  as_channel_affine(&a);
  return make_affine_op(a, output_shape(in));
}

}  // namespace npcore
