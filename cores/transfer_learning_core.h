#pragma once
// neuralpredictors' TransferLearningCore: the `features` of a torchvision model (vgg11/13/16/19, their _bn
// variants, alexnet) cut as features[:layers] (Python slice: negative counts from the end), then
// OutBatchNorm (over the last conv's out_channels) if final_batchnorm and an OutNonlin ReLU if
// final_nonlinearity. Blocks, as the act/ dumps name them:
//   features.TransferLearning (children features.TransferLearning.<i>), features.OutBatchNorm,
//   features.OutNonlin; the output is the last block's.
// A 1-channel input meant for the RGB first conv (upstream repeats it to 3 channels) is folded into that
// conv at prepare(), so the core takes the 1-channel image directly.
//
// Weights come from either form, told apart by their keys:
//   * a trained core's state_dict: features.TransferLearning.<i>.*, features.OutBatchNorm.*;
//   * a torchvision checkpoint or `npcore convert` output: features.<i>.* (layers past the cut may be
//     present and are checked, classifier.* is ignored); OutBatchNorm then starts as identity, as in a
//     freshly built core.
// `pretrained: true` means torchvision's ImageNet weights, which must come from such a file: init() refuses
// and prepare() refuses a core that was never loaded, both saying where to get and how to convert them.
#include <string>

#include "cores/core.h"

namespace npcore {

class ConfigReader;

// TransferLearningCore's constructor arguments (neuralpredictors' names and defaults).
struct TransferLearningOptions {
  int64_t input_channels = 1;
  std::string tl_model_name;
  int64_t layers = 0;  // slice stop, as given
  bool pretrained = true;
  bool final_batchnorm = true;
  bool final_nonlinearity = true;
  double momentum = 0.1;   // training-only (BatchNorm momentum)
  bool fine_tune = false;  // training-only (gradients into the torchvision layers)
};

// Reads and validates the config keys (unknown model names, empty cuts, input channels the first conv
// cannot take are ConfigErrors). Does not call r.finish().
TransferLearningOptions parse_transfer_learning_options(ConfigReader& r);

class TransferLearningCore : public Core {
 public:
  explicit TransferLearningCore(const TransferLearningOptions& o);
  const char* type() const override { return "TransferLearningCore"; }
  const TransferLearningOptions& config() const { return o_; }
  // How many of the model's features the cut keeps, and the channels of its last conv.
  int64_t kept_layers() const { return kept_; }
  int64_t out_channels() const { return out_channels_; }

  // Accepts a trained core's state_dict or a torchvision-layout one (see above), strictly.
  void load(const StateDict& sd) override;
  // torchvision's initialisation for pretrained: false (VGG: kaiming_normal fan_out for convs, bias 0;
  // AlexNet: PyTorch's Conv2d default; BatchNorm weight 1, bias 0); refuses pretrained: true.
  void init(uint64_t seed) override;

  // What to do to get ImageNet weights for this core (the message of the pretrained refusals).
  std::string pretrained_weights_help() const;

 private:
  void load_torchvision_layout(const StateDict& sd);
  TransferLearningOptions o_;
  int64_t kept_ = 0, out_channels_ = 0;
};

}  // namespace npcore
