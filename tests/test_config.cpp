// Core descriptions (JSON): every kind of bad config is a ConfigError whose message names the key, the
// value and the rule; defaults and upstream quirks match neuralpredictors, checked through the
// state_dict keys the built core expects (Core::weight_spec()) and its output shapes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>

#include "cores/factory.h"
#include "cores/ref_case.h"
#include "engine/conv.h"
#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/weight_spec.h"

using namespace npcore;
using Catch::Matchers::Contains;

namespace {

// A Stacked2dCore-family description with the small base config plus `extra` keys (a JSON fragment).
std::string core_json(const std::string& core, const std::string& extra = "") {
  return R"({"core": ")" + core + R"(", "config": {"input_channels": 1, "hidden_channels": 8, "input_kern": 5,
            "hidden_kern": 3, "layers": 3)" +
         (extra.empty() ? "" : ", " + extra) + "}}";
}

// Expects make_core to throw ConfigError whose message holds every word.
void expect_config_error(const std::string& json, std::vector<std::string> words) {
  INFO("json: " << json);
  try {
    make_core(json, "test.json");
    FAIL("make_core accepted it");
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK_THAT(msg, Contains("test.json"));
    for (const auto& w : words) CHECK_THAT(msg, Contains(w));
  }
}

// key -> shape of every state_dict entry the core expects.
std::map<std::string, std::vector<int64_t>> keys_of(const Core& core) {
  std::map<std::string, std::vector<int64_t>> m;
  const WeightSpec spec = core.weight_spec();
  for (const auto& e : spec.entries()) m[e.key] = e.shape;
  return m;
}

}  // namespace

TEST_CASE("config: malformed descriptions", "[config]") {
  expect_config_error("{\"core\": \"Stacked2dCore\", ", {"not valid JSON"});
  expect_config_error("[1, 2]", {"JSON object"});
  expect_config_error(R"({"config": {}})", {"lacks 'core'", "Stacked2dCore", "SE2dCore"});
  expect_config_error(R"({"module": "AttentionConv", "config": {}})", {"single module"});
  expect_config_error(R"({"core": 3, "config": {}})", {"'core' must be a string"});
  expect_config_error(R"({"core": "FancyCore", "config": {}})",
                      {"unknown core 'FancyCore'", "supported", "Stacked2dCore", "SE2dCore"});
  expect_config_error(R"({"core": "Stacked2dCore"})", {"lacks 'config'"});
  expect_config_error(R"({"core": "Stacked2dCore", "config": [1]})", {"must be a JSON object"});
}

TEST_CASE("config: unknown keys are refused listing the accepted ones", "[config]") {
  expect_config_error(
      core_json("Stacked2dCore", R"("hiden_channels": 16)"),
      {"unknown key 'hiden_channels'", "accepted keys", "hidden_channels", "input_kern", "stack"});
  // SE2dCore's own keys are not Stacked2dCore's.
  expect_config_error(core_json("Stacked2dCore", R"("n_se_blocks": 1)"), {"unknown key 'n_se_blocks'"});
  CHECK_NOTHROW(make_core(core_json("SE2dCore", R"("n_se_blocks": 1, "se_reduction": 4)"), "t"));
  // Every unknown key is named at once.
  expect_config_error(core_json("Stacked2dCore", R"("a": 1, "b": 2)"), {"unknown keys", "'a'", "'b'"});
  // nonlinearity_config is checked against the nonlinearity's own arguments.
  expect_config_error(
      core_json("Stacked2dCore", R"("nonlinearity_type": "ELU", "nonlinearity_config": {"beta": 1})"),
      {"nonlinearity_config", "unknown key 'beta'", "alpha"});
}

TEST_CASE("config: wrong types and values name the key and the value", "[config]") {
  expect_config_error(R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": "64",
                       "input_kern": 5, "hidden_kern": 3}})",
                      {"'hidden_channels'", "must be an integer", "\"64\""});
  expect_config_error(core_json("Stacked2dCore", R"("bias": "yes")"), {"'bias'", "true or false", "\"yes\""});
  expect_config_error(core_json("Stacked2dCore", R"("batch_norm": [true, "no", true])"), {"'batch_norm'"});
  expect_config_error(core_json("Stacked2dCore", R"("hidden_kern": [3])"), {"'hidden_kern'", "at least 2"});
  expect_config_error(core_json("Stacked2dCore", R"("elu_shift": 0.5)"), {"'elu_shift'", "pair"});
  expect_config_error(core_json("Stacked2dCore", R"("layers": 0)"), {"'layers'", "at least 1"});
  expect_config_error(core_json("Stacked2dCore", R"("nonlinearity_type": "GELU")"),
                      {"'nonlinearity_type'", "not a supported nonlinearity", "Elu1"});
  expect_config_error(R"({"core": "Stacked2dCore", "config": {"hidden_channels": 8, "input_kern": 5,
                       "hidden_kern": 3}})",
                      {"'input_channels'", "is required"});
}

