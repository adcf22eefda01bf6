// Cores and plans under misuse and edge cases: another plan's workspace, absurd sizes, a load that fails
// part-way, re-initialising a core under an existing plan, single-thread runs that must not allocate,
// SoftThreshold's state_dict buffer, rotation-equivariant layers with one rotation.
#include <catch2/catch.hpp>
#include <cmath>

#include "cores/factory.h"
#include "engine/error.h"
#include "layers/max_pool2d.h"
#include "tests/alloc_count.h"
#include "tests/test_util.h"
#include "weights/state_dict.h"
#include "weights/weight_spec.h"

using namespace npcore;
using Catch::Matchers::Contains;

namespace {

std::unique_ptr<Core> prepared(const std::string& json, uint64_t seed, EngineOptions opt = {}) {
  auto core = make_core(json, "test.json");
  core->init(seed);
  core->prepare(opt);
  return core;
}

const char* kSmall = R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 4,
    "input_kern": 3, "hidden_kern": 3, "layers": 2}})";
const char* kSE = R"({"core": "SE2dCore", "config": {"input_channels": 1, "hidden_channels": 16,
    "input_kern": 5, "hidden_kern": 3, "layers": 3, "n_se_blocks": 2, "se_reduction": 4}})";

}  // namespace

TEST_CASE("a plan refuses a workspace made by another plan", "[robust]") {
  auto core = prepared(kSmall, 1);
  auto p1 = core->plan({1, 1, 8, 8});
  auto p2 = core->plan({2, 1, 8, 8});
  Workspace ws1 = p1->make_workspace();
  Tensor x({2, 1, 8, 8}), y(p2->output_shape());
  CHECK_THROWS_WITH(p2->run(x, y, ws1), Contains("workspace was not made by this plan"));
  Workspace ws2 = p2->make_workspace();
  CHECK_NOTHROW(p2->run(x, y, ws2));
}

TEST_CASE("absurd sizes are refused before anything is allocated", "[robust]") {
  CHECK_THROWS_WITH(make_core(R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
      "hidden_channels": 4611686018427387904, "input_kern": 3, "hidden_kern": 3}})", "big.json"),
                    Contains("hidden_channels") && Contains("too large"));
  CHECK_THROWS_WITH(make_core(R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
      "hidden_channels": 8, "input_kern": 100000, "hidden_kern": 3}})", "big.json"),
                    Contains("input_kern") && Contains("too large"));
  auto core = prepared(kSmall, 1);
  CHECK_THROWS_AS(core->plan({-1, 1, 16, 16}), ShapeError);
  CHECK_THROWS_WITH(core->plan({1, 1, 0, 16}), Contains("must be positive"));
  CHECK_THROWS_AS(Shape({int64_t(1) << 40, int64_t(1) << 40}).numel(), ShapeError);
}

TEST_CASE("a load that fails part-way leaves the core unusable until a load succeeds", "[robust]") {
  auto core = prepared(kSmall, 1);
  const StateDict good = core->state_dict();
  StateDict bad("bad.safetensors");
  for (const std::string& k : good.order()) {
    Tensor t = good.get_float(k);
    if (k == "features.layer1.norm.running_var") t.data()[0] = -1.0f;  // caught inside the layers' load
    bad.add_float(k, t);
  }
  CHECK_THROWS_WITH(core->load(bad), Contains("running_var") && Contains("non-negative"));
  CHECK_THROWS_WITH(core->prepare({}), Contains("bad.safetensors") && Contains("failed part-way"));
  core->load(good);
  CHECK_NOTHROW(core->prepare({}));
}

TEST_CASE("re-initialising or reloading a core does not change its existing plans", "[robust]") {
  for (const char* json : {kSE, R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 8, "input_kern": 5, "hidden_kern": 3, "layers": 3, "attention_conv": true}})"}) {
    auto core = prepared(json, 1);
    auto plan = core->plan({1, 1, 12, 14});
    const Tensor x = test::random_tensor({1, 1, 12, 14}, 3);
    const Tensor before = plan->run(x);
    core->init(2);
    const Tensor after = plan->run(x);
    INFO(json);
    CHECK(test::bitwise_equal(before, after));
  }
}

