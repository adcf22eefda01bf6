// TransferLearningCore: the torchvision feature stacks against the PyTorch reference dumps on every
// backend, both weight layouts (a trained core's state_dict, a torchvision checkpoint), the pretrained
// refusals, deterministic initialisation, the grayscale fold, and MaxPool2d on its own.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "cores/transfer_learning_core.h"
#include "engine/error.h"
#include "layers/max_pool2d.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"
#include "weights/state_dict.h"
#include "weights/torch_checkpoint.h"

using namespace npcore;

namespace {

std::unique_ptr<Core> tl_core(const std::string& config) {
  return make_core(R"({"core": "TransferLearningCore", "config": )" + config + "}", "test config");
}

// The TransferLearningCore reference cases: ../shared/ref's, else the fixture copies (tl_alexnet_l6).
std::vector<std::string> tl_cases() {
  std::vector<std::string> v;
  const std::string ref = test::ref_dir();
  for (const std::string& c : test::list_cases(ref.empty() ? test::fixture_dir() : ref)) {
    const std::string name = c.substr(c.rfind('/') + 1);
    if (name.rfind("tl_", 0) == 0 || name == "seed_transfer_vgg16") v.push_back(c);
  }
  return v;
}

bool exists(const std::string& path) {
  return std::ifstream(path).good();
}

// Runs one MaxPool2d on `in`.
Tensor pool(const MaxPool2dParams& p, const Tensor& in) {
  MaxPool2d layer("pool", p);
  auto op = layer.plan(in.shape(), EngineOptions{});
  Tensor out(op->out_shape);
  op->run(in, out, nullptr, nullptr);
  return out;
}

// An independent oracle: pad with -inf, then take the maximum of every window.
Tensor naive_pool(const MaxPool2dParams& p, const Tensor& x, const Shape& out_shape) {
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  // Room for ceil_mode windows that reach into the right padding.
  const int64_t PH = H + 2 * p.pad_h + (p.kernel_h - 1) * p.dilation_h + p.stride_h;
  const int64_t PW = W + 2 * p.pad_w + (p.kernel_w - 1) * p.dilation_w + p.stride_w;
  Tensor out(out_shape);
  std::vector<float> padded(size_t(PH * PW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      std::fill(padded.begin(), padded.end(), -std::numeric_limits<float>::infinity());
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          padded[size_t((h + p.pad_h) * PW + w + p.pad_w)] = x.image(n)[(c * H + h) * W + w];
      for (int64_t oh = 0; oh < out_shape[2]; ++oh)
        for (int64_t ow = 0; ow < out_shape[3]; ++ow) {
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t i = 0; i < p.kernel_h; ++i)
            for (int64_t j = 0; j < p.kernel_w; ++j)
              m = std::max(m, padded[size_t((oh * p.stride_h + i * p.dilation_h) * PW + ow * p.stride_w +
                                            j * p.dilation_w)]);
          out.image(n)[(c * out_shape[2] + oh) * out_shape[3] + ow] = m;
        }
    }
  return out;
}

}  // namespace

TEST_CASE("TransferLearningCore reference cases pass on every backend, fused and unfused", "[tl]") {
  const auto cases = tl_cases();
  REQUIRE(!cases.empty());
  if (test::ref_dir().empty())
    WARN(
        "../shared/ref is absent: only the fixture copy tl_alexnet_l6 of the 5 TransferLearningCore cases "
        "ran");
  else
    CHECK(cases.size() == 5);
  for (Backend b : all_backends()) {
    DYNAMIC_SECTION("backend " << backend_name(b)) {
      for (const std::string& prefix : cases)
        for (bool fuse : {true, false}) {
          CaseOptions opt;
          opt.engine.backend = b;
          opt.engine.fuse = fuse;
          CaseResult r = run_reference_case(prefix, opt);
          INFO(r.name << " on " << backend_name(b) << (fuse ? " fused" : " unfused")
                      << ": worst normalised error " << r.worst_normalised);
          CHECK(r.checks.size() >= 1);
          CHECK(r.pass);  // max|y - ref| <= 1e-4 * max(1, max|ref|) on output and every act/ tensor
        }
    }
  }
}

