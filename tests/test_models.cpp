// The whole model (cores/model.h): bad descriptions, data_keys and pupil positions refused with what was
// expected; a readout whose in_shape does not fit the core named with both; the core run once for any
// number of sessions; shared features and the factorized aliases equal to their plain forms; a steady
// forward without allocation. The numerics against PyTorch are in test_reference_cases.cpp.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cores/model.h"
#include "engine/error.h"
#include "tests/alloc_count.h"
#include "tests/test_util.h"
#include "weights/state_dict.h"

using namespace npcore;
using json = nlohmann::json;

namespace {

// A small Stacked2dCore model with two sessions; `edit` changes the description.
json small_model(const std::string& readout = "FullGaussian2d") {
  json j;
  j["model"] = "FiringRateEncoder";
  j["core"] = {{"core", "Stacked2dCore"},
               {"config",
                {{"input_channels", 1},
                 {"input_kern", 5},
                 {"hidden_kern", 3},
                 {"hidden_channels", 4},
                 {"layers", 2}}}};
  json cfg = {{"bias", true}};
  if (readout == "PointPooled2d")
    cfg = {{"bias", true}, {"pool_steps", 1}, {"pool_kern", 2}, {"init_range", 0.5}};
  j["readout"] = {{"type", readout}, {"config", cfg}, {"n_neurons", {{"session_a", 7}, {"session_b", 5}}}};
  j["elu_offset"] = 0.0;
  j["nonlinearity_type"] = "elu";
  j["input_shape"] = {2, 1, 12, 16};
  j["data_keys"] = {"session_a", "session_b"};
  return j;
}

std::unique_ptr<Model> build(const json& j) {
  return make_model(j.dump(), "test.json");
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::unique_ptr<Model> prepared(const json& j, uint64_t seed = 3, Backend b = Backend::Native) {
  auto m = build(j);
  m->init(seed);
  EngineOptions o;
  o.backend = b;
  m->prepare(o);
  return m;
}

}  // namespace

TEST_CASE("model: unknown readout type or option lists the accepted ones", "[model]") {
  json j = small_model();
  j["readout"]["type"] = "Gaussian3d";
  const std::string e1 = error_of([&] { build(j); });
  CHECK_THAT(e1, Catch::Contains("unknown readout type 'Gaussian3d'"));
  CHECK_THAT(
      e1, Catch::Contains("FullFactorized2d, FullGaussian2d, FullSXF, PointPooled2d, SpatialXFeatureLinear"));

  j = small_model();
  j["readout"]["config"]["gauss_typo"] = "full";
  const std::string e2 = error_of([&] { build(j); });
  CHECK_THAT(e2, Catch::Contains("'gauss_typo'"));
  CHECK_THAT(e2, Catch::Contains("align_corners"));
  CHECK_THAT(e2, Catch::Contains("gauss_type"));

  j = small_model();
  j["readout"]["config"]["gauss_type"] = "diagonal";
  CHECK_THAT(error_of([&] { build(j); }), Catch::Contains("full, uncorrelated, isotropic"));

  j = small_model();
  j["shifter"] = {{"type", "StaticAffine2dShifter"}, {"config", json::object()}};
  CHECK_THAT(error_of([&] { build(j); }),
             Catch::Contains("unknown shifter type 'StaticAffine2dShifter'; accepted: MLPShifter"));

  j = small_model();
  j["nonlinearity_type"] = "softplus";
  CHECK_THAT(error_of([&] { build(j); }), Catch::Contains("accepted: elu, identity"));

  j = small_model();
  j["readout"]["config"]["grid_mean_predictor"] = {{"hidden_layers", 1}, {"hidden_width", 3}};
  CHECK_THAT(error_of([&] { build(j); }), Catch::Contains("'hidden_width'"));

  j = small_model("FullSXF");
  j["shifter"] = {{"type", "MLPShifter"}, {"config", json::object()}};
  CHECK_THAT(error_of([&] { build(j); }), Catch::Contains("takes no shift"));
}

TEST_CASE("model: a data_key the model does not have lists those it has", "[model]") {
  auto m = build(small_model());
  CHECK(m->data_keys() == std::vector<std::string>{"session_a", "session_b"});
  CHECK(m->session_index("session_b") == 1);
  CHECK_THAT(error_of([&] { m->session_index("session_c"); }),
             Catch::Contains("no data_key 'session_c'; the model has: session_a, session_b"));
}

TEST_CASE("model: a shifter needs pupil positions of the right shape", "[model]") {
  json j = small_model();
  j["shifter"] = {{"type", "MLPShifter"},
                  {"config", {{"input_channels", 2}, {"hidden_channels_shifter", 3}, {"shift_layers", 2}}}};
  auto m = prepared(j);
  REQUIRE(m->has_shifter());
  const Tensor x = test::random_tensor({2, 1, 12, 16}, 1);
  CHECK_THAT(error_of([&] { m->forward(x, nullptr, {0}); }),
             Catch::Contains("the model has a shifter (MLPShifter): pupil positions [2, 2]"));
  const Tensor bad = test::random_tensor({2, 3}, 2);
  CHECK_THAT(error_of([&] { m->forward(x, &bad, {0}); }),
             Catch::Contains("pupil positions are [2, 3], the shifter expects [2, 2]"));
  const Tensor pupil = test::random_tensor({2, 2}, 3);
  const auto y = m->forward(x, &pupil, {0, 1});
  CHECK(y[0].shape() == Shape{2, 7});
  // Another pupil position moves the grid: the rates change.
  const Tensor pupil2 = test::random_tensor({2, 2}, 4, 3.0f);
  const auto y2 = m->forward(x, &pupil2, {0});
  CHECK(test::normalised_error(y[0], y2[0]) > 1e-4);
}

TEST_CASE("model: a readout whose in_shape does not match the core's output names both", "[model]") {
  json j = small_model("PointPooled2d");
  j["readout"]["config"]["in_shape"] = {4, 10, 16};
  const std::string e = error_of([&] { build(j); });
  CHECK_THAT(e, Catch::Contains("in_shape [4, 10, 16]"));
  CHECK_THAT(e, Catch::Contains("core's output [8, 12, 16]"));

  // Planned for another image size than the one the readouts were made for.
  auto m = prepared(small_model("PointPooled2d"));
  const std::string e2 = error_of([&] { m->plan({2, 1, 20, 16}); });
  CHECK_THAT(e2, Catch::Contains("readout.session_a"));
  CHECK_THAT(e2, Catch::Contains("in_shape [8, 12, 16]"));
  CHECK_THAT(e2, Catch::Contains("core's output is [8, 20, 16]"));

  // FullGaussian2d reads any height and width (PyTorch only warns), but not other channels.
  auto g = prepared(small_model());
  CHECK_NOTHROW(g->plan({1, 1, 20, 24}));

  json nothing = small_model();
  nothing.erase("input_shape");
  CHECK_THAT(error_of([&] { build(nothing); }), Catch::Contains("give 'input_shape'"));
}

TEST_CASE("model: strict weights name readout and core keys together", "[model]") {
  auto m = build(small_model());
  StateDict sd("bad.safetensors");
  sd.add_float("readout.session_a._mu", Tensor(Shape{1, 7, 1, 2}));
  sd.add_float("readout.session_zz.bias", Tensor(Shape{5}));
  const std::string e = error_of([&] { m->load(sd); });
  CHECK_THAT(e, Catch::Contains("readout.session_b._mu [1, 5, 1, 2]"));  // missing
  CHECK_THAT(e, Catch::Contains("readout.session_zz.bias"));             // unexpected
  CHECK_THAT(e, Catch::Contains("features.layer0.conv.weight"));         // the core's, missing
}

TEST_CASE("model: the core runs once and every session reads the same feature map", "[model]") {
  for (const std::string type : {"FullGaussian2d", "PointPooled2d", "FullFactorized2d"}) {
    INFO(type);
    auto m = prepared(small_model(type), 11);
    const Tensor x = test::random_tensor({2, 1, 12, 16}, 5);
    Tensor feat;
    const auto both = m->forward(x, nullptr, {0, 1}, &feat);
    const auto b_only = m->forward(x, nullptr, {1});
    const auto twice = m->forward(x, nullptr, {1, 0, 1});
    CHECK(test::normalised_error(both[1], b_only[0]) == 0.0);
    CHECK(test::normalised_error(both[0], twice[1]) == 0.0);
    CHECK(test::normalised_error(both[1], twice[2]) == 0.0);
    // The feature map is the core's own output.
    CHECK(test::normalised_error(feat, m->core().forward(x)) == 0.0);
    // ELU(x) + 1 > 0: firing rates are positive.
    for (int64_t i = 0; i < both[0].numel(); ++i) CHECK(both[0].data()[i] > 0.f);
    // Every backend gives the same rates.
    auto r = prepared(small_model(type), 11, Backend::Reference);
    CHECK(test::normalised_error(r->forward(x, nullptr, {0})[0], both[0]) < 1e-5);
  }
}

TEST_CASE("model: shared features equal the expanded per-neuron features", "[model]") {
  // Session a's neurons 0..6 with match ids {3, 1, 3, 2, 1, 1, 2}: 3 shared vectors, index {2, 0, 2, 1, 0, 0,
  // 1}.
  const std::vector<int64_t> ids{3, 1, 3, 2, 1, 1, 2}, index{2, 0, 2, 1, 0, 0, 1};
  for (const std::string type : {"FullGaussian2d", "FullFactorized2d"}) {
    INFO(type);
    const bool gauss = type == "FullGaussian2d";
    json plain = small_model(type), shared = small_model(type);
    shared["readout"]["config"]["share_features"] = true;
    shared["readout"]["config"]["shared_match_ids"] = {{"session_a", ids}, {"session_b", {0, 0, 0, 0, 0}}};
    auto mp = build(plain), ms = build(shared);
    // Session a: K = 3 shared vectors with per-neuron scales, and the same features expanded per neuron.
    const int64_t c = 8, n = 7;  // the core stacks both layers: 2 x 4 channels
    Tensor feat_k(gauss ? Shape{1, c, 1, 3} : Shape{3, c}), scales(gauss ? Shape{1, 1, 1, n} : Shape{n, 1});
    Tensor feat_n(gauss ? Shape{1, c, 1, n} : Shape{n, c});
    for (int64_t i = 0; i < feat_k.numel(); ++i) feat_k.data()[i] = 0.1f * float(i % 7) - 0.3f;
    for (int64_t i = 0; i < n; ++i) scales.data()[i] = 0.5f + 0.25f * float(i);
    for (int64_t o = 0; o < n; ++o)
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t k = index[size_t(o)];
        if (gauss)
          feat_n.data()[ch * n + o] = scales.data()[o] * feat_k.data()[ch * 3 + k];
        else
          feat_n.data()[o * c + ch] = scales.data()[o] * feat_k.data()[k * c + ch];
      }
    // Every other tensor is the same in both state_dicts.
    auto source = build(plain);
    source->init(9);
    StateDict base("source");
    {
      // Random readout tensors of the right shapes, shared between the two state_dicts.
      auto add = [&](const std::string& k, Shape s, uint64_t seed) {
        base.add_float(k, test::random_tensor(s, seed, 0.5f));
      };
      for (const auto& [key, cnt] : {std::pair<std::string, int64_t>{"session_a", 7}, {"session_b", 5}}) {
        const std::string p = "readout." + key + ".";
        if (gauss) {
          add(p + "_mu", {1, cnt, 1, 2}, cnt);
          add(p + "sigma", {1, cnt, 2, 2}, cnt + 1);
        } else {
          add(p + "spatial", {cnt, 12, 16}, cnt + 2);
        }
        add(p + "bias", {cnt}, cnt + 3);
      }
    }
    // The core's weights: from a deterministic init, under core.
    StateDict core_sd = source->core().state_dict();
    auto make_sd = [&](bool share) {
      StateDict sd("test");
      for (const auto& k : core_sd.order()) sd.add_float("core." + k, core_sd.get_float(k));
      for (const auto& k : base.order()) sd.add_float(k, base.get_float(k));
      if (share) {
        sd.add_float("readout.session_a._features", feat_k);
        sd.add_float("readout.session_a.scales", scales);
        StoredTensor idx;
        idx.dtype = DType::I64;
        idx.shape = {n};
        static std::vector<int64_t> ibuf;
        ibuf = index;
        idx.data = reinterpret_cast<const uint8_t*>(ibuf.data());
        idx.nbytes = ibuf.size() * 8;
        sd.add("readout.session_a.feature_sharing_index", idx);
        static std::vector<int64_t> ibuf_b(5, 0);
        StoredTensor idx_b = idx;
        idx_b.shape = {5};
        idx_b.data = reinterpret_cast<const uint8_t*>(ibuf_b.data());
        idx_b.nbytes = 40;
        sd.add_float("readout.session_b._features",
                     test::random_tensor(gauss ? Shape{1, c, 1, 1} : Shape{1, c}, 21));
        sd.add_float("readout.session_b.scales",
                     test::random_tensor(gauss ? Shape{1, 1, 1, 5} : Shape{5, 1}, 22));
        sd.add("readout.session_b.feature_sharing_index", idx_b);
      } else {
        sd.add_float("readout.session_a._features", feat_n);
        sd.add_float("readout.session_b._features",
                     test::random_tensor(gauss ? Shape{1, c, 1, 5} : Shape{5, c}, 23));
      }
      return sd;
    };
    mp->load(make_sd(false));
    ms->load(make_sd(true));
    mp->prepare({});
    ms->prepare({});
    const Tensor x = test::random_tensor({2, 1, 12, 16}, 6);
    const auto yp = mp->forward(x, nullptr, {0}), ys = ms->forward(x, nullptr, {0});
    CHECK(test::normalised_error(yp[0], ys[0]) < 1e-6);

    // A sharing index that disagrees with the match ids is refused.
    if (gauss) {
      StateDict bad = make_sd(true);
      json other = shared;
      other["readout"]["config"]["shared_match_ids"]["session_a"] = {1, 1, 3, 2, 1, 1, 2};
      auto mo = build(other);
      CHECK_THAT(error_of([&] { mo->load(bad); }), Catch::Contains("feature_sharing_index[0] is 2"));
    }
  }
}

