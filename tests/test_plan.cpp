// Plan and Workspace: one plan run from two threads with their own workspaces gives the single-run
// results; the output may be a channel view of a larger tensor; wrong shapes are refused; and a
// steady-state run performs no heap allocation (counted at malloc level, tests/alloc_count.h).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <exception>
#include <new>
#include <omp.h>
#include <thread>

#include "cores/factory.h"
#include "engine/error.h"
#include "engine/isa.h"
#include "tests/alloc_count.h"
#include "tests/test_util.h"

using namespace npcore;
using Catch::Matchers::Contains;

namespace {

struct CoreCase {
  const char* name;
  const char* json;
  Shape input;
};

// Cores exercising the plan's wiring: skip concatenation and a stack written into output channel
// views; depth-separable convs and SE blocks; attention.
const CoreCase kCores[] = {
    {"Stacked2dCore skip 2, stack [0, -1]",
     R"({"core": "Stacked2dCore", "config": {"input_channels": 2,
        "hidden_channels": 8, "input_kern": 5, "hidden_kern": 3, "layers": 4, "skip": 2, "stack": [0, -1]}})",
     {3, 2, 17, 23}},
    {"SE2dCore depth-separable, 2 SE blocks, stack -2",
     R"({"core": "SE2dCore", "config": {"input_channels": 1,
        "hidden_channels": 8, "input_kern": 3, "hidden_kern": 3, "layers": 3, "n_se_blocks": 2, "se_reduction": 4,
        "depth_separable": true, "stack": -2}})",
     {2, 1, 16, 20}},
    {"Stacked2dCore attention",
     R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 6, "input_kern": 3, "hidden_kern": 3, "layers": 2, "attention_conv": true}})",
     {2, 1, 9, 12}},
    // The seed cores' wiring (4 layers, stack -1: block 1's output lives in the output tensor until block 3
    // writes there) with 7x7 16->16 layers, which the native backend computes by the FFT.
    {"Stacked2dCore 4 layers, stack -1, 7x7 hidden",
     R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 16, "input_kern": 5, "hidden_kern": 7, "layers": 4}})",
     {2, 1, 18, 21}},
    {"Stacked2dCore skip 3, 5 layers, stack -1",
     R"({"core": "Stacked2dCore", "config": {"input_channels": 1,
        "hidden_channels": 4, "input_kern": 3, "hidden_kern": 3, "layers": 5, "skip": 3}})",
     {2, 1, 11, 9}},
};

// Page faults of this process so far (minor + major).
long page_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt + ru.ru_majflt;
}

std::unique_ptr<Core> prepared_core(const CoreCase& c, Backend b) {
  auto core = make_core(c.json, c.name);
  core->init(5);
  EngineOptions opt;
  opt.backend = b;
  core->prepare(opt);
  return core;
}

}  // namespace

TEST_CASE("one plan, two threads with their own workspaces, same results as single runs", "[plan]") {
  for (const CoreCase& c : kCores) {
    for (Backend b : all_backends()) {
      DYNAMIC_SECTION(c.name << " on " << backend_name(b)) {
        auto core = prepared_core(c, b);
        auto plan = core->plan(c.input);
        const Tensor x1 = test::random_tensor(c.input, 1), x2 = test::random_tensor(c.input, 2);
        const Tensor y1 = plan->run(x1), y2 = plan->run(x2);
        REQUIRE(y1.shape() == plan->output_shape());

        Tensor out[2] = {Tensor(plan->output_shape()), Tensor(plan->output_shape())};
        std::exception_ptr err[2];
        auto work = [&](int i) {
          try {
            Workspace ws = plan->make_workspace();
            for (int r = 0; r < 4; ++r) plan->run(i == 0 ? x1 : x2, out[i], ws);
          } catch (...) {
            err[i] = std::current_exception();
          }
        };
        std::thread t0(work, 0), t1(work, 1);
        t0.join();
        t1.join();
        for (auto& e : err)
          if (e) std::rethrow_exception(e);
        CHECK(test::normalised_error(out[0], y1) == 0.0);
        CHECK(test::normalised_error(out[1], y2) == 0.0);
      }
    }
  }
}

