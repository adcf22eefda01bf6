// The whole-model parts of npcore run, bench and demo (see tools/model_commands.h).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "bench/bench_stats.h"
#include "cores/factory.h"
#include "cores/model.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tools/commands.h"
#include "tools/conv_report.h"
#include "tools/io_files.h"
#include "tools/model_commands.h"
#include "weights/json_guard.h"
#include "weights/npy.h"
#include "weights/safetensors.h"
#include "weights/text_util.h"
#include "weights/weights_file.h"

namespace npcore::tool {
namespace {

using nlohmann::json;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

void run_model(const ModelRunArgs& a) {
  check_output_path(a.output);
  auto model = load_model(a.config);
  model->load(load_weights_file(a.weights));
  // Sessions: one data_key, or all (the default).
  std::vector<size_t> sessions;
  if (a.data_key.empty() || a.data_key == "all") {
    for (size_t s = 0; s < model->sessions().size(); ++s) sessions.push_back(s);
  } else {
    sessions.push_back(model->session_index(a.data_key));
  }
  if (sessions.size() > 1 && ends_with(a.output, ".npy"))
    throw UsageError(a.output + ": the model has " + std::to_string(sessions.size()) + " data_keys (" +
                     join(model->data_keys()) +
                     "); write .safetensors (a tensor per data_key) or pick one with --data-key");
  Tensor input = read_input_images(a.input);
  Tensor pupil;
  if (!a.pupil.empty()) {
    if (!model->has_shifter()) throw UsageError("--pupil-center given, but " + a.config + " has no shifter");
    pupil = read_tensor_file(a.pupil, "pupil_center");
    if (pupil.rank() == 1) pupil = pupil.reshape({1, pupil.dim(0)});
  } else if (model->has_shifter()) {
    throw UsageError(a.config + " has a shifter (MLPShifter): give --pupil-center with shape [" +
                     std::to_string(input.dim(0)) + ", " + std::to_string(model->pupil_channels()) + "]");
  }
  model->prepare(a.engine);
  std::unique_ptr<ModelPlan> plan;
  try {
    plan = model->plan(input.shape());
  } catch (const ShapeError& e) {
    throw ShapeError(a.input + ": " + e.what());
  }
  std::vector<Tensor> outs;
  for (size_t s : sessions) outs.emplace_back(Shape{input.dim(0), model->neurons(s)});
  ModelWorkspace ws = plan->make_workspace();
  const auto t0 = std::chrono::steady_clock::now();
  plan->run(input, pupil.empty() ? nullptr : &pupil, sessions, outs.data(), ws);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (ends_with(a.output, ".npy")) {
    write_npy(a.output, outs[0]);
  } else {
    std::vector<std::pair<std::string, Tensor>> named;
    for (size_t i = 0; i < sessions.size(); ++i)
      named.emplace_back(model->sessions()[sessions[i]].data_key, outs[i]);
    write_safetensors(a.output, named,
                      {{"model", "FiringRateEncoder"},
                       {"core", model->core().type()},
                       {"config", a.config},
                       {"weights", a.weights},
                       {"input", a.input},
                       {"backend", backend_name(a.engine.backend)}});
  }
  if (!a.quiet) {
    std::string what;
    for (size_t i = 0; i < sessions.size(); ++i)
      what += (i ? ", " : "") + model->sessions()[sessions[i]].data_key + " " + outs[i].shape().str();
    std::printf("%s: FiringRateEncoder (%s) %s -> %s (%s, %.1f ms)\n", a.output.c_str(), model->core().type(),
                input.shape().str().c_str(), what.c_str(), backend_name(a.engine.backend), ms);
  }
}

namespace {

// The description with its readouts replaced by `sessions` sessions of `neurons` neurons each.
std::string with_sessions(const std::string& text, const std::string& source, int64_t sessions,
                          int64_t neurons) {
  json j;
  std::string why;
  if (parse_json_limited(text.data(), text.data() + text.size(), kMaxConfigDepth, &j, &why) != JsonParse::Ok)
    throw ConfigError(source + ": not valid JSON: " + why);
  json nn = json::object(), keys = json::array();
  for (int64_t s = 0; s < sessions; ++s) {
    const std::string k = "session_" + std::to_string(s);
    nn[k] = neurons;
    keys.push_back(k);
  }
  j["readout"]["n_neurons"] = nn;
  j["data_keys"] = keys;
  j.erase("output_shapes");
  return j.dump();
}

struct Timing {
  bench::LatencyStats core, model, readouts;
};

// The core alone (run_core) and the whole model (run_core + run_readouts), interleaved run by run so
// that both see the same machine state, and the readouts alone.
Timing time_model(const ModelPlan& plan, const Tensor& input, const Tensor* pupil,
                  const std::vector<size_t>& sessions, std::vector<Tensor>& outs, int warmup, int runs) {
  ModelWorkspace ws = plan.make_workspace();
  for (int r = 0; r < warmup; ++r) plan.run(input, pupil, sessions, outs.data(), ws);
  std::vector<double> core_ms, model_ms, ro_ms;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    plan.run_core(input, ws);
    core_ms.push_back(bench::ms_since(t0));
    t0 = std::chrono::steady_clock::now();
    plan.run(input, pupil, sessions, outs.data(), ws);
    model_ms.push_back(bench::ms_since(t0));
    t0 = std::chrono::steady_clock::now();
    plan.run_readouts(pupil, sessions, outs.data(), ws);
    ro_ms.push_back(bench::ms_since(t0));
  }
  return {bench::summarize(core_ms), bench::summarize(model_ms), bench::summarize(ro_ms)};
}

}  // namespace

void bench_model(const ModelBenchArgs& a) {
  std::string text = read_text_file(a.config);
  if (a.sessions > 0 || a.neurons > 0) {
    auto probe = make_model(text, a.config);
    const int64_t n = a.neurons > 0 ? a.neurons : probe->neurons(0);
    const int64_t s = a.sessions > 0 ? a.sessions : int64_t(probe->sessions().size());
    text = with_sessions(text, a.config, s, n);
  }
  auto model = make_model(text, a.config);  // validates the JSON and input_shape first
  check_input_channels(a.input_shape, a.channels, model->core().input_channels(), model->core().type());
  const json j = json::parse(text);
  const uint64_t seed =
      a.seed >= 0 ? uint64_t(a.seed)
                  : (j.contains("seed") && j["seed"].is_number_unsigned() ? j["seed"].get<uint64_t>() : 0);
  int64_t H = a.height, W = a.width;
  if (j.contains("input_shape") && j["input_shape"].is_array()) {
    if (H <= 0) H = j["input_shape"][2].get<int64_t>();
    if (W <= 0) W = j["input_shape"][3].get<int64_t>();
  }
  if (H <= 0) H = 144;
  if (W <= 0) W = 256;
  const Shape in_shape{a.batch, model->core().input_channels(), H, W};
  model->init(seed);
  model->prepare(a.engine);
  auto plan = model->plan(in_shape);
  Tensor input(in_shape);
  Rng(seed ^ 0x5eedf00dULL).fill_uniform(input, 0.0f, 1.0f);
  Tensor pupil;
  if (model->has_shifter()) {
    pupil = Tensor(Shape{a.batch, model->pupil_channels()});
    Rng(seed + 1).fill_uniform(pupil, -1.0f, 1.0f);
  }
  std::vector<size_t> sessions;
  std::vector<Tensor> outs;
  int64_t neurons = 0;
  for (size_t s = 0; s < model->sessions().size(); ++s) {
    sessions.push_back(s);
    outs.emplace_back(Shape{a.batch, model->neurons(s)});
    neurons += model->neurons(s);
  }
  const Timing t =
      time_model(*plan, input, pupil.empty() ? nullptr : &pupil, sessions, outs, a.warmup, a.runs);
  const double over_med = t.core.median_ms > 0 ? t.model.median_ms / t.core.median_ms - 1 : 0;
  const double over_min = t.core.min_ms > 0 ? t.model.min_ms / t.core.min_ms - 1 : 0;
  const double share = t.model.median_ms > 0 ? t.readouts.median_ms / t.model.median_ms : 0;
  const int threads = a.engine.threads > 0 ? a.engine.threads : omp_get_max_threads();
  const std::string readout = model->sessions().front().readout->type();
  if (a.json) {
    json o = {{"model", "FiringRateEncoder"},
              {"core", model->core().type()},
              {"readout", readout},
              {"config", a.config},
              {"sessions", sessions.size()},
              {"neurons", neurons},
              {"batch", a.batch},
              {"height", H},
              {"width", W},
              {"threads", threads},
              {"backend", backend_name(a.engine.backend)},
              {"isa", isa_name(a.engine.isa)},
              {"cpu_isa", isa_name(cpu_isa())},
              {"cpu_model", cpu_model_name()},
              {"convs", convs_json(plan->core_plan().convs())},
              {"runs", a.runs},
              {"core_median_ms", t.core.median_ms},
              {"core_min_ms", t.core.min_ms},
              {"model_median_ms", t.model.median_ms},
              {"model_min_ms", t.model.min_ms},
              {"readouts_median_ms", t.readouts.median_ms},
              {"readouts_min_ms", t.readouts.min_ms},
              {"overhead_median", over_med},
              {"overhead_min", over_min},
              {"readout_share", share}};
    std::printf("%s\n", o.dump().c_str());
    return;
  }
  std::printf(
      "npcore bench %s: FiringRateEncoder (%s + %zu x %s, %lld neurons in all%s), %s backend, %d thread%s\n",
      a.config.c_str(), model->core().type(), sessions.size(), readout.c_str(), (long long)neurons,
      model->has_shifter() ? ", MLPShifter" : "", backend_name(a.engine.backend), threads,
      threads == 1 ? "" : "s");
  std::printf(
      "input: %s, uniform [0, 1); weights: deterministic init, seed %llu; %d warm-up, %d timed runs, core "
      "alone and whole model interleaved\n",
      in_shape.str().c_str(), (unsigned long long)seed, a.warmup, a.runs);
  std::printf("core convolutions: %s\n", convs_summary(plan->core_plan().convs()).c_str());
  std::printf("core alone:   median %8.3f ms, min %8.3f ms\n", t.core.median_ms, t.core.min_ms);
  std::printf("whole model:  median %8.3f ms, min %8.3f ms  (%+.2f%% at the median, %+.2f%% at the min)\n",
              t.model.median_ms, t.model.min_ms, 100 * over_med, 100 * over_min);
  std::printf(
      "readouts:     median %8.3f ms, min %8.3f ms  (all %zu sessions, shifter and nonlinearity; %.2f%% of "
      "the model)\n",
      t.readouts.median_ms, t.readouts.min_ms, sessions.size(), 100 * share);
  std::fflush(stdout);
}

void demo_model(const EngineOptions& opt, int runs) {
  const char* text = R"({"model": "FiringRateEncoder",
    "core": {"core": "Stacked2dCore", "config": {"input_channels": 1, "input_kern": 9, "hidden_kern": 7,
             "hidden_channels": 64, "layers": 4, "stack": -1, "pad_input": true}},
    "readout": {"type": "FullGaussian2d", "config": {"bias": true, "init_mu_range": 0.3, "init_sigma": 0.1,
                "gauss_type": "full"}, "n_neurons": {"mouse1": 1000}},
    "elu_offset": 0.0, "nonlinearity_type": "elu", "input_shape": [1, 1, 144, 256]})";
  auto model = make_model(text, "demo model");
  model->init(1);
  model->prepare(opt);
  const Shape in{1, 1, 144, 256};
  auto plan = model->plan(in);
  Tensor image(in);
  Rng(2024).fill_uniform(image, 0.0f, 1.0f);
  std::vector<Tensor> outs{Tensor(Shape{1, 1000})};
  // One whole-model run (the core's latency is printed above), then the readout alone: the demo stays quick.
  ModelWorkspace ws = plan->make_workspace();
  const std::vector<size_t> sessions{0};
  auto t0 = std::chrono::steady_clock::now();
  plan->run(image, nullptr, sessions, outs.data(), ws);
  const double model_ms = bench::ms_since(t0);
  std::vector<double> ro;
  for (int r = 0; r < std::max(runs, 3); ++r) {
    t0 = std::chrono::steady_clock::now();
    plan->run_readouts(nullptr, sessions, outs.data(), ws);
    ro.push_back(bench::ms_since(t0));
  }
  const bench::LatencyStats rs = bench::summarize(ro);
  float lo = outs[0].data()[0], hi = lo;
  for (int64_t i = 0; i < outs[0].numel(); ++i) {
    lo = std::min(lo, outs[0].data()[i]);
    hi = std::max(hi, outs[0].data()[i]);
  }
  std::printf(
      "Whole model: FiringRateEncoder(Stacked2dCore above, FullGaussian2d readout of 1000 neurons, "
      "ELU(x) + 1)\n");
  std::printf("  one image [1, 1, 144, 256] -> core %s -> rates [1, 1000], in [%.3f, %.3f]\n",
              plan->core_output_shape().str().c_str(), lo, hi);
  std::printf(
      "  latency: whole model %.1f ms (one run, no warm-up); the readout alone min %.3f ms, median %.3f "
      "ms\n\n",
      model_ms, rs.min_ms, rs.median_ms);
  std::fflush(stdout);
}

}  // namespace npcore::tool
