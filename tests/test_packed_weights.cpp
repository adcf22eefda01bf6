// Packed weights made once per layer and shared by the kernels of every input shape
// (engine/packed_weights.h): one packed copy per form however many shapes are planned, on one thread or
// several at once; kernels that share a pack compute bitwise what a kernel with a private pack computes;
// a prepared core planned for more shapes packs nothing more. Every algorithm that packs (native
// Winograd and direct under every ISA the CPU runs, gemm) is covered.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "cores/factory.h"
#include "engine/conv.h"
#include "engine/isa.h"
#include "engine/packed_weights.h"
#include "engine/rng.h"
#include "layers/conv2d.h"
#include "tests/test_util.h"

using namespace npcore;

namespace {

struct Variant {
  std::string name;
  Backend backend;
  Isa isa;
  bool winograd;
  const char* algorithm;  // native_algorithm's answer, or "" for other backends
};

// Every packing kernel this CPU runs.
std::vector<Variant> variants() {
  std::vector<Variant> v = {{"gemm", Backend::Gemm, Isa::Auto, true, ""},
                            {"native generic (gemm)", Backend::Native, Isa::Generic, true, "gemm"}};
  for (Isa isa : test::runnable_isas("packed weights")) {
    v.push_back({std::string("native winograd ") + isa_name(isa), Backend::Native, isa, true, "winograd"});
    v.push_back({std::string("native direct ") + isa_name(isa), Backend::Native, isa, false, "direct"});
  }
  return v;
}

const Shape kShapes[] = {{1, 16, 12, 20}, {2, 16, 9, 9}, {1, 16, 23, 17}, {3, 16, 5, 31}};

Tensor run_kernel(const ConvKernel& k, const Conv2dParams& p, const Tensor& x) {
  Tensor y(p.output_shape(x.shape(), "test"));
  AlignedBuffer scratch = aligned_floats(k.scratch_floats());
  auto state = k.make_state();
  k.run(x, y, scratch.get(), state.get());
  return y;
}

}  // namespace

TEST_CASE("kernels for four input shapes share one packed copy and compute bitwise as before", "[pack]") {
  const Conv2dParams p = Conv2dParams::square(16, 20, 3, 1, 1);
  const Tensor wt = test::random_tensor(p.weight_shape(), 11, 0.1f);
  const Tensor b = test::random_tensor({p.out_channels}, 12, 0.1f);
  for (const Variant& v : variants()) {
    INFO(v.name);
    WeightPacks packs;
    ConvSpec spec{p, wt.data(), b.data(), Activation{ActKind::ELU, 1.0f, 0.5f, 1.0f}};
    spec.isa = v.isa;
    spec.allow_winograd = v.winograd;
    const float* shared = nullptr;
    for (const Shape& s : kShapes) {
      INFO(s.str());
      if (*v.algorithm) REQUIRE(native_algorithm(spec, s) == v.algorithm);
      spec.packs = &packs;
      auto k = make_conv_kernel(v.backend, spec, s);
      spec.packs = nullptr;
      auto own = make_conv_kernel(v.backend, spec, s);  // a private pack, as every kernel had before
      REQUIRE(k->packed_weights() != nullptr);
      REQUIRE(own->packed_weights() != nullptr);
      CHECK(own->packed_weights() != k->packed_weights());
      if (!shared) shared = k->packed_weights();
      CHECK(k->packed_weights() == shared);
      CHECK(packs.forms() == 1);
      const Tensor x = test::random_tensor(s, 13);
      CHECK(test::bitwise_equal(run_kernel(*k, p, x), run_kernel(*own, p, x)));
    }
  }
}

TEST_CASE("a packed form outlives its WeightPacks, and forms are told apart by algorithm and blocking", "[pack]") {
  const Conv2dParams p = Conv2dParams::square(16, 16, 3, 1, 1);
  const Tensor wt = test::random_tensor(p.weight_shape(), 21, 0.1f);
  ConvSpec spec{p, wt.data(), nullptr, Activation{}};
  const Shape s{1, 16, 10, 10};
  const Tensor x = test::random_tensor(s, 22);
  auto packs = std::make_unique<WeightPacks>();
  spec.packs = packs.get();
  auto g = make_conv_kernel(Backend::Gemm, spec, s);
  const Tensor before = run_kernel(*g, p, x);
  std::vector<std::unique_ptr<ConvKernel>> natives;
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) continue;
    spec.isa = isa;
    spec.allow_winograd = true;
    natives.push_back(make_conv_kernel(Backend::Native, spec, s));
    spec.allow_winograd = false;
    natives.push_back(make_conv_kernel(Backend::Native, spec, s));
  }
  CHECK(packs->forms() == 1 + natives.size());  // gemm, then winograd and direct per ISA
  for (size_t i = 0; i < natives.size(); ++i) CHECK(natives[i]->packed_weights() != g->packed_weights());
  packs.reset();  // the layer re-prepared: kernels made before keep their packs
  CHECK(test::bitwise_equal(run_kernel(*g, p, x), before));
}

