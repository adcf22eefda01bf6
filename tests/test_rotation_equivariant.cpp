// RotationEquivariant2dCore: the reference cores on every backend, upstream's configuration quirks,
// refusals, deterministic init, fusion, and rotation equivariance of a whole core.
#include <catch2/catch.hpp>

#include <cmath>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "cores/rotation_equivariant2d_core.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "layers/hermite_conv2d.h"
#include "tests/rotation_test_util.h"
#include "tests/test_util.h"
#include "weights/weight_spec.h"

using namespace npcore;

namespace {

std::unique_ptr<Core> rot_core(const std::string& extra) {
  const std::string cfg = R"({"core": "RotationEquivariant2dCore", "config": {"input_channels": 1,
      "hidden_channels": 3, "input_kern": 5, "hidden_kern": 3, "layers": 3)" +
                          (extra.empty() ? std::string() : ", " + extra) + "}}";
  return make_core(cfg, "test.json");
}

Tensor forward(Core& core, const Tensor& x, bool fuse = true, Backend backend = Backend::Reference) {
  EngineOptions opt;
  opt.backend = backend;
  opt.fuse = fuse;
  core.prepare(opt);
  return core.forward(x);
}

const HermiteConv2D& hermite(const Core& core, size_t l) {
  return dynamic_cast<const HermiteConv2D&>(*core.blocks().at(l)->children().at(0));
}

// The state_dict's keys and shapes as "key [shape]" lines.
std::string spec_str(const Core& core) {
  std::string s;
  const WeightSpec spec = core.weight_spec();
  for (const auto& e : spec.entries()) s += e.key + " " + shape_str(e.shape) + "\n";
  return s;
}

// The core's init() weights with every norm / bias / scale tensor replaced by random values (variances
// positive), so that the affine terms of the norms take part in a test.
StateDict randomised_norms(Core& core, uint64_t seed, const StateDict& base) {
  StateDict sd = base;
  Rng rng(seed);
  for (const std::string& k : base.order()) {
    const bool norm = k.find(".norm.") != std::string::npos || k.find(".bias.") != std::string::npos ||
                      k.find(".scale.") != std::string::npos;
    if (!norm || k.find("num_batches_tracked") != std::string::npos) continue;
    Tensor t = base.get_float(k);
    if (k.find("running_var") != std::string::npos)
      rng.fill_uniform(t, 0.5f, 1.5f);
    else
      rng.fill_normal(
          t, k.find("weight") != std::string::npos || k.find("scale") != std::string::npos ? 1.0f : 0.0f,
          0.3f);
    sd = test::with_replaced(sd, k, t);
  }
  return sd;
}

}  // namespace

TEST_CASE("RotationEquivariant2dCore matches the reference dumps on every backend", "[roteq]") {
  const std::string ref = test::ref_dir();
  std::vector<std::string> cases;
  for (const std::string& c : test::list_cases(ref.empty() ? test::fixture_dir() : ref)) {
    const std::string base = c.substr(c.rfind('/') + 1);
    if (base.rfind("rot_", 0) == 0 || base == "seed_rotation_equivariant") cases.push_back(c);
  }
  if (ref.empty()) {
    WARN("../shared/ref absent: only the fixture copy rot_8rot_stack_all of the rot_* cases ran");
    REQUIRE(cases.size() == 1);
  } else {
    REQUIRE(cases.size() >= 9);
  }
  for (const std::string& c : cases)
    for (Backend b : all_backends()) {
      CaseOptions opt;
      opt.engine.backend = b;
      const CaseResult r = run_reference_case(c, opt);
      INFO(c << " on " << backend_name(b) << ": worst normalised error " << r.worst_normalised);
      for (const TensorCheck& t : r.checks) {
        INFO(t.name << ": normalised " << t.normalised << ", bound " << t.bound << " " << t.problem);
        CHECK(t.pass);  // max|y - ref| <= 1e-4 * max(1, max|ref|), output and every act/ block
      }
      CHECK(r.pass);
    }
}