TEST_CASE("the output may be a channel view of a larger tensor", "[plan]") {
  for (const CoreCase& c : kCores) {
    for (Backend b : all_backends()) {
      DYNAMIC_SECTION(c.name << " on " << backend_name(b)) {
        auto core = prepared_core(c, b);
        auto plan = core->plan(c.input);
        const Tensor x = test::random_tensor(c.input, 3);
        const Tensor y = plan->run(x);
        Shape big_shape = plan->output_shape();
        big_shape[1] += 5;
        Tensor big(big_shape);
        big.fill(7.0f);
        Tensor view = big.channels(3, plan->output_shape()[1]);
        Workspace ws = plan->make_workspace();
        plan->run(x, view, ws);
        CHECK(test::normalised_error(view, y) == 0.0);
        // The channels around the view are untouched.
        for (int64_t ch : {int64_t(0), int64_t(2), big_shape[1] - 2, big_shape[1] - 1}) {
          Tensor side = big.channels(ch, 1).clone();
          bool untouched = true;
          for (int64_t i = 0; i < side.numel(); ++i) untouched = untouched && side.data()[i] == 7.0f;
          INFO("channel " << ch);
          CHECK(untouched);
        }
      }
    }
  }
}

TEST_CASE("a plan refuses other shapes and foreign workspaces", "[plan]") {
  const CoreCase& c = kCores[0];
  auto core = prepared_core(c, Backend::Reference);
  auto plan = core->plan(c.input);
  Workspace ws = plan->make_workspace();
  Tensor out(plan->output_shape());
  Shape other = c.input;
  other[2] += 1;
  CHECK_THROWS_AS(plan->run(Tensor(other), out, ws), ShapeError);
  CHECK_THROWS_WITH(plan->run(Tensor(other), out, ws), Contains("core input") && Contains(other.str()) &&
                                                           Contains("does not match the planned shape"));
  Shape bad_out = plan->output_shape();
  bad_out[1] -= 1;
  Tensor small_out(bad_out);
  CHECK_THROWS_WITH(plan->run(Tensor(c.input), small_out, ws),
                    Contains("core output") && Contains("planned shape"));
  Workspace empty;
  CHECK_THROWS_AS(plan->run(Tensor(c.input), out, empty), UsageError);
  // Planning an input the core cannot take names the problem.
  CHECK_THROWS_WITH(core->plan({1, 3, 17, 23}), Contains("3 channels"));
  // A core must be prepared before it is planned.
  auto fresh = make_core(c.json, "fresh");
  CHECK_THROWS_AS(fresh->plan(c.input), UsageError);
}