TEST_CASE("model: SpatialXFeatureLinear and FullSXF are FullFactorized2d", "[model]") {
  const Tensor x = test::random_tensor({2, 1, 12, 16}, 8);
  auto a = prepared(small_model("FullFactorized2d"), 5);
  const auto ya = a->forward(x, nullptr, {0, 1});
  for (const char* alias : {"SpatialXFeatureLinear", "FullSXF"}) {
    auto b = prepared(small_model(alias), 5);
    const auto yb = b->forward(x, nullptr, {0, 1});
    CHECK(test::normalised_error(ya[0], yb[0]) == 0.0);
    CHECK(test::normalised_error(ya[1], yb[1]) == 0.0);
  }
}

TEST_CASE("model: identity output and elu_offset", "[model]") {
  const Tensor x = test::random_tensor({2, 1, 12, 16}, 9);
  json id = small_model();
  id["nonlinearity_type"] = "identity";
  json off = small_model();
  off["elu_offset"] = -0.5;
  const Tensor raw = prepared(id, 4)->forward(x, nullptr, {0})[0];
  const Tensor rate = prepared(off, 4)->forward(x, nullptr, {0})[0];
  for (int64_t i = 0; i < raw.numel(); ++i) {
    const float v = raw.data()[i] - 0.5f;
    CHECK(rate.data()[i] == Approx((v > 0 ? v : std::expm1(v)) + 1.0f).epsilon(1e-6));
  }
}