TEST_CASE("RotationEquivariant2dCore keeps upstream's layer wiring", "[roteq]") {
  SECTION("state_dict layout with rotation-shared norms") {
    auto core = rot_core(R"("num_rotations": 4, "upsampling": 2)");
    const std::string s = spec_str(*core);
    CHECK_THAT(s, Catch::Contains("features.layer0.hermite_conv.coeffs [15, 1, 3]"));
    CHECK_THAT(s, Catch::Contains("features.layer0.hermite_conv.rotate_hermite.H [15, 10, 10]"));
    CHECK_THAT(s, Catch::Contains("features.layer1.hermite_conv.coeffs [6, 12, 3]"));  // hidden[0] * R inputs
    CHECK_THAT(s, Catch::Contains("features.layer2.hermite_conv.rotate_hermite.Rs.3 [6, 6]"));
    CHECK_THAT(s, Catch::Contains("features.layer1.norm.batch_norm.running_var [3]"));
    CHECK(core->output_shape({2, 1, 16, 16}) == Shape{2, 36, 16, 16});
  }
  SECTION("bias-only and scale-only layers are shared across rotations") {
    CHECK_THAT(spec_str(*rot_core(R"("num_rotations": 4, "batch_norm_scale": false)")),
               Catch::Contains("features.layer1.bias.bias [1, 1, 3, 1, 1]"));
    CHECK_THAT(spec_str(*rot_core(R"("num_rotations": 4, "bias": false)")),
               Catch::Contains("features.layer0.scale.scale [1, 1, 3, 1, 1]"));
  }
  SECTION("rot_eq_batch_norm=false: plain per-channel layers over C * R channels") {
    auto core = rot_core(R"("num_rotations": 4, "rot_eq_batch_norm": false)");
    CHECK_THAT(spec_str(*core), Catch::Contains("features.layer1.norm.running_mean [12]"));
    CHECK_THAT(spec_str(*rot_core(R"("num_rotations": 4, "rot_eq_batch_norm": false, "bias": false)")),
               Catch::Contains("features.layer0.scale.scale [1, 12, 1, 1]"));
  }
  SECTION("hidden_padding None is hidden_kern[0] // 2 for every hidden layer") {
    auto core = rot_core(R"("num_rotations": 4, "hidden_kern": [3, 5], "stack": -1)");
    CHECK(hermite(*core, 1).params().pad_h == 1);
    CHECK(hermite(*core, 2).params().pad_h == 1);  // not 5 // 2
    CHECK(core->output_shape({1, 1, 20, 20}) == Shape{1, 12, 18, 18});
  }
  SECTION("hidden_padding 0 means 0 (unlike Stacked2dCore)") {
    auto core = rot_core(R"("num_rotations": 4, "hidden_padding": 0, "stack": -1)");
    CHECK(core->output_shape({1, 1, 20, 20}) == Shape{1, 12, 16, 16});
  }
  SECTION("layer0 uses stride, not input_stride; pad_input") {
    auto core = rot_core(R"("num_rotations": 4, "stride": 2, "input_stride": 3, "stack": -1)");
    CHECK(hermite(*core, 0).params().stride == 2);
    CHECK(core->output_shape({1, 1, 32, 32}) == Shape{1, 12, 4, 4});
    auto nopad = rot_core(R"("num_rotations": 4, "pad_input": false, "stack": -1)");
    CHECK(nopad->output_shape({1, 1, 20, 20}) == Shape{1, 12, 16, 16});
  }
  SECTION("options upstream ignores for this core are accepted and change nothing") {
    const std::string plain = spec_str(*rot_core(R"("num_rotations": 4)"));
    for (const char* opt :
         {R"("depth_separable": true)", R"("attention_conv": true)", R"("hidden_dilation": 2)",
          R"("input_stride": 2)", R"("gamma_hidden": 0.1, "input_regularizer": "LaplaceL2")"}) {
      INFO(opt);
      auto core = rot_core(std::string(R"("num_rotations": 4, )") + opt);
      CHECK(spec_str(*core) == plain);
      CHECK(core->output_shape({1, 1, 16, 16}) == Shape{1, 36, 16, 16});
    }
  }
}