TEST_CASE("config: combinations upstream refuses", "[config]") {
  expect_config_error(core_json("Stacked2dCore", R"("depth_separable": true, "attention_conv": true)"),
                      {"attention_conv", "depth_separable", "cannot both be true"});
  expect_config_error(
      R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": [8, 8, 8],
                       "input_kern": 5, "hidden_kern": 3, "layers": 3, "skip": 2}})",
      {"'skip'", "list of hidden_channels", "not implemented"});
  expect_config_error(core_json("Stacked2dCore", R"("stack": 3)"), {"'stack'", "selects no layer"});
  expect_config_error(core_json("Stacked2dCore", R"("stack": [0, 3])"),
                      {"'stack'", "index 3", "out of range"});
  expect_config_error(core_json("Stacked2dCore", R"("stack": [-4])"), {"'stack'", "out of range"});
  expect_config_error(core_json("Stacked2dCore", R"("stack": "all")"), {"'stack'"});
}

TEST_CASE("config: training-only keys are accepted and ignored", "[config]") {
  auto core =
      make_core(core_json("Stacked2dCore", R"("gamma_hidden": 0.1, "gamma_input": 10.0, "momentum": 0.9,
      "laplace_padding": 0, "input_regularizer": "GaussianLaplaceL2", "use_avg_reg": false)"),
                "t");
  auto plain = make_core(core_json("Stacked2dCore"), "t");
  CHECK(keys_of(*core) == keys_of(*plain));
}

TEST_CASE("config: Stacked2dCore defaults and quirks, seen through its state_dict keys", "[config]") {
  auto core = make_core(core_json("Stacked2dCore"), "t");
  auto k = keys_of(*core);
  // layer0's conv never has a bias; hidden convs always do.
  CHECK(k.count("features.layer0.conv.weight"));
  CHECK(k.at("features.layer0.conv.weight") == std::vector<int64_t>{8, 1, 5, 5});
  CHECK_FALSE(k.count("features.layer0.conv.bias"));
  CHECK(k.at("features.layer1.conv.weight") == std::vector<int64_t>{8, 8, 3, 3});
  CHECK(k.count("features.layer1.conv.bias"));
  // bias=True, batch_norm_scale=True: an affine BatchNorm and no separate bias/scale layer.
  for (int l = 0; l < 3; ++l) {
    const std::string n = "features.layer" + std::to_string(l) + ".norm.";
    CHECK(k.count(n + "weight"));
    CHECK(k.count(n + "bias"));
    CHECK(k.count(n + "running_mean"));
    CHECK(k.count(n + "running_var"));
  }
  CHECK(
      std::none_of(k.begin(), k.end(), [](auto& e) { return e.first.find(".scale.") != std::string::npos; }));
  // stack None: every layer is concatenated; "same" padding keeps the size.
  CHECK(core->output_shape({2, 1, 20, 30}) == Shape{2, 24, 20, 30});

  // bias=False: hidden convs still have a bias; BatchNorm loses its affine terms, a Scale2DLayer follows.
  auto nb = make_core(core_json("Stacked2dCore", R"("bias": false, "stack": -1)"), "t");
  auto kb = keys_of(*nb);
  CHECK(kb.count("features.layer2.conv.bias"));
  CHECK_FALSE(kb.count("features.layer0.norm.weight"));
  CHECK(kb.at("features.layer0.scale.scale") == std::vector<int64_t>{1, 8, 1, 1});
  CHECK(nb->output_shape({1, 1, 20, 30}) == Shape{1, 8, 20, 30});

  // batch_norm_scale=False with bias: a Bias2DLayer; final_batchnorm_scale applies to the last layer only.
  auto ns = make_core(
      core_json("Stacked2dCore", R"("batch_norm_scale": false, "final_batchnorm_scale": true)"), "t");
  auto ks = keys_of(*ns);
  CHECK(ks.at("features.layer0.bias.bias") == std::vector<int64_t>{1, 8, 1, 1});
  CHECK(ks.count("features.layer2.norm.weight"));
  CHECK_FALSE(ks.count("features.layer2.bias.bias"));

  // batch_norm=False: no norm keys at all.
  auto nn = make_core(core_json("Stacked2dCore", R"("batch_norm": false)"), "t");
  auto kn = keys_of(*nn);
  CHECK(
      std::none_of(kn.begin(), kn.end(), [](auto& e) { return e.first.find("norm") != std::string::npos; }));
}