TEST_CASE("TransferLearningCore reads its weights from .pth and .legacy.pth as well", "[tl][pth]") {
  int n = 0;
  for (const std::string& prefix : tl_cases())
    for (const char* suffix : {".pth", ".legacy.pth"}) {
      if (!exists(prefix + suffix)) continue;
      CaseOptions opt;
      opt.engine.backend = Backend::Reference;
      opt.weights = prefix + suffix;
      CaseResult r = run_reference_case(prefix, opt);
      INFO(opt.weights << ": worst normalised error " << r.worst_normalised);
      CHECK(r.pass);
      ++n;
    }
  if (test::ref_dir().empty()) {
    CHECK(n == 0);
    WARN("../shared/ref is absent: the fixtures hold no .pth of a TransferLearningCore case; skipped");
  } else {
    CHECK(n == 4);  // seed_transfer_vgg16 and tl_vgg11_l8_rgb, both formats
  }
}

TEST_CASE("a torchvision-layout state_dict loads into the TransferLearning block, OutBatchNorm fresh",
          "[tl]") {
  const std::string dir = test::ref_dir();
  if (dir.empty()) {
    WARN("../shared/ref is absent: torchvision layout test skipped");
    return;
  }
  const std::string prefix = dir + "/tl_vgg11_l8_rgb";
  SafetensorsFile w = read_safetensors(prefix + ".weights.safetensors");
  // features.TransferLearning.N.* -> features.N.*; OutBatchNorm dropped; a classifier tensor added.
  StateDict tv("torchvision layout");
  const std::string tl = "features.TransferLearning.";
  for (const std::string& k : w.tensors.order())
    if (k.rfind(tl, 0) == 0) tv.add("features." + k.substr(tl.size()), w.tensors.at(k));
  tv.add_float("classifier.6.weight", Tensor({10, 4}));

  auto core = make_core(read_text_file(prefix + ".json"), prefix + ".json");
  core->load(tv);
  core->prepare(EngineOptions{Backend::Reference, true, 0});
  SafetensorsFile io = read_safetensors(prefix + ".io.safetensors");
  Tensor act;
  TapFn tap = [&](const std::string& block, const Tensor& t) {
    if (block == "features.TransferLearning") act = t.clone();
  };
  Tensor out = core->forward(io.tensors.get_float("input"), &tap);
  const double err = test::normalised_error(act, io.tensors.get_float("act/features.TransferLearning"));
  INFO("TransferLearning block: normalised error " << err);
  CHECK(err < 1e-5);
  // A fresh BatchNorm2d in eval mode scales by 1/sqrt(1 + eps); OutNonlin is a ReLU.
  Tensor expect = act.clone();
  for (int64_t i = 0; i < expect.numel(); ++i)
    expect.data()[i] = std::max(0.0f, expect.data()[i] / std::sqrt(1.0f + 1e-5f));
  CHECK(test::normalised_error(out, expect) < 1e-6);
}

