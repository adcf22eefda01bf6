#include "cores/transfer_learning_core.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cores/config_reader.h"
#include "cores/torchvision_features.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "layers/activations.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/max_pool2d.h"
#include "layers/repeated_input_conv2d.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

const char* kFeatures = "features.TransferLearning";
const char* kOutBatchNorm = "features.OutBatchNorm";
const char* kOutNonlin = "features.OutNonlin";

// features.TransferLearning. For a pretrained core it refuses to be prepared before weights were loaded,
// since the engine cannot produce ImageNet weights itself.
class TransferLearningFeatures final : public Sequential {
 public:
  TransferLearningFeatures(std::string name, bool needs_weights, std::string help)
      : Sequential(std::move(name)), needs_weights_(needs_weights), help_(std::move(help)) {}
  void load(const StateDict& sd) override {
    Sequential::load(sd);
    has_weights_ = true;
  }
  void init(Rng& rng) override {
    Sequential::init(rng);
    has_weights_ = true;
  }
  void prepare(const EngineOptions& opt) override {
    if (needs_weights_ && !has_weights_) throw WeightError(help_);
    Sequential::prepare(opt);
  }

 private:
  bool needs_weights_, has_weights_ = false;
  std::string help_;
};

// How many layers features[:stop] keeps (Python slice semantics).
int64_t slice_count(int64_t stop, int64_t n) {
  return stop >= 0 ? std::min(stop, n) : std::max<int64_t>(0, n + stop);
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.compare(0, std::strlen(prefix), prefix) == 0;
}

