// Concurrency and determinism: one prepared core shared by 8 threads that run different inputs and shapes
// at once (bitwise equal to serial runs, every backend); cores loaded and prepared on several threads at
// once; the same input giving bitwise the same output run after run, and across thread counts where the
// docs (docs/RELIABILITY.md) promise it. Small cores keep these fast.
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>

#include "cores/factory.h"
#include "engine/error.h"
#include "tests/test_util.h"
#include "weights/state_dict.h"
#include "weights/weights_file.h"

using namespace npcore;

namespace {

const Backend kBackends[] = {Backend::Reference, Backend::Gemm, Backend::Native, Backend::OneDnn};

// Skip connections, a stack of two layers, 3x3 hidden kernels (Winograd-eligible on the native backend).
const char* kCore = R"({"core": "Stacked2dCore", "config": {"input_channels": 2, "hidden_channels": 8,
    "input_kern": 5, "hidden_kern": 3, "layers": 3, "skip": 2, "stack": [-2, -1]}})";
const char* kSE = R"({"core": "SE2dCore", "config": {"input_channels": 1, "hidden_channels": 16,
    "input_kern": 5, "hidden_kern": 3, "layers": 2, "n_se_blocks": 1, "se_reduction": 4}})";

std::unique_ptr<Core> prepared(const char* json, Backend b, int threads) {
  auto core = make_core(json, "test.json");
  core->init(7);
  EngineOptions opt;
  opt.backend = b;
  opt.threads = threads;
  core->prepare(opt);
  return core;
}

// Eight inputs of four shapes.
std::vector<Tensor> inputs(int64_t channels) {
  std::vector<Tensor> xs;
  const Shape shapes[] = {{1, channels, 16, 16}, {2, channels, 12, 20}, {1, channels, 23, 17}, {3, channels, 9, 9}};
  for (int i = 0; i < 8; ++i) xs.push_back(test::random_tensor(shapes[i % 4], 100 + uint64_t(i)));
  return xs;
}

}  // namespace

TEST_CASE("8 threads share one prepared core: forward on different inputs and shapes is bitwise serial",
          "[concurrency]") {
  for (const char* json : {kCore, kSE}) {
    for (Backend b : kBackends) {
      INFO(backend_name(b) << " " << json);
      auto core = prepared(json, b, 1);
      const auto xs = inputs(core->input_channels());
      std::vector<Tensor> serial;
      for (const Tensor& x : xs) serial.push_back(core->forward(x));

      std::vector<Tensor> got(xs.size());
      std::vector<std::string> errors(xs.size());
      std::vector<std::thread> pool;
      for (size_t t = 0; t < xs.size(); ++t)
        pool.emplace_back([&, t] {
          try {
            for (int rep = 0; rep < 3; ++rep) got[t] = core->forward(xs[t]);
          } catch (const std::exception& e) {
            errors[t] = e.what();
          }
        });
      for (auto& th : pool) th.join();
      for (size_t t = 0; t < xs.size(); ++t) {
        INFO("thread " << t);
        CHECK(errors[t].empty());
        CHECK(test::bitwise_equal(got[t], serial[t]));
      }
    }
  }
}

TEST_CASE("8 threads share one plan with a workspace each: bitwise equal to serial", "[concurrency]") {
  for (Backend b : kBackends) {
    INFO(backend_name(b));
    auto core = prepared(kCore, b, 2);
    auto plan = core->plan({2, 2, 15, 18});
    std::vector<Tensor> xs, serial, got(8);
    for (int i = 0; i < 8; ++i) {
      xs.push_back(test::random_tensor(plan->input_shape(), 200 + uint64_t(i)));
      serial.push_back(plan->run(xs.back()));
    }
    std::vector<std::thread> pool;
    std::vector<std::string> errors(8);
    for (size_t t = 0; t < 8; ++t)
      pool.emplace_back([&, t] {
        try {
          Workspace ws = plan->make_workspace();
          Tensor out(plan->output_shape());
          for (int rep = 0; rep < 3; ++rep) plan->run(xs[t], out, ws);
          got[t] = out;
        } catch (const std::exception& e) {
          errors[t] = e.what();
        }
      });
    for (auto& th : pool) th.join();
    for (size_t t = 0; t < 8; ++t) {
      INFO("thread " << t);
      CHECK(errors[t].empty());
      CHECK(test::bitwise_equal(got[t], serial[t]));
    }
  }
}

