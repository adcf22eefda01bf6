// The public C++ API for whole models (include/npcore/model.h): ModelHandle on the fixture models against
// their PyTorch reference (one session, all sessions, with and without a shifter), forward allocation-free
// after the first call for a shape, and the errors of misuse (unknown data_key, pupil positions).
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "alloc_count.h"
#include "npcore/npcore.h"
#include "weights/safetensors.h"

using Catch::Matchers::Contains;

namespace {

const std::string kDir = std::string(NPCORE_FIXTURE_DIR) + "/models/";

// max|y - ref| <= 1e-4 * max(1, max|ref|): ../shared/ref's tolerance.
bool matches(const std::vector<float>& y, const npcore::Tensor& ref) {
  REQUIRE(y.size() == size_t(ref.numel()));
  double err = 0, ref_max = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    err = std::max(err, std::fabs(double(y[i]) - double(ref.data()[i])));
    ref_max = std::max(ref_max, std::fabs(double(ref.data()[i])));
  }
  INFO("max|y - ref| = " << err << ", max|ref| = " << ref_max);
  return err <= 1e-4 * std::max(1.0, ref_max);
}

npcore::Shape4 shape4(const npcore::Tensor& t) {
  return {t.shape()[0], t.shape()[1], t.shape()[2], t.shape()[3]};
}

}  // namespace

TEST_CASE("ModelHandle runs fixture models from caller memory, allocation-free after the first call",
          "[api][model_api]") {
  for (const char* name : {"model_stacked2d_gaussian_shifter", "model_stacked2d_gaussian_cortex"}) {
    for (const char* backend : {"reference", "native"}) {
      CAPTURE(name, backend);
      const std::string base = kDir + name;
      const npcore::SafetensorsFile io = npcore::read_safetensors(base + ".io.safetensors");
      const npcore::Tensor x = io.tensors.get_float("input");
      const bool shifter = io.tensors.contains("pupil_center");
      const npcore::Tensor pupil = shifter ? io.tensors.get_float("pupil_center") : npcore::Tensor();
      npcore::ModelOptions opt;
      opt.backend = backend;
      opt.threads = 2;
      npcore::ModelHandle model =
          npcore::ModelHandle::load(base + ".json", base + ".weights.safetensors", opt);
      CHECK(model.core_type() == "Stacked2dCore");
      CHECK(model.input_channels() == 1);
      CHECK(model.needs_pupil() == shifter);
      CHECK(model.pupil_channels() == (shifter ? 2 : 0));
      const std::vector<std::string> keys = model.data_keys();
      REQUIRE(keys == std::vector<std::string>{"session_a", "session_b"});
      CHECK(model.neurons("session_a") == 40);
      CHECK(model.neurons("session_b") == 25);
      const npcore::Shape4 in = shape4(x);
      const size_t pupil_floats = shifter ? size_t(pupil.numel()) : 0;

      // One session at a time, the second call planned already: no allocation.
      for (const std::string& key : keys) {
        const npcore::Tensor ref = io.tensors.get_float("output/" + key);
        std::vector<float> y(size_t(ref.numel()), -1.0f);
        model.forward(x.data(), in, pupil.data(), pupil_floats, key, y.data(), y.size());
        CHECK(matches(y, ref));
        std::fill(y.begin(), y.end(), -1.0f);
        {
          npcore::test::AllocCount allocs;
          model.forward(x.data(), in, pupil.data(), pupil_floats, key, y.data(), y.size());
          if (npcore::test::AllocCount::available()) CHECK(allocs.count() == 0);
        }
        CHECK(matches(y, ref));
        CHECK(matches(model.forward(x.data(), in, pupil.data(), pupil_floats, key), ref));
      }

      // Every session from one run of the core.
      std::vector<std::vector<float>> ys;
      for (const std::string& key : keys) ys.emplace_back(size_t(in[0] * model.neurons(key)), -1.0f);
      float* outs[2] = {ys[0].data(), ys[1].data()};
      const size_t sizes[2] = {ys[0].size(), ys[1].size()};
      model.forward_all(x.data(), in, pupil.data(), pupil_floats, outs, sizes, 2);
      {
        npcore::test::AllocCount allocs;
        model.forward_all(x.data(), in, pupil.data(), pupil_floats, outs, sizes, 2);
        if (npcore::test::AllocCount::available()) CHECK(allocs.count() == 0);
      }
      for (size_t i = 0; i < keys.size(); ++i)
        CHECK(matches(ys[i], io.tensors.get_float("output/" + keys[i])));

      // prepare() plans a new shape ahead: its first forward allocates nothing either.
      const npcore::Shape4 one{1, in[1], in[2], in[3]};
      model.prepare(one);
      std::vector<float> y1(size_t(model.neurons("session_b")));
      {
        npcore::test::AllocCount allocs;
        model.forward(x.data(), one, pupil.data(), shifter ? 2 : 0, keys[1], y1.data(), y1.size());
        if (npcore::test::AllocCount::available()) CHECK(allocs.count() == 0);
      }
      const npcore::Tensor ref_b = io.tensors.get_float("output/session_b");
      CHECK(matches(y1, ref_b.batch(0, 1).clone()));
    }
  }
}