TEST_CASE("a steady-state run allocates nothing", "[plan]") {
  // As in test_conv_kernels.cpp: the counter interposes glibc's allocator, which a sanitizer build
  // replaces; there the test says so and counts nothing.
  if (!test::AllocCount::available()) {
    WARN("allocation counting needs glibc without sanitizers; skipped");
    return;
  }
  for (const CoreCase& c : kCores) {
    for (Backend b : all_backends()) {
      DYNAMIC_SECTION(c.name << " on " << backend_name(b)) {
        auto core = prepared_core(c, b);
        auto plan = core->plan(c.input);
        const Tensor x = test::random_tensor(c.input, 4);
        Tensor out(plan->output_shape());
        Workspace ws = plan->make_workspace();
        plan->run(x, out, ws);  // the first run may set up thread pools and library state

        int64_t probe_count = 0, n = 0, n3 = 0;
        {  // the counter itself sees an allocation
          test::AllocCount counter;
          auto probe = std::make_unique<std::vector<float>>(3);
          probe_count = counter.count();
        }
        REQUIRE(probe_count >= 2);
        {
          test::AllocCount counter;
          plan->run(x, out, ws);
          n = counter.count();
        }
        {
          test::AllocCount counter;
          plan->run(x, out, ws);
          n3 = counter.count();
        }
        INFO(n << " heap allocations during the second run, " << n3 << " during the third");
        // Nor does it touch fresh memory (no page the kernel must zero): every buffer was touched before.
        // Where the kernel takes pages back on its own (DAMON pageout, NUMA balancing:
        // test::kernel_reclaims_pages), a run may fault a reclaimed page back in; a run that touched fresh
        // memory would fault every time, so the fewest faults over a few runs must be 0.
        long faults = -1;
        for (int r = 0; r < 5 && faults != 0; ++r) {
          const long f0 = page_faults();
          plan->run(x, out, ws);
          const long f = page_faults() - f0;
          faults = faults < 0 ? f : std::min(faults, f);
        }
        INFO("fewest page faults in a run: " << faults);
        if (b != Backend::OneDnn) CHECK(faults == 0);
        if (b == Backend::OneDnn) {
          // oneDNN allocates inside its execute path (its per-call argument map, and the packing buffers
          // of its gemm-based convolution), which the engine cannot route into the workspace. What the
          // engine controls is that this does not grow from run to run.
          WARN(c.name << " on onednn: " << n << " allocations per run inside libdnnl");
          CHECK(n3 == n);
        } else {
          CHECK(n == 0);
          CHECK(n3 == 0);
        }
      }
    }
  }
}

TEST_CASE("block outputs share buffers, and the output tensor holds one until a stack block writes it",
          "[plan]") {
  // activation_floats() is the buffers between blocks plus the skip concatenation: with stack -1 a chain of
  // blocks alternates between the output tensor and one buffer, whatever its length.
  const Shape in{2, 1, 12, 14};
  const size_t image = size_t(8 * 12 * 14), block = 2 * image;
  const auto core_of = [](int layers, int skip, const char* stack) {
    const std::string j = std::string(R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 8,
        "input_kern": 3, "hidden_kern": 3, "layers": )") +
                          std::to_string(layers) + R"(, "skip": )" + std::to_string(skip) + R"(, "stack": )" + stack +
                          "}}";
    auto core = make_core(j, "layout");
    core->init(1);
    core->prepare(EngineOptions());
    return core;
  };
  struct Case {
    int layers, skip;
    const char* stack;
    size_t floats;
  };
  const Case cases[] = {
      {1, 0, "-1", 0},                                                // the block writes the output
      {2, 0, "-1", round_floats(block)},                              // block 0's output is read by the stack block
      {4, 0, "-1", round_floats(block)},                              // blocks 0, 2 in a buffer, 1 in the output
      {7, 0, "-1", round_floats(block)},                              // any chain: one buffer
      {4, 0, "[0, -1]", 2 * round_floats(block)},                     // the output is taken from block 0 on
      {4, 2, "-1", 2 * round_floats(block) + round_floats(2 * block)},  // spans of 3 blocks; block 0 in the output
      {4, 0, "[1, 2, 3]", round_floats(block)},                       // only block 0 between blocks
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.layers << " layers, skip " << c.skip << ", stack " << c.stack) {
      auto core = core_of(c.layers, c.skip, c.stack);
      auto plan = core->plan(in);
      CHECK(plan->activation_floats() == c.floats);
      CHECK(plan->workspace_floats() >= plan->activation_floats());
      // Same results as the reference backend, with the output a channel view of a larger tensor (a batch
      // stride longer than one image), so the blocks kept in it read and write a strided view.
      const Tensor x = test::random_tensor(in, 11);
      Shape big_shape = plan->output_shape();
      big_shape[1] += 3;
      Tensor big(big_shape);
      Tensor view = big.channels(1, plan->output_shape()[1]);
      Workspace ws = plan->make_workspace();
      plan->run(x, view, ws);
      auto ref = core_of(c.layers, c.skip, c.stack);
      EngineOptions ro;
      ro.backend = Backend::Reference;
      ref->prepare(ro);
      CHECK(test::normalised_error(view, ref->forward(x)) <= 1e-5);
    }
  }
}

