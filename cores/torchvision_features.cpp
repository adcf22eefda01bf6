#include "cores/torchvision_features.h"

#include <algorithm>
#include <map>
#include <set>

#include "engine/error.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

namespace npcore {
namespace {

constexpr int kPool = 0;  // "M" in torchvision's VGG configs

// torchvision.models.vgg.make_layers: 3x3 convs (padding 1, bias), [BatchNorm2d,] ReLU; "M" a 2x2/2 max pool.
std::vector<TorchvisionLayer> vgg(const std::vector<int>& cfg, bool batch_norm) {
  std::vector<TorchvisionLayer> v;
  int64_t in = 3;
  for (int c : cfg) {
    TorchvisionLayer l;
    if (c == kPool) {
      l.kind = TorchvisionLayer::Kind::MaxPool2d;
      l.pool = MaxPool2dParams::square(2, 2);
      v.push_back(l);
      continue;
    }
    l.kind = TorchvisionLayer::Kind::Conv2d;
    l.conv = Conv2dParams::square(in, c, 3, 1, 1);
    v.push_back(l);
    if (batch_norm) {
      TorchvisionLayer bn;
      bn.kind = TorchvisionLayer::Kind::BatchNorm2d;
      bn.channels = c;
      v.push_back(bn);
    }
    v.push_back(TorchvisionLayer{});  // ReLU
    in = c;
  }
  return v;
}

// torchvision.models.alexnet.AlexNet.features; its pools are MaxPool2d(kernel_size=3, stride=2).
std::vector<TorchvisionLayer> alexnet() {
  auto conv = [](int64_t in, int64_t out, int64_t k, int64_t s, int64_t p) {
    TorchvisionLayer l;
    l.kind = TorchvisionLayer::Kind::Conv2d;
    l.conv = Conv2dParams::square(in, out, k, s, p);
    return l;
  };
  TorchvisionLayer relu, pool;
  pool.kind = TorchvisionLayer::Kind::MaxPool2d;
  pool.pool = MaxPool2dParams::square(3, 2);
  return {conv(3, 64, 11, 4, 2),
          relu,
          pool,
          conv(64, 192, 5, 1, 2),
          relu,
          pool,
          conv(192, 384, 3, 1, 1),
          relu,
          conv(384, 256, 3, 1, 1),
          relu,
          conv(256, 256, 3, 1, 1),
          relu,
          pool};
}

struct Model {
  std::vector<TorchvisionLayer> features;
  std::string url;
};

const std::map<std::string, Model>& models() {
  static const std::map<std::string, Model> m = [] {
    const std::vector<int> A = {64, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool};
    const std::vector<int> B = {64,    64,  kPool, 128,   128, kPool, 256,  256,
                                kPool, 512, 512,   kPool, 512, 512,   kPool};
    const std::vector<int> D = {64,    64,  kPool, 128, 128,   kPool, 256, 256, 256,
                                kPool, 512, 512,   512, kPool, 512,   512, 512, kPool};
    const std::vector<int> E = {64,  64,  kPool, 128, 128,   kPool, 256, 256, 256, 256,  kPool,
                                512, 512, 512,   512, kPool, 512,   512, 512, 512, kPool};
    const std::string base = "https://download.pytorch.org/models/";
    std::map<std::string, Model> r;
    r["alexnet"] = {alexnet(), base + "alexnet-owt-7be5be79.pth"};
    r["vgg11"] = {vgg(A, false), base + "vgg11-8a719046.pth"};
    r["vgg11_bn"] = {vgg(A, true), base + "vgg11_bn-6002323d.pth"};
    r["vgg13"] = {vgg(B, false), base + "vgg13-19584684.pth"};
    r["vgg13_bn"] = {vgg(B, true), base + "vgg13_bn-abd245e5.pth"};
    r["vgg16"] = {vgg(D, false), base + "vgg16-397923af.pth"};
    r["vgg16_bn"] = {vgg(D, true), base + "vgg16_bn-6c64b313.pth"};
    r["vgg19"] = {vgg(E, false), base + "vgg19-dcbb9e9d.pth"};
    r["vgg19_bn"] = {vgg(E, true), base + "vgg19_bn-c79401a0.pth"};
    return r;
  }();
  return m;
}

const Model& model_of(const std::string& name) {
  auto it = models().find(name);
  if (it == models().end()) {
    std::string names;
    for (const auto& n : torchvision_model_names()) names += (names.empty() ? "" : ", ") + n;
    throw ConfigError("unknown torchvision model '" + name + "'; supported: " + names);
  }
  return it->second;
}

bool is_float(DType d) {
  return d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16;
}

}  // namespace

const std::vector<std::string>& torchvision_model_names() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> r;
    for (const auto& [k, m] : models()) r.push_back(k);
    return r;
  }();
  return v;
}