TEST_CASE("cores are loaded from files and prepared on several threads at once", "[concurrency]") {
  const std::string prefix = test::fixture_dir() + "/stacked2d_strides";
  const std::string json = read_text_file(prefix + ".json");
  const StateDict sd = load_weights_file(prefix + ".weights.safetensors");
  // Serial results per backend; the Native core is then shared by the threads below.
  std::vector<std::unique_ptr<Core>> serial;
  std::vector<Tensor> want;
  Tensor x;
  for (Backend b : kBackends) {
    serial.push_back(make_core(json, "stacked2d_strides.json"));
    serial.back()->load(sd);
    EngineOptions opt;
    opt.threads = 1;
    opt.backend = b;
    serial.back()->prepare(opt);
    if (want.empty()) x = test::random_tensor({1, serial.back()->input_channels(), 24, 24}, 5);
    want.push_back(serial.back()->forward(x));
  }

  std::vector<Tensor> got(8), shared(8);
  std::vector<std::string> errors(8);
  std::vector<std::thread> pool;
  for (size_t t = 0; t < 8; ++t)
    pool.emplace_back([&, t] {
      try {
        auto core = make_core(read_text_file(prefix + ".json"), "stacked2d_strides.json");
        core->load(load_weights_file(prefix + ".weights.safetensors"));
        EngineOptions o;
        o.threads = 1;
        o.backend = kBackends[t % 4];
        core->prepare(o);
        got[t] = core->forward(x);
        shared[t] = serial[2]->forward(x);  // the shared native core, while other threads load and prepare
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : pool) th.join();
  for (size_t t = 0; t < 8; ++t) {
    INFO("thread " << t);
    CHECK(errors[t].empty());
    CHECK(test::bitwise_equal(got[t], want[t % 4]));
    CHECK(test::bitwise_equal(shared[t], want[2]));
  }
}

TEST_CASE("determinism: the same input gives bitwise the same output run after run", "[determinism]") {
  for (const char* json : {kCore, kSE}) {
    for (Backend b : kBackends) {
      for (int threads : {1, 2}) {
        INFO(backend_name(b) << " threads " << threads << " " << json);
        auto core = prepared(json, b, threads);
        const Tensor x = test::random_tensor({2, core->input_channels(), 19, 21}, 9);
        auto plan = core->plan(x.shape());
        const Tensor first = plan->run(x);
        Workspace ws = plan->make_workspace();
        Tensor out(plan->output_shape());
        for (int rep = 0; rep < 4; ++rep) {
          plan->run(x, out, ws);
          CHECK(test::bitwise_equal(out, first));
        }
        // A fresh core prepared the same way gives the same bits too.
        CHECK(test::bitwise_equal(prepared(json, b, threads)->forward(x), first));
      }
    }
  }
}

TEST_CASE("determinism across thread counts 1 2 3: bitwise on reference, within rounding elsewhere",
          "[determinism]") {
  // docs/RELIABILITY.md: the reference backend gives each output element to one thread and sums it in a
  // fixed order, so its bits do not depend on the thread count. gemm (and native, which runs gemm without
  // AVX-512) and onednn block their sums by thread count: their bits may change with it, by rounding only.
  for (const char* json : {kCore, kSE}) {
    for (Backend b : kBackends) {
      INFO(backend_name(b) << " " << json);
      const Tensor x = test::random_tensor({2, json == kCore ? 2 : 1, 19, 21}, 9);
      const Tensor one = prepared(json, b, 1)->forward(x);
      for (int threads : {2, 3}) {
        INFO("threads " << threads);
        const Tensor many = prepared(json, b, threads)->forward(x);
        if (b == Backend::Reference)
          CHECK(test::bitwise_equal(many, one));
        else
          CHECK(test::normalised_error(many, one) < 1e-5);
      }
    }
  }
}