TEST_CASE("RotationEquivariant2dCore refuses what upstream refuses", "[roteq]") {
  CHECK_THROWS_AS(rot_core(R"("skip": 1)"), ConfigError);
  CHECK_THROWS_WITH(rot_core(R"("skip": 2)"), Catch::Contains("skip") && Catch::Contains("not implemented"));
  CHECK_THROWS_WITH(rot_core(R"("n_se_blocks": 1)"),
                    Catch::Contains("n_se_blocks"));  // SE2dCore's, not this one's
  CHECK_THROWS_WITH(rot_core(R"("depth_separable": true, "attention_conv": true)"),
                    Catch::Contains("attention_conv"));
  CHECK_THROWS_WITH(rot_core(R"("num_rotations": 0)"), Catch::Contains("num_rotations"));
  CHECK_THROWS_WITH(rot_core(R"("upsampling": 0)"), Catch::Contains("upsampling"));
  CHECK_THROWS_WITH(rot_core(R"("init_std": -1)"), Catch::Contains("init_std"));
  Stacked2dOptions o;
  o.layers = 1;
  o.hidden_channels = {2};
  o.skip = 1;
  o.bias = o.batch_norm = o.batch_norm_scale = {true};
  o.stack = {0};
  CHECK_THROWS_WITH(RotationEquivariant2dCore(o, RotationEquivariantOptions{}), Catch::Contains("skip"));
}

TEST_CASE("RotationEquivariant2dCore refuses a corrupted Hermite basis in a state_dict", "[roteq]") {
  auto core = rot_core(R"("num_rotations": 4)");
  core->init(5);
  const StateDict sd = core->state_dict();
  const std::string key = "features.layer1.hermite_conv.rotate_hermite.H";
  Tensor h = sd.get_float(key);
  for (int64_t i = 0; i < h.numel(); ++i) h.data()[i] *= 1.001f;  // a 0.1% rescale is not float rounding
  const StateDict bad = test::with_replaced(sd, key, h);
  CHECK_THROWS_AS(core->load(bad), WeightError);
  CHECK_THROWS_WITH(core->load(bad), Catch::Contains(key) && Catch::Contains("differs"));
}

TEST_CASE("RotationEquivariant2dCore init is deterministic and round-trips through its state_dict",
          "[roteq]") {
  auto a = rot_core(R"("num_rotations": 8, "init_std": 0.2)");
  auto b = rot_core(R"("num_rotations": 8, "init_std": 0.2)");
  a->init(42);
  b->init(42);
  const Tensor x = test::random_tensor({1, 1, 17, 17}, 3);
  const Tensor ya = forward(*a, x);
  CHECK(test::normalised_error(forward(*b, x), ya) == 0.0);
  // coeffs ~ normal(0, init_std): the sample standard deviation of layer1's 6*24*3 values.
  const Tensor& c = hermite(*a, 1).coeffs();
  double ss = 0;
  for (int64_t i = 0; i < c.numel(); ++i) ss += double(c.data()[i]) * c.data()[i];
  CHECK(std::sqrt(ss / double(c.numel())) == Approx(0.2).epsilon(0.15));
  // Saved weights (H and Rs included) load back into a fresh core and compute the same.
  auto fresh = rot_core(R"("num_rotations": 8)");
  fresh->load(a->state_dict());
  CHECK(test::normalised_error(forward(*fresh, x), ya) == 0.0);
  a->init(43);
  CHECK(test::normalised_error(forward(*a, x), ya) > 0.1);
}

