// npcore demo: the walk-through of neuralpredictors' notebooks/2dcores_starter.ipynb done by the engine.
// Each core of the notebook is built from the notebook's configuration, initialised deterministically,
// run on a batch of 144x256 grayscale images; its output shape and latency are printed, and the demo
// ends by saying how to run trained weights. The cores are a table, so adding one is one entry.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <vector>

#include "bench/bench_stats.h"
#include "cores/factory.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tools/commands.h"
#include "tools/model_commands.h"
#include "tools/progress.h"
#include "weights/text_util.h"
#include "weights/weight_spec.h"

namespace npcore::tool {
namespace {

// One core of the notebook: its title, its description (the notebook's configuration, as in the
// seed_*.json reference cases) and the seed of its deterministic initialisation.
struct DemoCore {
  const char* title;
  const char* json;
  uint64_t seed;
};

const DemoCore kDemoCores[] = {
    {"Stacked2dCore", R"({"core": "Stacked2dCore", "config": {
        "input_channels": 1, "input_kern": 9, "hidden_kern": 7, "hidden_channels": 64, "layers": 4,
        "stack": -1, "pad_input": true}})",
     1},
    {"SE2dCore", R"({"core": "SE2dCore", "config": {
        "input_channels": 1, "input_kern": 9, "hidden_kern": 7, "hidden_channels": 64, "layers": 4,
        "stack": -1, "pad_input": true, "se_reduction": 16, "n_se_blocks": 2}})",
     3},
    {"RotationEquivariant2dCore", R"({"core": "RotationEquivariant2dCore", "config": {
        "input_channels": 1, "input_kern": 9, "hidden_kern": 7, "hidden_channels": 8, "layers": 4,
        "stack": -1, "pad_input": true, "num_rotations": 8}})",
     2},
    {"TransferLearningCore", R"({"core": "TransferLearningCore", "config": {
        "input_channels": 1, "tl_model_name": "vgg16", "layers": 12, "pretrained": false,
        "fine_tune": false}})",
     4},
};

constexpr int64_t kHeight = 144, kWidth = 256;  // the notebook's image size

// Learned parameters, as sum(p.numel() for p in core.parameters()) counts them (no running statistics).
int64_t parameter_count(const Core& core) {
  const WeightSpec spec = core.weight_spec();
  int64_t n = 0;
  for (const WeightSpec::Entry& e : spec.entries()) {
    if (e.kind != WeightSpec::Kind::Float || ends_with(e.key, "running_mean") ||
        ends_with(e.key, "running_var"))
      continue;
    int64_t k = 1;
    for (int64_t d : e.shape) k *= d;
    n += k;
  }
  return n;
}

// The config object of a description, compacted to one line for printing.
std::string one_line(const char* json) {
  std::string s;
  bool space = false;
  for (const char* p = json; *p; ++p) {
    if (*p == '\n' || *p == ' ') {
      space = true;
      continue;
    }
    if (space && !s.empty() && s.back() != '{' && s.back() != '[' && *p != '}' && *p != ']') s.push_back(' ');
    space = false;
    s.push_back(*p);
  }
  return s;
}

}  // namespace

