#pragma once
// The `features` Sequential of the torchvision 0.14 models TransferLearningCore can cut: vgg11, vgg13,
// vgg16, vgg19 (torchvision's make_layers configs A, B, D, E), their _bn variants, and alexnet. Shared by
// TransferLearningCore (which builds them) and `npcore convert --model` (which checks checkpoints).
#include <string>
#include <vector>

#include "engine/conv.h"
#include "layers/max_pool2d.h"

namespace npcore {

class StateDict;

// One child of torchvision's `features`.
struct TorchvisionLayer {
  enum class Kind { Conv2d, BatchNorm2d, ReLU, MaxPool2d };
  Kind kind = Kind::ReLU;
  Conv2dParams conv;     // Conv2d (always with bias)
  int64_t channels = 0;  // BatchNorm2d
  MaxPool2dParams pool;  // MaxPool2d
};

// One state_dict tensor of a layer: "weight" [64, 3, 3, 3], ...; `counter` marks BatchNorm's optional
// integer num_batches_tracked.
struct TorchvisionParam {
  std::string field;
  std::vector<int64_t> shape;
  bool counter = false;
};

// Supported model names, in a stable order ("alexnet", "vgg11", "vgg11_bn", ...).
const std::vector<std::string>& torchvision_model_names();
// The model's features; throws ConfigError listing the supported names for an unknown one.
const std::vector<TorchvisionLayer>& torchvision_features(const std::string& model);
// The state_dict tensors of one layer (none for ReLU and MaxPool2d).
std::vector<TorchvisionParam> torchvision_layer_params(const TorchvisionLayer& layer);
// torchvision's ImageNet checkpoint URL for the model (IMAGENET1K_V1 weights).
std::string torchvision_weights_url(const std::string& model);
// Problems, one per line, with the `features.*` tensors of `sd` read as `model`'s features: names the model
// lacks, wrong shapes or dtypes, and tensors missing before the last layer the file holds (a file may hold
// the first k layers only, as a cut core needs). Other keys (classifier.*) are not looked at.
std::vector<std::string> check_torchvision_features(const StateDict& sd, const std::string& model);

}  // namespace npcore