TEST_CASE("config: padding, strides, skip and conv kinds", "[config]") {
  // hidden_padding=0 means the default, as `hidden_padding or default` does upstream.
  auto p0 = make_core(core_json("Stacked2dCore", R"("hidden_padding": 0, "stack": -1)"), "t");
  CHECK(p0->output_shape({1, 1, 20, 30}) == Shape{1, 8, 20, 30});
  auto p2 = make_core(core_json("Stacked2dCore", R"("hidden_padding": [0, 1], "stack": -1)"), "t");
  CHECK(p2->output_shape({1, 1, 20, 30}) == Shape{1, 8, 16, 30});
  auto np = make_core(core_json("Stacked2dCore", R"("pad_input": false, "stack": -1)"), "t");
  CHECK(np->output_shape({1, 1, 20, 30}) == Shape{1, 8, 16, 26});
  auto st = make_core(core_json("Stacked2dCore", R"("input_stride": 2, "stride": 1, "stack": [0])"), "t");
  CHECK(st->output_shape({1, 1, 20, 30}) == Shape{1, 8, 10, 15});
  // An int stack s is range(layers)[s:]: 0 is every layer, -2 the last two.
  CHECK(make_core(core_json("Stacked2dCore", R"("stack": 0)"), "t")->output_shape({1, 1, 9, 9}) ==
        Shape{1, 24, 9, 9});
  CHECK(make_core(core_json("Stacked2dCore", R"("stack": -2)"), "t")->output_shape({1, 1, 9, 9}) ==
        Shape{1, 16, 9, 9});
  // skip=2: layer l >= 2 reads the concatenation of the last two outputs.
  auto sk = make_core(core_json("Stacked2dCore", R"("skip": 2)"), "t");
  CHECK(keys_of(*sk).at("features.layer1.conv.weight") == std::vector<int64_t>{8, 8, 3, 3});
  CHECK(keys_of(*sk).at("features.layer2.conv.weight") == std::vector<int64_t>{8, 16, 3, 3});
  // depth_separable / attention_conv change the hidden conv's keys.
  auto ds = keys_of(*make_core(core_json("Stacked2dCore", R"("depth_separable": true)"), "t"));
  CHECK(ds.at("features.layer1.ds_conv.spatial_conv.weight") == std::vector<int64_t>{8, 1, 3, 3});
  CHECK(ds.count("features.layer1.ds_conv.in_depth_conv.bias"));
  CHECK(ds.count("features.layer0.conv.weight"));
  auto at = keys_of(*make_core(core_json("Stacked2dCore", R"("attention_conv": true)"), "t"));
  CHECK(at.at("features.layer1.attention_conv.rel_h") == std::vector<int64_t>{4, 1, 1, 3, 1});
  CHECK(at.count("features.layer2.attention_conv.query_conv.weight"));
}