std::string model_list() {
  std::string s;
  for (const auto& n : torchvision_model_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// WeightSpec::check with a note on the two accepted key layouts appended to its message.
void check_spec(const WeightSpec& spec, const StateDict& sd, const std::string& what,
                const std::string& note) {
  try {
    spec.check(sd, what);
  } catch (const WeightError& e) {
    throw WeightError(std::string(e.what()) + " " + note);
  }
}

// torchvision's initialisation of a features conv: VGG's kaiming_normal_(mode="fan_out", relu) with zero
// bias; AlexNet keeps PyTorch's Conv2d default, kaiming_uniform_(a=sqrt(5)) and a uniform bias, both with
// bound 1/sqrt(fan_in).
void init_torchvision_conv(Conv2d& conv, bool vgg, Rng& rng) {
  const Conv2dParams& p = conv.params();
  const double receptive = double(p.kernel_h * p.kernel_w);
  Tensor w(p.weight_shape()), b(Shape{p.out_channels});
  if (vgg) {
    rng.fill_normal(w, 0.0f, float(std::sqrt(2.0 / (double(p.out_channels) * receptive))));
  } else {
    const float bound = float(1.0 / std::sqrt(double(p.in_channels / p.groups) * receptive));
    rng.fill_uniform(w, -bound, bound);
    rng.fill_uniform(b, -bound, bound);
  }
  conv.set_weights(w, b);
}

}  // namespace

TransferLearningOptions parse_transfer_learning_options(ConfigReader& r) {
  TransferLearningOptions o;
  o.input_channels = r.get_int("input_channels");
  o.tl_model_name = r.get_string("tl_model_name");
  const auto& names = torchvision_model_names();
  if (std::find(names.begin(), names.end(), o.tl_model_name) == names.end())
    r.fail("tl_model_name", "is not a supported torchvision model; supported: " + model_list());
  o.layers = r.get_int("layers");
  const int64_t n = int64_t(torchvision_features(o.tl_model_name).size());
  if (slice_count(o.layers, n) == 0)
    r.fail("layers", "cuts " + o.tl_model_name + ".features (" + std::to_string(n) +
                         " layers) to nothing: features[:layers] must keep at least one layer");
  if (o.input_channels != 3 && o.input_channels != 1)
    r.fail("input_channels", "must be 3, or 1 (repeated to the 3 channels " + o.tl_model_name + " takes)");
  o.pretrained = r.get_bool("pretrained", true);
  o.final_batchnorm = r.get_bool("final_batchnorm", true);
  o.final_nonlinearity = r.get_bool("final_nonlinearity", true);
  // Training-only: accepted and validated, no effect on inference.
  o.momentum = r.get_number("momentum", 0.1);
  o.fine_tune = r.get_bool("fine_tune", false);
  return o;
}

TransferLearningCore::TransferLearningCore(const TransferLearningOptions& o) : o_(o) {
  const auto& features = torchvision_features(o_.tl_model_name);
  kept_ = slice_count(o_.layers, int64_t(features.size()));
  const std::string where =
      std::string(type()) + "(" + o_.tl_model_name + ", layers=" + std::to_string(o_.layers) + ")";
  if (kept_ == 0) throw ConfigError(where + ": features[:layers] keeps no layer");
  if (o_.input_channels != 3 && o_.input_channels != 1)
    throw ConfigError(where + ": input_channels " + std::to_string(o_.input_channels) +
                      ": must be 3, or 1 (repeated to 3 channels)");
  input_channels_ = o_.input_channels;

  auto tl = std::make_unique<TransferLearningFeatures>(kFeatures, o_.pretrained, pretrained_weights_help());
  for (int64_t i = 0; i < kept_; ++i) {
    const TorchvisionLayer& l = features[size_t(i)];
    const std::string name = tl->key(std::to_string(i));
    switch (l.kind) {
      case TorchvisionLayer::Kind::Conv2d:
        // Upstream repeats a 1-channel input to the 3 channels of the first conv; fold that into the conv.
        if (i == 0 && o_.input_channels == 1 && l.conv.in_channels == 3)
          tl->add(std::make_unique<RepeatedInputConv2d>(name, l.conv, 3));
        else
          tl->add(std::make_unique<Conv2d>(name, l.conv));
        out_channels_ = l.conv.out_channels;
        break;
      case TorchvisionLayer::Kind::BatchNorm2d:
        tl->add(std::make_unique<BatchNorm2d>(name, l.channels));
        break;
      case TorchvisionLayer::Kind::ReLU:
        tl->add(std::make_unique<ActivationLayer>(name, "ReLU", Activation{ActKind::ReLU}));
        break;
      case TorchvisionLayer::Kind::MaxPool2d:
        tl->add(std::make_unique<MaxPool2d>(name, l.pool));
        break;
    }
  }
  blocks_.push_back(std::move(tl));
  if (o_.final_batchnorm) {
    auto b = std::make_unique<Sequential>(kOutBatchNorm);
    b->add(std::make_unique<BatchNorm2d>(kOutBatchNorm, out_channels_));
    blocks_.push_back(std::move(b));
  }
  if (o_.final_nonlinearity) {
    auto b = std::make_unique<Sequential>(kOutNonlin);
    b->add(std::make_unique<ActivationLayer>(kOutNonlin, "ReLU", Activation{ActKind::ReLU}));
    blocks_.push_back(std::move(b));
  }
  skip_ = 0;
  stack_ = {int64_t(blocks_.size()) - 1};
}

std::string TransferLearningCore::pretrained_weights_help() const {
  const std::string& m = o_.tl_model_name;
  const std::string url = torchvision_weights_url(m);
  const std::string file = url.substr(url.rfind('/') + 1);
  return std::string(type()) + "(tl_model_name='" + m +
         "', pretrained=True) needs torchvision's ImageNet weights, " +
         "which npcore does not download: fetch " + url + ", convert it with `npcore convert " + file + " " +
         m + "_features.safetensors --features-only --model " + m + "` and load that file (e.g. --weights " +
         m +
         "_features.safetensors); a trained core's state_dict works too. For torchvision's random "
         "initialisation set pretrained: false.";
}

void TransferLearningCore::load(const StateDict& sd) {
  bool core_layout = false;
  for (const std::string& k : sd.order())
    if (starts_with(k, "features.TransferLearning.") || starts_with(k, "features.OutBatchNorm."))
      core_layout = true;
  if (!core_layout) {
    load_torchvision_layout(sd);
    return;
  }
  check_spec(weight_spec(), sd, type(),
             "(read as a trained TransferLearningCore state_dict, keys features.TransferLearning.<i>.*" +
                 std::string(o_.final_batchnorm ? " and features.OutBatchNorm.*" : "") + ")");
  Core::load(sd);
}

void TransferLearningCore::load_torchvision_layout(const StateDict& sd) {
  // Check in the file's own names: the kept layers strictly, later layers where present, classifier ignored.
  const auto& features = torchvision_features(o_.tl_model_name);
  WeightSpec spec;
  for (size_t i = 0; i < features.size(); ++i)
    for (const TorchvisionParam& p : torchvision_layer_params(features[i])) {
      const std::string key = "features." + std::to_string(i) + "." + p.field;
      if (int64_t(i) >= kept_ && !sd.contains(key)) continue;
      if (p.counter)
        spec.expect_counter(key);
      else
        spec.expect(key, p.shape);
    }
  spec.ignore_prefix("classifier.");
  check_spec(spec, sd, std::string(type()) + " (" + o_.tl_model_name + ".features)",
             "(read as a torchvision checkpoint, keys features.<i>.* of " + o_.tl_model_name +
                 "; a trained core's state_dict uses features.TransferLearning.<i>.*)");
  // Rename the kept layers into the core's names (no copy) and start OutBatchNorm as identity.
  StateDict mapped(sd.source());
  for (int64_t i = 0; i < kept_; ++i)
    for (const TorchvisionParam& p : torchvision_layer_params(features[size_t(i)])) {
      const StoredTensor* t = sd.find("features." + std::to_string(i) + "." + p.field);
      if (t) mapped.add(std::string(kFeatures) + "." + std::to_string(i) + "." + p.field, *t);
    }
  if (o_.final_batchnorm) {
    Tensor zeros({out_channels_}), ones({out_channels_});
    ones.fill(1.0f);
    const std::string bn = kOutBatchNorm;
    mapped.add_float(bn + ".weight", ones);
    mapped.add_float(bn + ".bias", zeros);
    mapped.add_float(bn + ".running_mean", zeros);
    mapped.add_float(bn + ".running_var", ones);
  }
  Core::load(mapped);
}

void TransferLearningCore::init(uint64_t seed) {
  if (o_.pretrained) throw WeightError(pretrained_weights_help());
  Core::init(seed);  // BatchNorms fresh (weight 1, bias 0, mean 0, var 1)
  Rng rng(seed);
  const bool vgg = o_.tl_model_name.compare(0, 3, "vgg") == 0;
  for (const LayerPtr& child : blocks_.front()->children()) {
    if (auto* c = dynamic_cast<Conv2d*>(child.get())) init_torchvision_conv(*c, vgg, rng);
    if (auto* r = dynamic_cast<RepeatedInputConv2d*>(child.get())) init_torchvision_conv(r->conv(), vgg, rng);
  }
}

}  // namespace npcore