TEST_CASE("kernels made on 8 threads at once for different shapes pack each form once", "[pack][concurrency]") {
  const Conv2dParams p = Conv2dParams::square(16, 24, 3, 1, 1);
  const Tensor wt = test::random_tensor(p.weight_shape(), 31, 0.1f);
  for (const Variant& v : variants()) {
    INFO(v.name);
    WeightPacks packs;
    ConvSpec spec{p, wt.data(), nullptr, Activation{ActKind::ReLU}};
    spec.isa = v.isa;
    spec.allow_winograd = v.winograd;
    spec.packs = &packs;
    std::vector<const float*> seen(8, nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
      threads.emplace_back([&, t] {
        auto k = make_conv_kernel(v.backend, spec, kShapes[t % 4]);
        seen[size_t(t)] = k->packed_weights();
      });
    for (auto& t : threads) t.join();
    CHECK(packs.forms() == 1);
    for (const float* s : seen) CHECK((s != nullptr && s == seen[0]));
  }
}

TEST_CASE("a prepared core planned for four input shapes packs its weights for the first only", "[pack]") {
  // Winograd-eligible hidden layers (16 channels, 3x3) and a direct 5x5 input layer.
  const char* json = R"({"core": "Stacked2dCore", "config": {"input_channels": 2, "hidden_channels": 16,
      "input_kern": 5, "hidden_kern": 3, "layers": 3, "skip": 2, "stack": [-2, -1]}})";
  for (Backend b : {Backend::Native, Backend::Gemm}) {
    INFO(backend_name(b));
    auto core = make_core(json, "test.json");
    core->init(3);
    EngineOptions opt;
    opt.backend = b;
    opt.threads = 1;
    core->prepare(opt);
    const Shape shapes[] = {{1, 2, 20, 24}, {2, 2, 13, 31}, {1, 2, 40, 16}, {3, 2, 11, 11}};
    std::vector<std::unique_ptr<Plan>> plans;
    std::vector<Tensor> first;
    size_t before = weight_packs_made();
    for (int i = 0; i < 4; ++i) {
      plans.push_back(core->plan(shapes[i]));
      const size_t made = weight_packs_made() - before;
      before = weight_packs_made();
      if (i == 0)
        CHECK(made == 3);  // one form per conv layer
      else
        CHECK(made == 0);
    }
    // The shared packs give the same outputs as a core that planned only this shape.
    auto fresh = make_core(json, "test.json");
    fresh->init(3);
    fresh->prepare(opt);
    const Tensor x = test::random_tensor(shapes[3], 41);
    CHECK(test::bitwise_equal(plans[3]->run(x), fresh->plan(shapes[3])->run(x)));
  }
}

TEST_CASE("a Conv2d layer holds one packed copy per form for any number of shapes", "[pack]") {
  Conv2d conv("conv", Conv2dParams::square(16, 32, 3, 1, 1));
  Rng rng(5);
  conv.init(rng);
  EngineOptions opt;
  opt.threads = 1;
  CHECK(conv.packs() == nullptr);
  conv.prepare(opt);
  for (const Shape& s : kShapes) conv.make_op(s, opt);
  CHECK(conv.packs()->forms() == 1);  // Winograd (gemm on the generic ISA)
  opt.winograd = false;                // the direct form joins (the generic ISA runs gemm again)
  for (const Shape& s : kShapes) conv.make_op(s, opt);
  CHECK(conv.packs()->forms() == (resolve_isa(Isa::Auto) == Isa::Generic ? 1u : 2u));
  conv.prepare(opt);  // new weights may follow: a fresh set of packs
  CHECK(conv.packs()->forms() == 0);
}