TEST_CASE("torchvision reference checkpoints load into matching cores, mismatches name the file's keys",
          "[tl]") {
  const std::string dir = test::ref_dir();
  if (dir.empty()) {
    WARN("../shared/ref is absent: torchvision checkpoint loading skipped");
    return;
  }
  const std::string tv = dir + "/torchvision/";
  struct Ok {
    const char* file;
    const char* config;
    int64_t out_channels;
  };
  const Ok ok[] = {
      {"tv_vgg16_l12.pth", R"({"input_channels": 1, "tl_model_name": "vgg16", "layers": 12})", 256},
      {"tv_vgg16_l12.legacy_v1.pth", R"({"input_channels": 3, "tl_model_name": "vgg16", "layers": 11})", 256},
      {"tv_vgg11_bn_l8.pth", R"({"input_channels": 1, "tl_model_name": "vgg11_bn", "layers": 8})", 128},
      {"tv_alexnet_features.pth", R"({"input_channels": 1, "tl_model_name": "alexnet", "layers": -1})", 256},
      {"tv_alexnet_features.pth", R"({"input_channels": 3, "tl_model_name": "alexnet", "layers": 3})", 64},
  };
  for (const Ok& c : ok) {
    INFO(c.file << " with " << c.config);
    auto core = tl_core(c.config);
    core->load(load_weights_file(tv + c.file));
    core->prepare(EngineOptions{Backend::Reference, true, 0});
    Tensor y = core->forward(test::random_tensor({1, core->input_channels(), 64, 64}, 3));
    CHECK(y.dim(1) == c.out_channels);
    CHECK(std::isfinite(y.data()[0]));
  }
  // vgg11_bn cut at 10 needs features.8 (a conv) that the file lacks.
  auto core = tl_core(R"({"input_channels": 1, "tl_model_name": "vgg11_bn", "layers": 10})");
  CHECK_THROWS_AS(core->load(load_weights_file(tv + "tv_vgg11_bn_l8.pth")), WeightError);
  CHECK_THROWS_WITH(
      core->load(load_weights_file(tv + "tv_vgg11_bn_l8.pth")),
      Catch::Contains("missing (6): features.8.weight [256, 128, 3, 3]; features.8.bias [256]") &&
          Catch::Contains("read as a torchvision checkpoint"));
  // A vgg16 file is not an alexnet.
  auto alex = tl_core(R"({"input_channels": 1, "tl_model_name": "alexnet", "layers": 5})");
  CHECK_THROWS_WITH(
      alex->load(load_weights_file(tv + "tv_vgg16_l12.pth")),
      Catch::Contains("features.0.weight: file has [64, 3, 3, 3], TransferLearningCore (alexnet.features) "
                      "expects [64, 3, 11, 11]"));
  // A trained core's state_dict with a missing OutBatchNorm tensor is reported in its own names.
  SafetensorsFile w = read_safetensors(dir + "/tl_vgg11_l8_rgb.weights.safetensors");
  StateDict partial("partial");
  for (const std::string& k : w.tensors.order())
    if (k != "features.OutBatchNorm.running_var") partial.add(k, w.tensors.at(k));
  auto vgg11 = make_core(read_text_file(dir + "/tl_vgg11_l8_rgb.json"), "tl_vgg11_l8_rgb.json");
  CHECK_THROWS_WITH(vgg11->load(partial),
                    Catch::Contains("missing (1): features.OutBatchNorm.running_var [256]") &&
                        Catch::Contains("read as a trained TransferLearningCore"));
}

TEST_CASE("pretrained: true without weights says where the weights are and how to convert them", "[tl]") {
  auto core = tl_core(R"({"input_channels": 1, "tl_model_name": "vgg16", "layers": 12})");
  // (Catch's && keeps references to its operands: name both.)
  const auto url = Catch::Contains("https://download.pytorch.org/models/vgg16-397923af.pth");
  const auto how =
      Catch::Contains("npcore convert vgg16-397923af.pth vgg16_features.safetensors --features-only");
  const auto help = url && how;
  CHECK_THROWS_AS(core->init(1), WeightError);
  CHECK_THROWS_WITH(core->init(1), help);
  CHECK_THROWS_AS(core->prepare(EngineOptions{Backend::Reference, true, 0}), WeightError);
  CHECK_THROWS_WITH(core->prepare(EngineOptions{Backend::Reference, true, 0}), help);
  auto alex =
      tl_core(R"({"input_channels": 3, "tl_model_name": "alexnet", "layers": 4, "pretrained": true})");
  CHECK_THROWS_WITH(alex->init(1), Catch::Contains("alexnet-owt-7be5be79.pth"));
  // With weights it prepares and runs.
  StateDict sd = core->state_dict();  // zeros, in the core's own layout
  core->load(sd);
  CHECK_NOTHROW(core->prepare(EngineOptions{Backend::Reference, true, 0}));
}