void register_demo(CLI::App& app, int& status) {
  struct Args {
    EngineFlags engine;
    int64_t batch = 8;
    int runs = 3;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "The tutorial notebook (neuralpredictors' 2dcores_starter.ipynb) run by the engine: builds each core "
      "with the notebook's configuration and deterministic random weights, runs a batch of 144x256 grayscale "
      "images through it, prints its output shape and latency, then runs a whole model (the Stacked2dCore "
      "with a 1000-neuron FullGaussian2d readout, one image) and says how to run trained weights");
  args->engine.add_to(cmd, false);
  cmd->add_option("--batch", args->batch, "Images per batch (the notebook used 32)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1024)));
  cmd->add_option("--runs", args->runs,
                  "Timed runs per core, after one warm-up run (min and median are reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->callback([args, &status] {
    const EngineOptions opt = args->engine.options();
    const int64_t N = args->batch;
    const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
    std::printf("npcore demo: the cores of neuralpredictors' 2dcores_starter notebook, run by the engine\n");
    std::printf(
        "images: a batch of %lld grayscale %lldx%lld images, shape [%lld, 1, %lld, %lld], random pixel "
        "values in [0, 1) (the notebook used torch.ones(32, 1, 144, 256))\n",
        (long long)N, (long long)kHeight, (long long)kWidth, (long long)N, (long long)kHeight,
        (long long)kWidth);
    std::printf("engine: %s backend, %d thread%s, norms and activations %s\n\n", backend_name(opt.backend),
                threads, threads == 1 ? "" : "s",
                opt.fuse ? "fused into the convolutions" : "run separately");
    std::fflush(stdout);

    Tensor images({N, 1, kHeight, kWidth});
    Rng(2024).fill_uniform(images, 0.0f, 1.0f);

    Progress progress("npcore demo");
    int core_index = 0;
    const int core_count = int(std::size(kDemoCores));
    for (const DemoCore& d : kDemoCores) {
      ++core_index;
      progress.update(std::string(d.title) + ": preparing, core", core_index, core_count, true);
      auto core = make_core(d.json, std::string("demo ") + d.title);
      core->init(d.seed);
      core->prepare(opt);
      auto plan = core->plan(images.shape());
      Tensor out(plan->output_shape());
      Workspace ws = plan->make_workspace();

      std::printf("%s  %s\n", d.title, one_line(d.json).c_str());
      std::printf("  %zu blocks, %lld parameters (deterministic initialisation, seed %llu)\n",
                  core->blocks().size(), (long long)parameter_count(*core), (unsigned long long)d.seed);
      std::printf("  output shape: %s\n", plan->output_shape().str().c_str());
      std::fflush(stdout);

      progress.update(std::string(d.title) + ": warm-up", 0, 0, true);
      plan->run(images, out, ws);  // warm-up: first touch of buffers, library JIT and caches
      std::vector<double> ms;
      for (int r = 0; r < args->runs; ++r) {
        progress.update(std::string(d.title) + ": run", r + 1, args->runs);
        const auto t0 = std::chrono::steady_clock::now();
        plan->run(images, out, ws);
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      progress.done();
      const bench::LatencyStats st = bench::summarize(ms);
      const double lo = st.min_ms, med = st.median_ms;
      std::printf(
          "  latency: min %.1f ms, median %.1f ms per batch of %lld; %.2f ms, %.2f ms per image "
          "(%d run%s after a warm-up; %.1f GFLOP/s direct-equivalent)\n\n",
          lo, med, (long long)N, lo / double(N), med / double(N), args->runs, args->runs == 1 ? "" : "s",
          plan->conv_flops() / (lo * 1e6));
      std::fflush(stdout);
    }

    demo_model(opt, args->runs);

    std::printf(
        "These cores ran with random weights. To run a trained core, save its state_dict from PyTorch\n"
        "  (safetensors.torch.save_file(core.state_dict(), \"core.safetensors\")), describe it as\n"
        "  {\"core\": \"Stacked2dCore\", \"config\": {...the keyword arguments...}} in core.json, and run\n"
        "    npcore run core.json --weights core.safetensors --input images.npy --output features.npy\n"
        "  or compare it with a PyTorch dump (PREFIX.json, PREFIX.weights.safetensors, "
        "PREFIX.io.safetensors):\n"
        "    npcore check PREFIX --weights core.safetensors\n"
        "A whole model (core + readouts + shifter) is described as in ../shared/ref/models/*.json and run with\n"
        "    npcore run model.json --weights model.safetensors --input images.npy [--pupil-center p.npy] "
        "--data-key all --output rates.safetensors\n"
        "For TransferLearningCore with torchvision's ImageNet weights, convert the checkpoint first:\n"
        "    npcore convert vgg16-397923af.pth vgg16.safetensors --features-only\n");
    status = 0;
  });
}

}  // namespace npcore::tool
