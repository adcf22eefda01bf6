// The public C++ API (include/npcore/core.h): CoreHandle against a fixture's PyTorch reference, forward
// allocation-free after the first call for a shape, per-core threads that leave the program's OpenMP
// setting alone, and the error classes of misuse.
#include <omp.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <string>

#include "alloc_count.h"
#include "engine/parallel.h"
#include "npcore/npcore.h"
#include "weights/safetensors.h"

using Catch::Matchers::Contains;

namespace {

const std::string kCase = std::string(NPCORE_FIXTURE_DIR) + "/stacked2d_strides";

double max_abs_diff(const float* a, const float* b, size_t n, double* ref_max) {
  double err = 0;
  *ref_max = 0;
  for (size_t i = 0; i < n; ++i) {
    err = std::max(err, std::fabs(double(a[i]) - double(b[i])));
    *ref_max = std::max(*ref_max, std::fabs(double(b[i])));
  }
  return err;
}

}  // namespace

TEST_CASE("CoreHandle runs a fixture core from caller memory, allocation-free after the first call",
          "[api]") {
  const npcore::SafetensorsFile io = npcore::read_safetensors(kCase + ".io.safetensors");
  const npcore::Tensor x = io.tensors.get_float("input");
  const npcore::Tensor ref = io.tensors.get_float("output");
  for (const char* backend : {"reference", "gemm", "native"}) {
    CAPTURE(backend);
    npcore::CoreOptions opt;
    opt.backend = backend;
    opt.threads = 2;
    npcore::CoreHandle core = npcore::CoreHandle::load(kCase + ".json", kCase + ".weights.safetensors", opt);
    CHECK(core.type() == "Stacked2dCore");
    CHECK(core.input_channels() == 1);
    const npcore::Shape4 in{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]};
    const npcore::Shape4 out = core.output_shape(in);
    CHECK(out == npcore::Shape4{ref.shape()[0], ref.shape()[1], ref.shape()[2], ref.shape()[3]});
    std::vector<float> y(size_t(ref.numel()), -1.0f);
    core.forward(x.data(), in, y.data(), y.size());
    double ref_max = 0;
    const double err = max_abs_diff(y.data(), ref.data(), y.size(), &ref_max);
    CHECK(err <= 1e-4 * std::max(1.0, ref_max));
    std::fill(y.begin(), y.end(), -1.0f);
    {
      npcore::test::AllocCount allocs;
      core.forward(x.data(), in, y.data(), y.size());
      if (npcore::test::AllocCount::available()) CHECK(allocs.count() == 0);
    }
    CHECK(max_abs_diff(y.data(), ref.data(), y.size(), &ref_max) <= 1e-4 * std::max(1.0, ref_max));
  }
}

TEST_CASE("CoreHandle threads do not change the program's OpenMP setting", "[api]") {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  for (const char* backend : {"gemm", "onednn"}) {
    npcore::CoreOptions opt;
    opt.backend = backend;
    opt.threads = 1;
    npcore::CoreHandle core = npcore::CoreHandle::load(kCase + ".json", kCase + ".weights.safetensors", opt);
    std::vector<float> x(2 * 64 * 96, 0.25f);
    const std::vector<float> y = core.forward(x.data(), {2, 1, 64, 96});
    CHECK(y.size() == 2 * 16 * 8 * 12);
    CHECK(omp_get_max_threads() == 3);
  }
  omp_set_num_threads(saved);
}

TEST_CASE("CoreHandle misuse and bad input give the public error classes with clear messages", "[api]") {
  npcore::CoreHandle core = npcore::CoreHandle::load(kCase + ".json", kCase + ".weights.safetensors");
  std::vector<float> x(64 * 96), y(16 * 8 * 12);
  CHECK_THROWS_AS(core.forward(nullptr, {1, 1, 64, 96}, y.data(), y.size()), npcore::UsageError);
  CHECK_THROWS_WITH(core.forward(x.data(), {1, 1, 64, 96}, y.data(), y.size() - 1),
                    Contains("output buffer holds 1535 floats") && Contains("needs 1536"));
  CHECK_THROWS_AS(core.forward(x.data(), {1, 2, 64, 96}, y.data(), y.size()), npcore::ShapeError);
  // The output holds intermediate block outputs during the call: it must not overlap the input.
  CHECK_THROWS_AS(core.forward(x.data(), {1, 1, 64, 96}, x.data() + 100, y.size()), npcore::UsageError);
  CHECK_THROWS_WITH(core.forward(x.data(), {1, 1, 64, 96}, x.data() + 100, y.size()),
                    Contains("output overlaps the input"));
  CHECK_THROWS_WITH(core.output_shape({1, 1, 0, 96}), Contains("must be >= 1"));
  npcore::CoreOptions bad;
  bad.backend = "fastest";
  CHECK_THROWS_AS(npcore::CoreHandle::load(kCase + ".json", kCase + ".weights.safetensors", bad),
                  npcore::ConfigError);
  bad = {};
  bad.threads = -1;
  CHECK_THROWS_AS(npcore::CoreHandle::load(kCase + ".json", kCase + ".weights.safetensors", bad),
                  npcore::UsageError);
  bad = {};
  bad.isa = "sse9";
  CHECK_THROWS_WITH(npcore::CoreHandle::load(kCase + ".json", kCase + ".weights.safetensors", bad),
                    Contains("CoreOptions.isa") && Contains("unknown ISA 'sse9'"));
  bad = {};
  bad.precision = "sloppy";
  CHECK_THROWS_WITH(npcore::CoreHandle::load(kCase + ".json", kCase + ".weights.safetensors", bad),
                    Contains("CoreOptions.precision"));
  {  // every ISA this CPU runs, and precision fast, give the same output as the default within tolerance
    npcore::CoreOptions o;
    o.isa = "generic";
    o.precision = "fast";
    npcore::CoreHandle g = npcore::CoreHandle::load(kCase + ".json", kCase + ".weights.safetensors", o);
    std::vector<float> yg(y.size()), yd(y.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7919) % 101) / 101.0f - 0.5f;
    g.forward(x.data(), {1, 1, 64, 96}, yg.data(), yg.size());
    core.forward(x.data(), {1, 1, 64, 96}, yd.data(), yd.size());
    float worst = 0, scale = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      worst = std::max(worst, std::abs(yg[i] - yd[i]));
      scale = std::max(scale, std::abs(yd[i]));
    }
    CHECK(scale > 0);
    CHECK(worst <= 1e-4f * scale);
  }
  CHECK_THROWS_WITH(npcore::CoreHandle::load(kCase + ".json", "/nonexistent.pth"),
                    Contains("/nonexistent.pth"));
  npcore::CoreHandle moved = std::move(core);
  CHECK_THROWS_WITH(core.type(), Contains("moved from"));
  CHECK(std::string(npcore::version()) == NPCORE_VERSION_STRING);
}

TEST_CASE("PlanThreads gives kernels the core's thread count without touching OpenMP's setting", "[api]") {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  CHECK(npcore::planned_threads() == 3);
  {
    npcore::PlanThreads scope(5);
    CHECK(npcore::planned_threads() == 5);
    CHECK(omp_get_max_threads() == 3);
    {
      npcore::PlanThreads none(0);  // 0: keep the enclosing count
      CHECK(npcore::planned_threads() == 5);
    }
    CHECK(npcore::planned_threads() == 5);
  }
  CHECK(npcore::planned_threads() == 3);
  omp_set_num_threads(saved);
}