TEST_CASE("init(seed) is deterministic and follows torchvision's initialisation", "[tl]") {
  const char* cfg = R"({"input_channels": 1, "tl_model_name": "vgg13_bn", "layers": 8, "pretrained": false})";
  auto a = tl_core(cfg), b = tl_core(cfg), c = tl_core(cfg);
  a->init(5);
  b->init(5);
  c->init(6);
  const StateDict sa = a->state_dict(), sb = b->state_dict(), sc = c->state_dict();
  REQUIRE(sa.order() == sb.order());
  for (const std::string& k : sa.order()) {
    INFO(k);
    CHECK(std::memcmp(sa.at(k).data, sb.at(k).data, sa.at(k).nbytes) == 0);
  }
  CHECK(std::memcmp(sa.at("features.TransferLearning.3.weight").data,
                    sc.at("features.TransferLearning.3.weight").data,
                    sa.at("features.TransferLearning.3.weight").nbytes) != 0);
  // kaiming_normal_(mode="fan_out", relu): std = sqrt(2 / (64 * 3 * 3)) for the [64, 64, 3, 3] conv.
  const Tensor w = sa.get_float("features.TransferLearning.3.weight");
  double ss = 0;
  for (int64_t i = 0; i < w.numel(); ++i) ss += double(w.data()[i]) * w.data()[i];
  const double std_dev = std::sqrt(ss / double(w.numel())), want = std::sqrt(2.0 / (64 * 9));
  INFO("conv std " << std_dev << ", kaiming fan_out " << want);
  CHECK(std::fabs(std_dev / want - 1.0) < 0.05);
  const Tensor bias = sa.get_float("features.TransferLearning.3.bias");
  for (int64_t i = 0; i < bias.numel(); ++i) REQUIRE(bias.data()[i] == 0.0f);
  const Tensor bn = sa.get_float("features.OutBatchNorm.weight");
  for (int64_t i = 0; i < bn.numel(); ++i) REQUIRE(bn.data()[i] == 1.0f);
  // AlexNet keeps PyTorch's Conv2d default: weights and bias within 1/sqrt(fan_in).
  auto alex =
      tl_core(R"({"input_channels": 3, "tl_model_name": "alexnet", "layers": 1, "pretrained": false})");
  alex->init(7);
  const StateDict s2 = alex->state_dict();
  const float bound = 1.0f / std::sqrt(3.0f * 121.0f);
  for (const char* k : {"features.TransferLearning.0.weight", "features.TransferLearning.0.bias"}) {
    const Tensor t = s2.get_float(k);
    float m = 0;
    for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.data()[i]));
    INFO(k << ": max |value| " << m << ", bound " << bound);
    CHECK(m <= bound);
    CHECK(m > 0.5f * bound);
  }
}

TEST_CASE("a grayscale core equals the RGB core on the image repeated to three channels", "[tl]") {
  for (const char* model : {"vgg11", "vgg16_bn", "alexnet"}) {
    INFO(model);
    const std::string cfg =
        std::string(R"("tl_model_name": ")") + model + R"(", "layers": 5, "pretrained": false})";
    auto gray = tl_core(R"({"input_channels": 1, )" + cfg);
    auto rgb = tl_core(R"({"input_channels": 3, )" + cfg);
    gray->init(11);
    rgb->init(11);
    CHECK(gray->input_channels() == 1);
    for (Core* c : {gray.get(), rgb.get()}) c->prepare(EngineOptions{Backend::Reference, true, 0});
    const Tensor x = test::random_tensor({2, 1, 67, 71}, 4);
    Tensor x3({2, 3, 67, 71});
    for (int64_t c = 0; c < 3; ++c) x3.channels(c, 1).copy_from(x);
    const double err = test::normalised_error(gray->forward(x), rgb->forward(x3));
    INFO("normalised error " << err);
    CHECK(err < 1e-6);
  }
}

TEST_CASE("TransferLearningCore config errors name the key, the value and the rule", "[tl]") {
  CHECK_THROWS_WITH(
      tl_core(R"({"input_channels": 1, "tl_model_name": "resnet18", "layers": 3})"),
      Catch::Contains("'tl_model_name' is not a supported torchvision model; supported: alexnet, vgg11,") &&
          Catch::Contains("resnet18"));
  CHECK_THROWS_WITH(tl_core(R"({"input_channels": 1, "tl_model_name": "vgg11", "layers": 0})"),
                    Catch::Contains("'layers' cuts vgg11.features (21 layers) to nothing"));
  CHECK_THROWS_AS(tl_core(R"({"input_channels": 1, "tl_model_name": "vgg11", "layers": -21})"), ConfigError);
  CHECK_THROWS_WITH(tl_core(R"({"input_channels": 2, "tl_model_name": "vgg11", "layers": 3})"),
                    Catch::Contains("'input_channels' must be 3, or 1"));
  CHECK_THROWS_WITH(
      tl_core(R"({"input_channels": 1, "tl_model_name": "vgg11", "layers": 3, "dropout": 0.5})"),
      Catch::Contains("unknown key 'dropout'"));
  CHECK_THROWS_AS(tl_core(R"({"input_channels": 1, "layers": 3})"), ConfigError);
  // Python slice semantics: a stop past the end keeps everything, a negative one counts from the end.
  auto all = tl_core(R"({"input_channels": 1, "tl_model_name": "vgg11", "layers": 100, "momentum": 0.3,
                        "fine_tune": true})");
  CHECK(dynamic_cast<TransferLearningCore&>(*all).kept_layers() == 21);
  auto cut = tl_core(R"({"input_channels": 1, "tl_model_name": "alexnet", "layers": -1})");
  CHECK(dynamic_cast<TransferLearningCore&>(*cut).kept_layers() == 12);
  CHECK(dynamic_cast<TransferLearningCore&>(*cut).out_channels() == 256);
  // Blocks as the act/ dumps name them; the output is the last block's.
  std::vector<std::string> names;
  for (const auto& b : cut->blocks()) names.push_back(b->name());
  CHECK(names ==
        std::vector<std::string>{"features.TransferLearning", "features.OutBatchNorm", "features.OutNonlin"});
  CHECK(cut->output_shape({2, 1, 96, 128}) == Shape{2, 256, 5, 7});
}

