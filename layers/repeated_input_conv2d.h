#pragma once
// torch.nn.Conv2d applied to input.repeat(1, R, 1, 1): TransferLearningCore's grayscale-to-RGB path, where
// a C-channel image is repeated R times so that an RGB network can take it. Repeating the input and
// convolving equals convolving the input once with the kernel summed over the R repeats, so prepare()
// folds the state_dict's [out, R*C, kh, kw] weight into [out, C, kh, kw] and the kernel reads the image
// as it is: no repeated copy, a third of the multiply-adds. The state_dict keeps PyTorch's shapes.
#include "layers/conv2d.h"

namespace npcore {

class RepeatedInputConv2d : public Layer {
 public:
  // `params` describe the conv as in PyTorch (in_channels = repeats * the channels the layer takes).
  RepeatedInputConv2d(std::string name, const Conv2dParams& params, int64_t repeats);
  const char* type() const override { return "Conv2d"; }
  // The conv as stored in the state_dict (parameters, weights).
  Conv2d& conv() { return stored_; }
  const Conv2d& conv() const { return stored_; }
  int64_t repeats() const { return repeats_; }
  Shape output_shape(const Shape& in) const override { return folded_.output_shape(in); }

  void declare(WeightSpec& spec) const override { stored_.declare(spec); }
  void load(const StateDict& sd) override { stored_.load(sd); }
  void init(Rng& rng) override { stored_.init(rng); }
  void save(StateDict& sd) const override { stored_.save(sd); }

  bool can_absorb_affine() const override { return folded_.can_absorb_affine(); }
  bool can_absorb_activation() const override { return folded_.can_absorb_activation(); }
  void absorb_affine(const ChannelAffine& a) override { folded_.absorb_affine(a); }
  void absorb_activation(const Activation& a) override { folded_.absorb_activation(a); }
  void reset_fusion() override { folded_.reset_fusion(); }

  void prepare(const EngineOptions& opt) override;
  std::unique_ptr<Op> make_op(const Shape& in, const EngineOptions& opt) const override {
    return folded_.plan(in, opt);
  }

 private:
  static Conv2dParams folded_params(const std::string& name, Conv2dParams p, int64_t repeats);
  int64_t repeats_;
  Conv2d stored_;  // [out, R*C, kh, kw], what load/init/save see
  Conv2d folded_;  // [out, C, kh, kw], what runs (fusion goes here)
};

}  // namespace npcore