TEST_CASE("config: SE2dCore defaults (bias False, reduction 32, blocks on the last n layers)", "[config]") {
  auto se = make_core(R"({"core": "SE2dCore", "config": {"input_channels": 1, "hidden_channels": 64,
      "input_kern": 5, "hidden_kern": 3, "layers": 4, "n_se_blocks": 2}})",
                      "t");
  CHECK(std::string(se->type()) == "SE2dCore");
  auto k = keys_of(*se);
  // bias defaults to False: no affine BatchNorm terms, a scale layer instead.
  CHECK_FALSE(k.count("features.layer0.norm.weight"));
  CHECK_FALSE(k.count("features.layer0.norm.bias"));
  CHECK(k.count("features.layer0.norm.running_var"));
  CHECK(k.count("features.layer0.scale.scale"));
  // layers - l <= n_se_blocks: layers 2 and 3; reduction 32 gives 64 / 32 = 2 hidden units.
  CHECK_FALSE(k.count("features.layer1.seg_ex_block.se.1.weight"));
  CHECK(k.at("features.layer2.seg_ex_block.se.1.weight") == std::vector<int64_t>{2, 64});
  CHECK(k.at("features.layer3.seg_ex_block.se.3.weight") == std::vector<int64_t>{64, 2});
  // n_se_blocks defaults to 0.
  auto none = keys_of(*make_core(core_json("SE2dCore"), "t"));
  CHECK(std::none_of(none.begin(), none.end(),
                     [](auto& e) { return e.first.find("seg_ex") != std::string::npos; }));
  // With bias given True, BatchNorm is affine again.
  auto sb = keys_of(*make_core(core_json("SE2dCore", R"("bias": true)"), "t"));
  CHECK(sb.count("features.layer0.norm.weight"));
}

TEST_CASE("config: single-module descriptions and backend names", "[config]") {
  CHECK_THROWS_WITH(
      make_module(R"({"module": "MaxPool2d", "config": {}})", "m.json"),
      Contains("m.json") && Contains("unsupported module 'MaxPool2d'") && Contains("AttentionConv"));
  CHECK_THROWS_WITH(make_module(R"({"core": "Stacked2dCore", "config": {}})", "m.json"),
                    Contains("lacks 'module'"));
  CHECK_THROWS_WITH(make_module(R"({"module": "Conv2d", "config": {"in_channels": 2, "out_channels": 4,
                        "kernel_size": 3, "paddding": 1}})",
                                "m.json"),
                    Contains("unknown key 'paddding'") && Contains("padding"));
  CHECK_THROWS_AS(make_module(R"({"module": "AttentionConv", "config": {"in_channels": 2, "out_channels": 5,
                      "kernel_size": 3}})",
                              "m.json"),
                  ConfigError);
  CHECK_THROWS_WITH(parse_backend("cuda"), Contains("'cuda'") && Contains("reference") && Contains("onednn"));
  for (Backend b : all_backends()) CHECK(parse_backend(backend_name(b)) == b);
}

TEST_CASE("config: load_core names a missing or unreadable file", "[config]") {
  CHECK_THROWS_AS(load_core("/nonexistent/core.json"), FormatError);
  CHECK_THROWS_WITH(load_core("/nonexistent/core.json"), Contains("/nonexistent/core.json"));
}

TEST_CASE("config: JSON nested deeper than a description needs is refused, never overflows the stack",
          "[config]") {
  // 100000 levels: nlohmann copies and prints values recursively, one stack frame per level.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_config_error(core_json("Stacked2dCore", R"("hidden_channels_": )" + deep), {"nested deeper than"});
  expect_config_error(R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": )" +
                          deep + R"(, "input_kern": 5, "hidden_kern": 3, "layers": 3}})",
                      {"nested deeper than"});
  // Through run_reference_case's own parse (the case's other files need not exist: the JSON fails first).
  test::TempDir dir;
  test::write_file(dir.file("deep.json"), R"({"core": "Stacked2dCore", "input_shape": )" + deep + "}");
  CHECK_THROWS_AS(run_reference_case(dir.file("deep"), CaseOptions{}), ConfigError);
  CHECK_THROWS_WITH(run_reference_case(dir.file("deep"), CaseOptions{}),
                    Contains("deep.json") && Contains("nested deeper than 32 levels"));
  // 31 levels inside the config are still accepted as far as nesting goes (then refused for its type).
  const std::string ok = std::string(29, '[') + "4" + std::string(29, ']');
  expect_config_error(core_json("Stacked2dCore", R"("hidden_kern": )" + ok), {"'hidden_kern'", "[[[["});
}

TEST_CASE("config: values quoted in messages are cut short", "[config]") {
  std::string big = "[";
  for (int i = 0; i < 5000; ++i) big += std::string(i ? ", " : "") + "\"abcdefgh\"";
  big += "]";
  try {
    make_core(core_json("Stacked2dCore", R"("hidden_kern": )" + big), "test.json");
    FAIL("accepted");
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK_THAT(msg, Contains("'hidden_kern'") && Contains("[\"abcdefgh\",\"abcdefgh\"") && Contains("..."));
    CHECK(msg.size() < 300);
  }
}