TEST_CASE("MaxPool2d matches PyTorch's window rules", "[tl][maxpool]") {
  Tensor x({1, 1, 4, 4});
  for (int i = 0; i < 16; ++i) x.data()[i] = float(i);
  Tensor y = pool(MaxPool2dParams::square(2), x);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  CHECK(std::vector<float>(y.data(), y.data() + 4) == std::vector<float>{5, 7, 13, 15});
  // AlexNet's pools: kernel 3, stride 2, floor: 55 -> 27, 27 -> 13, 13 -> 6.
  for (auto [in, out] : std::initializer_list<std::pair<int, int>>{{55, 27}, {27, 13}, {13, 6}, {5, 2}})
    CHECK(MaxPool2dParams::square(3, 2).output_shape({1, 1, in, in}, "pool") == Shape{1, 1, out, out});
  // ceil_mode keeps a last partial window (5 -> 3 with kernel 2), but never one starting in the right
  // padding.
  CHECK(MaxPool2dParams::square(2, 2, 0, 1, true).output_shape({1, 1, 5, 5}, "pool") == Shape{1, 1, 3, 3});
  CHECK(MaxPool2dParams::square(2, 2, 1, 1, true).output_shape({1, 1, 4, 4}, "pool") == Shape{1, 1, 3, 3});
  // Padding counts as -inf: an all-negative input never produces 0.
  Tensor neg({1, 1, 3, 3});
  neg.fill(-2.0f);
  Tensor yp = pool(MaxPool2dParams::square(3, 2, 1), neg);
  for (int64_t i = 0; i < yp.numel(); ++i) CHECK(yp.data()[i] == -2.0f);
  // NaN propagates.
  x.data()[5] = std::numeric_limits<float>::quiet_NaN();
  y = pool(MaxPool2dParams::square(2), x);
  CHECK(std::isnan(y.data()[0]));
  CHECK(y.data()[1] == 7.0f);
  // Errors.
  CHECK_THROWS_AS(MaxPool2d("p", MaxPool2dParams::square(2, 2, 2)), ConfigError);
  CHECK_THROWS_WITH(MaxPool2dParams::square(3, 2).output_shape({1, 1, 2, 2}, "features.2"),
                    Catch::Contains("features.2: input [1, 1, 2, 2] is too small"));
}

TEST_CASE("MaxPool2d agrees with a naive padded oracle over a table of shapes, on channel views",
          "[tl][maxpool]") {
  struct P {
    int k, s, pad, d;
    bool ceil;
  };
  const P table[] = {{2, 2, 0, 1, false}, {3, 2, 0, 1, false}, {3, 2, 1, 1, false}, {3, 1, 1, 1, false},
                     {2, 2, 0, 1, true},  {3, 2, 1, 1, true},  {3, 2, 1, 2, false}, {2, 3, 1, 1, true}};
  int seed = 0;
  for (const P& t : table)
    for (int h : {7, 8, 13}) {
      const MaxPool2dParams p = MaxPool2dParams::square(t.k, t.s, t.pad, t.d, t.ceil);
      INFO(p.str() << " on " << h << "x" << h + 3);
      const Tensor full = test::random_tensor({2, 5, h, h + 3}, uint64_t(++seed));
      const Tensor view = full.channels(1, 3);  // batch stride 5*H*W
      Tensor got = pool(p, view);
      CHECK(test::normalised_error(got, naive_pool(p, view, got.shape())) == 0.0);
    }
}