TEST_CASE("a run refuses an output that overlaps the input, and accepts interleaved channel views", "[plan]") {
  const CoreCase& c = kCores[3];  // 4 layers, stack -1: the output holds block 1's output during the run
  auto core = prepared_core(c, Backend::Native);
  auto plan = core->plan(c.input);
  const int64_t oc = plan->output_shape()[1];
  Shape big_shape = plan->output_shape();
  big_shape[1] += 1;
  Tensor big(big_shape);
  Tensor in_view = big.channels(0, 1), out_view = big.channels(1, oc);
  in_view.copy_from(test::random_tensor(c.input, 12));
  const Tensor expected = plan->run(in_view.clone());
  Workspace ws = plan->make_workspace();
  plan->run(in_view, out_view, ws);  // interleaved, disjoint: fine
  CHECK(test::normalised_error(out_view, expected) == 0.0);
  // The input inside the output's images: refused, naming the rule.
  Tensor in_inside = big.channels(2, 1);
  CHECK_THROWS_AS(plan->run(in_inside, out_view, ws), UsageError);
  CHECK_THROWS_WITH(plan->run(in_inside, out_view, ws), Contains("output overlaps the input"));
}


namespace {

// A small SENSORIUM-like core (9x9 input conv, depth-separable 7x7 hidden layers): the batch split runs
// its fused and unfused depth-separable blocks on one image and one thread.
const char* kDsCore = R"({"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 16,
    "input_kern": 9, "hidden_kern": 7, "layers": 3, "depth_separable": true, "pad_input": false, "stack": -1}})";

std::unique_ptr<Core> ds_core(int threads, Isa isa, Backend b = Backend::Native) {
  auto core = make_core(kDsCore, "ds.json");
  core->init(11);
  EngineOptions opt;
  opt.backend = b;
  opt.threads = threads;
  opt.isa = isa;
  core->prepare(opt);
  return core;
}

}  // namespace

TEST_CASE("the batch split and the forward's team give the sequential path's bits", "[plan][split]") {
  static const std::vector<Isa> isas = [] {  // static: Catch runs the body once per section
    std::vector<Isa> v{Isa::Generic};
    for (Isa i : test::runnable_isas("batch split")) v.push_back(i);
    return v;
  }();
  for (Isa isa : isas) {
    auto one = ds_core(1, isa);
    for (int threads : {1, 2, 3}) {
      auto core = ds_core(threads, isa);
      // batch < threads, = threads, odd, not a multiple below 4T (a rest plan), not a multiple above.
      for (int64_t batch : {1, 2, 3, 5, 9, 13}) {
        DYNAMIC_SECTION(isa_name(isa) << ", " << threads << " threads, batch " << batch) {
          const Shape in{batch, 1, 20, 24};
          auto plan = core->plan(in);
          const bool split = threads > 1 && batch >= threads;
          CHECK(plan->splits_batch() == split);
          // Fewer images than threads: one team for the whole forward where every kernel allows it (the
          // native vector kernels; on the generic ISA the convolutions run gemm, which does not).
          CHECK(plan->runs_as_team() == (!split && threads > 1 && isa != Isa::Generic));
          if (split) {
            const int64_t left = batch % threads;
            CHECK(plan->split_images() == (left > 0 && batch < 4 * threads ? batch - left : batch));
          }
          const Tensor x = test::random_tensor(in, 20 + uint64_t(batch));
          const Tensor want = one->plan(in)->run(x);  // one thread: every kernel over the whole batch
          Tensor out(plan->output_shape());
          Workspace ws = plan->make_workspace();
          for (int r = 0; r < 2; ++r) {
            out.fill(-1.0f);
            plan->run(x, out, ws);
            CHECK(test::bitwise_equal(out, want));
          }
          // With a tap (per-block outputs of the whole batch) the plan runs block by block: same output, and
          // the batch-split run after it still the same.
          int taps = 0;
          TapFn tap = [&](const std::string&, const Tensor& t) {
            CHECK(t.shape()[0] == batch);
            ++taps;
          };
          out.fill(-1.0f);
          plan->run(x, out, ws, &tap);
          CHECK(taps == int(plan->num_blocks()));
          CHECK(test::bitwise_equal(out, want));
          out.fill(-1.0f);
          plan->run(x, out, ws);
          CHECK(test::bitwise_equal(out, want));
        }
      }
    }
  }
}