const std::vector<TorchvisionLayer>& torchvision_features(const std::string& model) {
  return model_of(model).features;
}

std::string torchvision_weights_url(const std::string& model) {
  return model_of(model).url;
}

std::vector<TorchvisionParam> torchvision_layer_params(const TorchvisionLayer& l) {
  switch (l.kind) {
    case TorchvisionLayer::Kind::Conv2d: {
      const Shape w = l.conv.weight_shape();
      return {{"weight", {w.begin(), w.end()}}, {"bias", {l.conv.out_channels}}};
    }
    case TorchvisionLayer::Kind::BatchNorm2d:
      return {{"weight", {l.channels}},
              {"bias", {l.channels}},
              {"running_mean", {l.channels}},
              {"running_var", {l.channels}},
              {"num_batches_tracked", {}, true}};
    default:
      return {};
  }
}

std::vector<std::string> check_torchvision_features(const StateDict& sd, const std::string& model) {
  const auto& features = torchvision_features(model);
  std::vector<std::string> problems;
  int64_t last = -1;  // the last layer the file holds a tensor of
  std::set<std::string> seen;
  for (const std::string& key : sd.order()) {
    if (key.compare(0, 9, "features.") != 0) continue;
    const std::string rest = key.substr(9);
    const size_t dot = rest.find('.');
    const std::string index = rest.substr(0, dot);
    const bool numeric =
        !index.empty() && index.size() < 6 && index.find_first_not_of("0123456789") == std::string::npos;
    const int64_t i = numeric ? std::stoll(index) : -1;
    if (!numeric || dot == std::string::npos || i >= int64_t(features.size())) {
      problems.push_back(key + ": " + model + ".features has no such layer (it has features.0 to features." +
                         std::to_string(features.size() - 1) + ")");
      continue;
    }
    const std::string field = rest.substr(dot + 1);
    const StoredTensor& t = sd.at(key);
    bool known = false;
    for (const TorchvisionParam& p : torchvision_layer_params(features[size_t(i)])) {
      if (p.field != field) continue;
      known = true;
      if (t.shape != p.shape)
        problems.push_back(key + ": shape " + t.shape_str() + ", " + model + " has " + shape_str(p.shape));
      if (p.counter ? (is_float(t.dtype) || t.dtype == DType::Bool) : !is_float(t.dtype))
        problems.push_back(key + ": dtype " + dtype_name(t.dtype) + ", expected " +
                           (p.counter ? "an integer" : "a floating-point dtype"));
    }
    if (!known) {
      static const char* kinds[] = {"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"};
      problems.push_back(key + ": " + model + ".features." + index + " is a " +
                         kinds[int(features[size_t(i)].kind)] + ", which has no tensor '" + field + "'");
      continue;
    }
    seen.insert(key);
    last = std::max(last, i);
  }
  if (last < 0 && problems.empty()) problems.push_back("no features.<i>.* tensor at all");
  for (int64_t i = 0; i <= last; ++i)
    for (const TorchvisionParam& p : torchvision_layer_params(features[size_t(i)])) {
      const std::string key = "features." + std::to_string(i) + "." + p.field;
      if (!p.counter && !seen.count(key))
        problems.push_back(key + " " + shape_str(p.shape) +
                           ": missing (the file holds layers up to features." + std::to_string(last) + ")");
    }
  return problems;
}

}  // namespace npcore