TEST_CASE("model: a steady-state run allocates nothing", "[model]") {
  if (!test::AllocCount::available()) {
    WARN("allocation counting needs glibc without sanitizers; skipped");
    return;
  }
  for (const std::string type : {"FullGaussian2d", "PointPooled2d", "FullFactorized2d"}) {
    INFO(type);
    json j = small_model(type);
    if (type == "FullGaussian2d")
      j["shifter"] = {{"type", "MLPShifter"},
                      {"config", {{"shift_layers", 2}, {"hidden_channels_shifter", 3}}}};
    auto m = prepared(j, 2);
    auto plan = m->plan({2, 1, 12, 16});
    const Tensor x = test::random_tensor({2, 1, 12, 16}, 1), pupil = test::random_tensor({2, 2}, 2);
    std::vector<Tensor> outs{Tensor(Shape{2, 7}), Tensor(Shape{2, 5})};
    const std::vector<size_t> sessions{0, 1};
    ModelWorkspace ws = plan->make_workspace();
    const Tensor* p = m->has_shifter() ? &pupil : nullptr;
    plan->run(x, p, sessions, outs.data(), ws);
    test::AllocCount counter;
    plan->run(x, p, sessions, outs.data(), ws);
    CHECK(counter.count() == 0);
  }
}