TEST_CASE("the batch split inside a user's OpenMP team runs on the calling thread", "[plan][split]") {
  auto core = ds_core(2, Isa::Auto);
  const Shape in{4, 1, 20, 24};
  auto plan = core->plan(in);
  REQUIRE(plan->splits_batch());
  const Tensor want = ds_core(1, Isa::Auto)->plan(in)->run(test::random_tensor(in, 3));
  const Tensor x = test::random_tensor(in, 3);
  Tensor outs[2] = {Tensor(plan->output_shape()), Tensor(plan->output_shape())};
  int in_team[2] = {0, 0};
  std::exception_ptr err[2];
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    try {
      Workspace ws = plan->make_workspace();
      in_team[t] = omp_in_parallel() ? 1 : 0;
      plan->run(x, outs[t], ws);
    } catch (...) {
      err[t] = std::current_exception();
    }
  }
  for (auto& e : err)
    if (e) std::rethrow_exception(e);
  for (int t = 0; t < 2; ++t) {
    INFO("thread " << t << (in_team[t] ? " (in a team)" : ""));
    CHECK(test::bitwise_equal(outs[t], want));
  }
}

TEST_CASE("the batch split on the other backends: same results, not on onednn", "[plan][split]") {
  for (Backend b : all_backends()) {
    DYNAMIC_SECTION(backend_name(b)) {
      auto core = ds_core(2, Isa::Auto, b);
      const Shape in{3, 1, 18, 22};
      auto plan = core->plan(in);
      CHECK(plan->splits_batch() == (b != Backend::OneDnn));
      const Tensor x = test::random_tensor(in, 5);
      const Tensor y = plan->run(x);
      const Tensor want = ds_core(1, Isa::Auto, b)->plan(in)->run(x);
      // Every backend but oneDNN sums each output in an order the thread count does not change.
      if (b == Backend::OneDnn)
        CHECK(test::normalised_error(y, want) < 1e-5);
      else
        CHECK(test::bitwise_equal(y, want));
    }
  }
}

TEST_CASE("under a memory cap a plan splits the batch only if a tapped run fits too", "[plan][split]") {
  const Shape in{4, 1, 20, 24};
  auto core = ds_core(2, Isa::Auto);
  auto free_plan = core->plan(in);
  REQUIRE(free_plan->splits_batch());
  const size_t split_bytes = (free_plan->workspace_floats() + size_t(free_plan->output_shape().numel())) * sizeof(float);
  auto capped = [&](size_t cap) {
    auto c = make_core(kDsCore, "ds.json");
    c->init(11);
    EngineOptions opt;
    opt.threads = 2;
    opt.max_memory = cap;
    c->prepare(opt);
    return c;
  };
  CHECK(capped(size_t(1) << 30)->plan(in)->splits_batch());
  // Room for the split alone, not for the block-by-block scratch a tapped run adds: no split (then the
  // block-by-block plan must fit by itself, or planning fails naming the cap).
  auto tight = capped(split_bytes);
  try {
    auto p = tight->plan(in);
    CHECK_FALSE(p->splits_batch());
    CHECK((p->workspace_floats() + size_t(p->output_shape().numel())) * sizeof(float) <= split_bytes);
  } catch (const ResourceError& e) {
    CHECK_THAT(e.what(), Contains("max_memory"));
  }
}
