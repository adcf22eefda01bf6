#pragma once
// torch.nn.BatchNorm2d in eval mode: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias,
// computed as PyTorch's CPU kernel does, x * a + b with a = weight / sqrt(var + eps), b = bias - mean * a.
// With `repeat` R > 1 it is neuralpredictors' RotationEquivariantBatchNorm2D: C statistics shared by the
// R rotations of an R*C-channel tensor (channel r*C + c uses entry c), state_dict keys under
// `<name>.batch_norm.`.
#include "layers/layer.h"

namespace npcore {

class BatchNorm2d : public Layer {
 public:
  BatchNorm2d(std::string name, int64_t channels, bool affine = true, double eps = 1e-5, int64_t repeat = 1);
  const char* type() const override { return repeat_ > 1 ? "RotationEquivariantBatchNorm2D" : "BatchNorm2d"; }
  Shape output_shape(const Shape& in) const override;
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;  // weight 1, bias 0, mean 0, var 1 (a fresh module)
  void save(StateDict& sd) const override;
  bool as_channel_affine(ChannelAffine* out) const override;
  std::unique_ptr<Op> plan(const Shape& in, const EngineOptions& opt) const override;

  // Sets the statistics directly (tests); weight/bias ignored when !affine.
  void set(Tensor mean, Tensor var, Tensor weight, Tensor bias);

 private:
  std::string param(const char* field) const;
  int64_t c_, repeat_;
  bool affine_;
  double eps_;
  Tensor mean_, var_, weight_, bias_;
};

// neuralpredictors' Bias2DLayer (parameter `bias`, shape [1, C, 1, 1]); with repeat R > 1 its
// RotationEquivariantBias2DLayer (shape [1, 1, C, 1, 1], shared across rotations).
class Bias2d : public Layer {
 public:
  Bias2d(std::string name, int64_t channels, int64_t repeat = 1);
  const char* type() const override { return repeat_ > 1 ? "RotationEquivariantBias2DLayer" : "Bias2DLayer"; }
  Shape output_shape(const Shape& in) const override;
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;  // 0
  void save(StateDict& sd) const override;
  bool as_channel_affine(ChannelAffine* out) const override;
  std::unique_ptr<Op> plan(const Shape& in, const EngineOptions& opt) const override;

 private:
  std::vector<int64_t> param_shape() const;
  int64_t c_, repeat_;
  Tensor bias_;
};

// neuralpredictors' Scale2DLayer (parameter `scale`), and RotationEquivariantScale2DLayer with repeat.
class Scale2d : public Layer {
 public:
  Scale2d(std::string name, int64_t channels, int64_t repeat = 1);
  const char* type() const override { return repeat_ > 1 ? "RotationEquivariantScale2DLayer" : "Scale2DLayer"; }
  Shape output_shape(const Shape& in) const override;
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;  // 1
  void save(StateDict& sd) const override;
  bool as_channel_affine(ChannelAffine* out) const override;
  std::unique_ptr<Op> plan(const Shape& in, const EngineOptions& opt) const override;

 private:
  std::vector<int64_t> param_shape() const;
  int64_t c_, repeat_;
  Tensor scale_;
};

// An in-place op applying a per-channel affine map (the unfused path of the layers above).
std::unique_ptr<Op> make_affine_op(const ChannelAffine& a, const Shape& in);
// Checks that `in` is NCHW with `channels` channels; throws ShapeError naming `layer`.
void check_channels(const std::string& layer, const Shape& in, int64_t channels);

}  // namespace npcore