TEST_CASE("RotationEquivariant2dCore fuses norms and activations into the Hermite convs", "[roteq]") {
  auto core =
      rot_core(R"("num_rotations": 4, "batch_norm_scale": [true, false, true], "bias": [true, true, false])");
  core->init(9);
  core->load(randomised_norms(*core, 10, core->state_dict()));
  const Tensor x = test::random_tensor({2, 1, 15, 15}, 4);
  const Tensor unfused = forward(*core, x, false);
  const Tensor fused = forward(*core, x, true);
  for (size_t l = 0; l < 3; ++l) {
    const auto names = core->blocks()[l]->stage_names();
    INFO(names.at(0));
    CHECK(names.size() == 1);  // hermite_conv absorbed everything after it
  }
  CHECK_THAT(core->blocks()[1]->stage_names().at(0), Catch::Contains("hermite_conv+norm+bias+nonlin"));
  // Folding the affine into the filters changes float rounding only.
  CHECK(test::normalised_error(fused, unfused) <= 1e-5);
}

TEST_CASE("RotationEquivariant2dCore is equivariant to 90-degree rotations", "[roteq]") {
  // Every layer maps (rot90 of the input, rotation channels cycled forward by R/4) to the same transform
  // of its output (see test_hermite.cpp), and rotation-shared norms and pointwise activations commute
  // with it; the output stacks the layers' [R, C] channel groups. Random coeffs (init) and random norm
  // statistics; odd kernels, "same" padding, square input. Bound: float32 rounding accumulated over
  // three layers, 1e-5 of max|y|, on every backend (the double-accumulating reference is exact here).
  for (int64_t R : {4, 8}) {
    INFO(R << " rotations");
    auto core = rot_core("\"num_rotations\": " + std::to_string(R) + R"(, "hidden_kern": [5, 5])");
    core->init(17);
    core->load(randomised_norms(*core, 18, core->state_dict()));
    const Tensor x = test::random_tensor({2, 1, 15, 15}, 19);
    for (Backend b : all_backends()) {
      INFO("backend " << backend_name(b));
      const Tensor y = forward(*core, x, true, b);
      const Tensor gy = forward(*core, test::rot90(x), true, b);
      const double err = test::normalised_error(gy, test::cycle_rotations(test::rot90(y), R, R / 4, 3));
      INFO("normalised error " << err);
      CHECK(err <= 1e-5);
    }
  }
  // Per-channel norms (rot_eq_batch_norm=false) with statistics that differ between rotations break it:
  // the property test detects a core that is not equivariant.
  auto plain = rot_core(R"("num_rotations": 4, "rot_eq_batch_norm": false)");
  plain->init(17);
  plain->load(randomised_norms(*plain, 18, plain->state_dict()));
  const Tensor x = test::random_tensor({1, 1, 15, 15}, 19);
  const Tensor y = forward(*plain, x);
  CHECK(test::normalised_error(forward(*plain, test::rot90(x)),
                               test::cycle_rotations(test::rot90(y), 4, 1, 3)) > 1e-2);
}

TEST_CASE("the tutorial's RotationEquivariant2dCore builds and runs from init alone", "[roteq]") {
  // seed_rotation_equivariant's configuration, without its weights file (what a demo does).
  auto core =
      make_core(R"({"core": "RotationEquivariant2dCore", "config": {"input_channels": 1, "input_kern": 9,
      "hidden_kern": 7, "hidden_channels": 8, "layers": 4, "stack": -1, "pad_input": true, "num_rotations": 8}})",
                "seed.json");
  core->init(1);
  const Tensor x = test::random_tensor({1, 1, 24, 32}, 2);
  const Tensor y = forward(*core, x);
  CHECK(y.shape() == Shape{1, 64, 24, 32});
  double mx = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    REQUIRE(std::isfinite(y.data()[i]));
    mx = std::max(mx, double(std::fabs(y.data()[i])));
  }
  CHECK(mx > 0.0);
  // Its own state_dict passes the strict check and the basis check.
  auto again =
      make_core(R"({"core": "RotationEquivariant2dCore", "config": {"input_channels": 1, "input_kern": 9,
      "hidden_kern": 7, "hidden_channels": 8, "layers": 4, "stack": -1, "pad_input": true, "num_rotations": 8}})",
                "seed.json");
  again->load(core->state_dict());
  CHECK(test::normalised_error(forward(*again, x), y) == 0.0);
}