TEST_CASE("single-thread steady-state runs allocate nothing (SE, attention, pooling, unfused)", "[robust]") {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer owns malloc: allocations cannot be counted (the normal build checks this).
  WARN("allocation counting is off under AddressSanitizer: skipped");
  return;
#endif
  REQUIRE(test::AllocCount::available());
  const char* tl = R"({"core": "TransferLearningCore", "config": {"input_channels": 1,
      "tl_model_name": "vgg11", "layers": 6, "pretrained": false}})";
  for (const char* json : {kSE, tl}) {
    for (bool fuse : {true, false}) {
      for (Backend b : {Backend::Reference, Backend::Gemm, Backend::Native}) {
        EngineOptions opt;
        opt.backend = b;
        opt.fuse = fuse;
        opt.threads = 1;
        auto core = prepared(json, 5, opt);
        auto plan = core->plan({1, 1, 32, 32});
        Workspace ws = plan->make_workspace();
        const Tensor x = test::random_tensor({1, 1, 32, 32}, 6);
        Tensor y(plan->output_shape());
        plan->run(x, y, ws);
        int64_t n = 0;
        {
          test::AllocCount count;
          plan->run(x, y, ws);
          n = count.count();
        }
        INFO(core->type() << (fuse ? " fused" : " unfused") << " on " << backend_name(b));
        CHECK(n == 0);
      }
    }
  }
}

TEST_CASE("SoftThreshold reads its `zero` buffer: logaddexp(x, zero)", "[robust]") {
  const std::string soft = R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 3,
      "input_kern": 3, "hidden_kern": 3, "layers": 1, "batch_norm": false, "nonlinearity_type": "SoftThreshold"}})";
  const std::string linear = R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 3,
      "input_kern": 3, "hidden_kern": 3, "layers": 1, "batch_norm": false, "linear": true}})";
  auto core = make_core(soft, "soft.json");
  bool declared = false;
  const WeightSpec spec = core->weight_spec();
  for (const auto& e : spec.entries())
    if (e.key == "features.layer0.nonlin.zero" && e.shape.empty()) declared = true;
  CHECK(declared);
  auto lin = prepared(linear, 9);
  StateDict sd = lin->state_dict();
  Tensor z(Shape{});
  z.data()[0] = 0.75f;
  sd.add_float("features.layer0.nonlin.zero", z);
  core->load(sd);
  core->prepare({});
  const Tensor x = test::random_tensor({1, 1, 9, 11}, 10, 3.0f);
  const Tensor y = core->forward(x), c = lin->forward(x);
  double err = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double a = c.data()[i], b = 0.75;
    const double want = std::max(a, b) + std::log1p(std::exp(-std::fabs(a - b)));
    err = std::max(err, std::fabs(double(y.data()[i]) - want) / (1.0 + std::fabs(want)));
  }
  CHECK(err <= 2e-6);
  // And it is written back under its name.
  CHECK(core->state_dict().get_float("features.layer0.nonlin.zero").data()[0] == 0.75f);
}

TEST_CASE("RotationEquivariant2dCore with one rotation keeps the rotation-equivariant layers' keys", "[robust]") {
  auto core = make_core(R"({"core": "RotationEquivariant2dCore", "config": {"input_channels": 1,
      "hidden_channels": 4, "input_kern": 3, "hidden_kern": 3, "layers": 2, "num_rotations": 1,
      "batch_norm_scale": false}})", "rot1.json");
  bool bn = false, bias = false;
  const WeightSpec spec = core->weight_spec();
  for (const auto& e : spec.entries()) {
    if (e.key == "features.layer0.norm.batch_norm.running_mean") bn = true;
    if (e.key == "features.layer0.bias.bias" && e.shape == std::vector<int64_t>{1, 1, 4, 1, 1}) bias = true;
  }
  CHECK(bn);
  CHECK(bias);
}

TEST_CASE("an op refuses tensors of other shapes than planned, naming its layer", "[robust]") {
  MaxPool2d pool("features.TransferLearning.4", MaxPool2dParams::square(2, 2));
  auto op = pool.plan({1, 3, 8, 8}, {});
  Tensor x({1, 3, 8, 9}), y({1, 3, 4, 4});
  CHECK_THROWS_WITH(op->run(x, y, nullptr, nullptr),
                    Contains("features.TransferLearning.4") && Contains("planned for"));
}