TEST_CASE("ModelHandle misuse and bad input give the public error classes with clear messages",
          "[api][model_api]") {
  const std::string base = kDir + "model_stacked2d_gaussian_shifter";
  npcore::ModelHandle model = npcore::ModelHandle::load(base + ".json", base + ".weights.safetensors");
  const npcore::Shape4 in{3, 1, 36, 64};
  std::vector<float> x(3 * 36 * 64, 0.1f), pupil(6, 0.0f), y(3 * 40);

  CHECK_THROWS_AS(model.neurons("session_c"), npcore::UsageError);
  CHECK_THROWS_WITH(model.forward(x.data(), in, pupil.data(), 6, "session_c", y.data(), y.size()),
                    Contains("no data_key 'session_c'") && Contains("session_a, session_b"));
  CHECK_THROWS_AS(model.forward(x.data(), in, nullptr, 0, "session_a", y.data(), y.size()),
                  npcore::ShapeError);
  CHECK_THROWS_WITH(model.forward(x.data(), in, nullptr, 0, "session_a", y.data(), y.size()),
                    Contains("pupil positions [3, 2]") && Contains("required"));
  CHECK_THROWS_WITH(model.forward(x.data(), in, pupil.data(), 4, "session_a", y.data(), y.size()),
                    Contains("hold 4 floats") && Contains("expects [3, 2]"));
  CHECK_THROWS_AS(model.forward(nullptr, in, pupil.data(), 6, "session_a", y.data(), y.size()),
                  npcore::UsageError);
  CHECK_THROWS_WITH(model.forward(x.data(), in, pupil.data(), 6, "session_a", y.data(), y.size() - 1),
                    Contains("holds 119 floats") && Contains("need 120"));
  CHECK_THROWS_AS(model.forward(x.data(), {3, 2, 36, 64}, pupil.data(), 6, "session_a", y.data(), y.size()),
                  npcore::ShapeError);
  float* outs[1] = {y.data()};
  const size_t sizes[1] = {y.size()};
  CHECK_THROWS_WITH(model.forward_all(x.data(), in, pupil.data(), 6, outs, sizes, 1),
                    Contains("got 1 outputs") && Contains("2 data_keys"));

  // A model without a shifter ignores pupil positions, as neuralpredictors does.
  const std::string cortex = kDir + "model_stacked2d_gaussian_cortex";
  npcore::ModelHandle plain = npcore::ModelHandle::load(cortex + ".json", cortex + ".weights.safetensors");
  CHECK(plain.forward(x.data(), in, pupil.data(), 1, "session_a").size() == 3 * 40);

  CHECK_THROWS_AS(npcore::ModelHandle::load(base + ".json", "/nonexistent.safetensors"), npcore::FormatError);
  CHECK_THROWS_WITH(
      npcore::ModelHandle::load(base + ".json", kDir + "model_stacked2d_gaussian_cortex.weights.safetensors"),
      Contains("shifter"));
  npcore::ModelOptions bad;
  bad.backend = "fastest";
  CHECK_THROWS_AS(npcore::ModelHandle::load(base + ".json", base + ".weights.safetensors", bad),
                  npcore::ConfigError);
  CHECK_THROWS_AS(npcore::ModelHandle::load_from_string("{\"model\": \"FiringRateEncoder\"}",
                                                        base + ".weights.safetensors"),
                  npcore::ConfigError);
  npcore::ModelHandle moved = std::move(model);
  CHECK_THROWS_WITH(model.data_keys(), Contains("moved from"));
  CHECK(moved.neurons("session_b") == 25);
}
