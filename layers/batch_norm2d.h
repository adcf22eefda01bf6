#pragma once
// torch.nn.BatchNorm2d in eval mode: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias,
// computed as PyTorch's CPU kernel does, x * a + b with a = weight / sqrt(var + eps), b = bias - mean * a.
// With rotations R >= 1 it is neuralpredictors' RotationEquivariantBatchNorm2D: C statistics shared by
// the R rotations of an R*C-channel tensor (channel r*C + c uses entry c), state_dict keys under
// `<name>.batch_norm.` (also for R = 1, as upstream).
#include "layers/layer.h"

namespace npcore {

class BatchNorm2d : public Layer {
 public:
  BatchNorm2d(std::string name, int64_t channels, bool affine = true, double eps = 1e-5, int64_t rotations = 0);
  const char* type() const override { return rotations_ > 0 ? "RotationEquivariantBatchNorm2D" : "BatchNorm2d"; }
  Shape output_shape(const Shape& in) const override;
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;  // weight 1, bias 0, mean 0, var 1 (a fresh module)
  void save(StateDict& sd) const override;
  bool as_channel_affine(ChannelAffine* out) const override;
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;

  // Sets the statistics directly (tests); weight/bias ignored when !affine.
  void set(Tensor mean, Tensor var, Tensor weight, Tensor bias);

 private:
  std::string param(const char* field) const;
  int64_t c_, rotations_;
  bool affine_;
  double eps_;
  Tensor mean_, var_, weight_, bias_;
};

// neuralpredictors' Bias2DLayer (parameter `bias`, shape [1, C, 1, 1], initially 0) and Scale2DLayer
// (`scale`, initially 1), and with rotations R >= 1 their RotationEquivariant*2DLayer forms (shape
// [1, 1, C, 1, 1], one value per feature shared by its R rotations): one learned value per channel,
// added or multiplied.
class PerChannel2d : public Layer {
 public:
  enum class Kind { Bias, Scale };
  PerChannel2d(std::string name, Kind kind, int64_t channels, int64_t rotations = 0);
  const char* type() const override;
  Shape output_shape(const Shape& in) const override;
  void declare(WeightSpec& spec) const override;
  void load(const StateDict& sd) override;
  void init(Rng& rng) override;
  void save(StateDict& sd) const override;
  bool as_channel_affine(ChannelAffine* out) const override;
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override;

 private:
  const char* field() const { return kind_ == Kind::Bias ? "bias" : "scale"; }
  std::vector<int64_t> param_shape() const;
  Kind kind_;
  int64_t c_, rotations_;
  Tensor value_;  // [C]
};

class Bias2d : public PerChannel2d {
 public:
  Bias2d(std::string name, int64_t channels, int64_t rotations = 0)
      : PerChannel2d(std::move(name), Kind::Bias, channels, rotations) {}
};

class Scale2d : public PerChannel2d {
 public:
  Scale2d(std::string name, int64_t channels, int64_t rotations = 0)
      : PerChannel2d(std::move(name), Kind::Scale, channels, rotations) {}
};

// An in-place op applying a per-channel affine map (the unfused path of the layers above).
std::unique_ptr<Op> make_affine_op(const ChannelAffine& a, const Shape& in);
// Checks that `in` is NCHW with `channels` channels; throws ShapeError naming `layer`.
void check_channels(const std::string& layer, const Shape& in, int64_t channels);

}  // namespace npcore
