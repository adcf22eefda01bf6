// npcore bench CONFIG.json: latency of one core on random images, with deterministic weights.
// Builds the core, initialises it (Core::init), plans it for a batch, runs warm-up then timed forwards,
// and reports median/min/p99 latency, per-image time, convolution GFLOP, GFLOP/s and the fraction of the
// machine's FMA peak measured in the same process (engine/peak.h); --layers times each block between
// Plan::run's taps; --json prints one object for scripts (bench/run_benchmarks.sh). GFLOP are
// direct-equivalent: twice the multiply-adds of direct summation, whatever algorithm ran; the native
// backend's Winograd and FFT convolutions do fewer, so their GFLOP/s (and fraction of peak) can exceed what the
// hardware executes, and above 100% of peak is possible. --no-winograd times direct summation.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "bench/bench_stats.h"
#include "cores/factory.h"
#include "engine/error.h"
#include "engine/peak.h"
#include "engine/rng.h"
#include "cores/model.h"
#include "tools/commands.h"
#include "tools/conv_report.h"
#include "tools/model_commands.h"
#include "tools/progress.h"
#include "weights/json_guard.h"
#include "weights/text_util.h"

namespace npcore::tool {
namespace {

using nlohmann::json;

constexpr int64_t kDefaultHeight = 144, kDefaultWidth = 256;  // the notebook's image size

// What the config file says beyond the core itself: the input size and seed of its reference case, and
// whether a pretrained TransferLearningCore was switched to random initialisation.
struct BenchConfig {
  std::string text;  // the core description to build (possibly rewritten)
  int64_t height = 0, width = 0;
  bool has_seed = false;
  uint64_t seed = 0;
  bool pretrained_overridden = false;
};

// Reads the description. A TransferLearningCore whose `pretrained` is true (its default) needs ImageNet
// weights from a file and refuses init(); for timing, random weights do as well, so the key is rewritten
// to false. Malformed JSON is left to make_core, which reports it naming the file; JSON nested deeper than
// a description needs is refused here, before anything copies or prints it.
BenchConfig read_bench_config(const std::string& path) {
  BenchConfig c;
  c.text = read_text_file(path);
  json j;
  std::string why;
  const JsonParse parsed =
      parse_json_limited(c.text.data(), c.text.data() + c.text.size(), kMaxConfigDepth, &j, &why);
  if (parsed == JsonParse::TooDeep) throw ConfigError(path + ": not valid JSON: " + why);
  if (parsed != JsonParse::Ok || !j.is_object()) return c;
  if (j.contains("input_shape")) {
    const json& s = j["input_shape"];
    const bool ok = s.is_array() && s.size() == 4 && std::all_of(s.begin(), s.end(), [](const json& d) {
                      return d.is_number_integer() && d.get<int64_t>() > 0;
                    });
    if (!ok)
      throw ConfigError(path + ": input_shape is " + brief(s) +
                        "; it must be [N, C, H, W] with positive integers (or be absent)");
    c.height = s[2].get<int64_t>();
    c.width = s[3].get<int64_t>();
  }
  if (j.contains("seed") && j["seed"].is_number_integer() && j["seed"].get<int64_t>() >= 0) {
    c.has_seed = true;
    c.seed = j["seed"].get<uint64_t>();
  }
  if (j.value("core", json()) == "TransferLearningCore" && j.contains("config") && j["config"].is_object()) {
    json& cfg = j["config"];
    const json p = cfg.value("pretrained", json(true));
    if (p != json(false)) {
      cfg["pretrained"] = false;
      c.pretrained_overridden = true;
      c.text = j.dump();
    }
  }
  return c;
}

// --input-shape: "C,H,W" or "HxW", each a positive integer up to 65536; c is 0 for HxW.
struct InputShapeArg {
  int64_t c = 0, h = 0, w = 0;
};

InputShapeArg parse_input_shape(const std::string& text) {
  const std::string rule =
      "--input-shape '" + printable(text) + "': expected C,H,W (e.g. 1,36,64) or HxW (e.g. 36x64), positive integers up to 65536";
  const bool commas = text.find(',') != std::string::npos;
  std::vector<int64_t> v;
  size_t i = 0;
  while (true) {
    size_t j = i;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
    if (j == i || j - i > 6) throw UsageError(rule);
    v.push_back(std::stoll(text.substr(i, j - i)));
    if (v.back() < 1 || v.back() > (int64_t(1) << 16)) throw UsageError(rule);
    if (j == text.size()) break;
    const char sep = text[j];
    if (commas ? sep != ',' : (sep != 'x' && sep != 'X')) throw UsageError(rule);
    i = j + 1;
  }
  if (commas && v.size() == 3) return {v[0], v[1], v[2]};
  if (!commas && v.size() == 2) return {0, v[0], v[1]};
  throw UsageError(rule);
}

}  // namespace

// The C of --input-shape must be the core's input channels (the only count it accepts).
void check_input_channels(const std::string& text, int64_t c, int64_t core_channels, const char* core) {
  if (c > 0 && c != core_channels)
    throw UsageError("--input-shape " + printable(text) + ": C is " + std::to_string(c) + ", but this " + core +
                     " takes " + std::to_string(core_channels) + " input channel" + (core_channels == 1 ? "" : "s") +
                     " (its input_channels); C must equal it, or give HxW");
}

namespace {

// The smallest square image (side 1..512) the core accepts: a forward on it does almost no arithmetic,
// so its time is the fixed cost of a forward (dispatch, thread team, per-op bookkeeping). 0 if none.
int64_t smallest_side(const Core& core) {
  for (int64_t s = 1; s <= 512; ++s) {
    try {
      core.output_shape({1, core.input_channels(), s, s});
      return s;
    } catch (const Error&) {
    }
  }
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, int& status) {
  struct Args {
    std::string config;
    EngineFlags engine;
    int64_t batch = 1, height = 0, width = 0;
    std::string input_shape;
    int warmup = 3, runs = 20, peak_repeats = 5;
    int64_t seed = -1;
    int64_t sessions = 0, neurons = 0;
    bool json = false, layers = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Time a core's forward pass on random images.\n"
      "Builds the core described by CONFIG (any core JSON, e.g. ../shared/ref/seed_stacked2d.json) with "
      "deterministic weights (Core::init with the file's \"seed\", or --seed), runs --warmup untimed then "
      "--runs timed forwards of a batch of --batch random images (uniform in [0, 1)) of C x H x W, C being "
      "the core's input channels and H x W, first found: --input-shape C,H,W or HxW (its C must equal the "
      "core's input channels); --height and --width (not with --input-shape; either alone keeps the other "
      "side from below); the file's input_shape; 144 x 256. It prints "
      "the median, min and p99 latency per batch (percentiles interpolated linearly, as numpy does), the "
      "time per image, the convolution GFLOP of one batch, GFLOP/s at the median and its fraction of the "
      "machine's single-precision FMA peak, which is measured first by a built-in probe with the same "
      "thread count, the process's peak resident memory and the page faults during the timed runs (getrusage; "
      "0 when every buffer was touched in the warm-up, so no page zeroing in a steady forward).\n"
      "Each convolution is listed with the algorithm and ISA it ran with (the JSON's convs).\n"
      "Fixed overhead: the same core, batch 1, on the smallest square image it accepts (almost no arithmetic) is "
      "timed max(--runs, 20) times after the main runs; its min and median are what a forward costs besides "
      "compute (dispatch, thread team, per-layer work), reported with the median's share of the median latency "
      "(the JSON's overhead). On a loaded machine the median includes waits for descheduled threads; the min is "
      "the floor.\n"
      "GFLOP are direct-equivalent: 2 x the multiply-adds of direct summation, whatever algorithm runs. The "
      "native backend computes stride-1 3x3 convolutions with Winograd (2.25x fewer multiplications) and "
      "5x5..9x9 ones with a tiled FFT (about 8x fewer for 7x7), so its GFLOP/s overstate the arithmetic done "
      "and can exceed 100% of the FMA peak; --no-winograd times direct summation, whose GFLOP/s are the "
      "arithmetic executed.\n"
      "A TransferLearningCore with pretrained: true (ImageNet weights) is timed with random weights, as if "
      "pretrained: false; the output says so.\n"
      "A model description (\"model\": \"FiringRateEncoder\", e.g. ../shared/ref/models/*.json) is timed as the "
      "core alone and as the whole model (core, every session's readout, shifter, nonlinearity), interleaved "
      "run by run, with the readouts' share; --sessions and --neurons replace its readouts by that many "
      "sessions of that many neurons.\n"
      "Example: npcore bench ../shared/ref/seed_stacked2d.json --threads 2 --batch 8 --runs 10 --layers");
  cmd->add_option(
         "config", args->config,
         "Core description: JSON with \"core\" and \"config\" (input_shape and seed are used if present), or "
         "a model description (\"model\": \"FiringRateEncoder\")")
      ->required();
  args->engine.add_to(cmd);
  cmd->add_option("-b,--batch", args->batch, "Images per forward")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(4096)));
  CLI::Option* shape_opt = cmd->add_option(
      "--input-shape", args->input_shape,
      "Image size: C,H,W (C must be the core's input channels) or HxW, e.g. 1,36,64 or 36x64 (default: the "
      "config's input_shape, else 144x256)");
  cmd->add_option("--height", args->height, "Image height (default: the config's input_shape, else 144)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16))
      ->excludes(shape_opt);
  cmd->add_option("--width", args->width, "Image width (default: the config's input_shape, else 256)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16))
      ->excludes(shape_opt);
  cmd->add_option("--warmup", args->warmup, "Untimed forwards first (buffers touched, caches and JIT warm)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--runs", args->runs, "Timed forwards")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", args->seed,
                  "Seed of the weights and input (default: the config's \"seed\", else 0)")
      ->check(CLI::Range(int64_t(0), std::numeric_limits<int64_t>::max()));
  cmd->add_option("--peak-repeats", args->peak_repeats,
                  "Repeats of the FMA peak probe (~0.1 s each; best kept)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->add_option("--sessions", args->sessions, "Models: time this many sessions (data_keys)")
      ->check(CLI::Range(int64_t(1), int64_t(10000)));
  cmd->add_option("--neurons", args->neurons, "Models: neurons per session")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  cmd->add_flag("--layers", args->layers, "Also time each block (features.layerN) between Plan::run's taps (a tapped run goes block by "
                "block, each kernel splitting its own work: not the batch split or the single thread team a "
                "plain run uses, docs/ARCHITECTURE.md, so its latency may differ)");
  cmd->add_flag("--json", args->json,
                "Print one JSON object: core, batch, threads, backend, winograd, median_ms, min_ms, p99_ms, "
                "gflop, gflops (direct-equivalent, see above; flops_basis says so), peak_gflops, "
                "peak_fraction, peak_rss_mb, page_faults_timed (page faults during the timed runs), isa, cpu_isa, cpu_model, convs (each convolution: layer, parameters, "
                "input_shape, backend, algorithm, isa), overhead (fixed cost of a forward) and more");
  cmd->callback([args, &status] {
    const Args& a = *args;
    EngineOptions opt = a.engine.options();
    const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
    opt.threads = threads;
    InputShapeArg shape_arg;
    if (!a.input_shape.empty()) shape_arg = parse_input_shape(a.input_shape);
    const int64_t height_arg = shape_arg.h > 0 ? shape_arg.h : a.height;
    const int64_t width_arg = shape_arg.w > 0 ? shape_arg.w : a.width;
    if (is_model_description(read_text_file(a.config))) {
      if (a.layers) throw UsageError("--layers times a core's blocks; for a model, bench its core description");
      ModelBenchArgs m;
      m.config = a.config;
      m.engine = opt;
      m.batch = a.batch;
      m.height = height_arg;
      m.width = width_arg;
      m.channels = shape_arg.c;
      m.input_shape = a.input_shape;
      m.warmup = a.warmup;
      m.runs = a.runs;
      m.seed = a.seed;
      m.sessions = a.sessions;
      m.neurons = a.neurons;
      m.json = a.json;
      bench_model(m);
      status = 0;
      return;
    }
    if (a.sessions > 0 || a.neurons > 0) throw UsageError("--sessions and --neurons are for model descriptions");

    BenchConfig bc = read_bench_config(a.config);
    auto core = make_core(bc.text, a.config);
    const uint64_t seed = a.seed >= 0 ? uint64_t(a.seed) : (bc.has_seed ? bc.seed : 0);
    check_input_channels(a.input_shape, shape_arg.c, core->input_channels(), core->type());
    const int64_t H = height_arg > 0 ? height_arg : (bc.height > 0 ? bc.height : kDefaultHeight);
    const int64_t W = width_arg > 0 ? width_arg : (bc.width > 0 ? bc.width : kDefaultWidth);
    const Shape in_shape{a.batch, core->input_channels(), H, W};
    core->output_shape(in_shape);  // a size the core cannot take fails here, before any work

    // The probe first, on an otherwise idle process, with the thread count of the runs.
    const PeakResult peak = measure_fma_peak(threads, a.peak_repeats);

    core->init(seed);
    core->prepare(opt);
    auto plan = core->plan(in_shape);
    Tensor input(in_shape), output(plan->output_shape());
    Rng(seed ^ 0x5eedf00dULL).fill_uniform(input, 0.0f, 1.0f);
    Workspace ws = plan->make_workspace();

    // Per-block times: the gap between consecutive taps (the first measured from the start of the run).
    const size_t nb = plan->num_blocks();
    std::vector<std::vector<double>> block_ms(nb);
    std::chrono::steady_clock::time_point last;
    size_t next_block = 0;
    const TapFn tap = [&](const std::string&, const Tensor&) {
      const auto now = std::chrono::steady_clock::now();
      if (next_block < nb)
        block_ms[next_block].push_back(std::chrono::duration<double, std::milli>(now - last).count());
      ++next_block;
      last = now;
    };
    const TapFn* tap_ptr = a.layers ? &tap : nullptr;

    // Shown only on a terminal, and only once the benchmark has run for a couple of seconds.
    Progress progress("npcore bench");
    const auto bench_start = std::chrono::steady_clock::now();
    auto report = [&](const char* phase, int r, int n) {
      if (std::chrono::steady_clock::now() - bench_start > std::chrono::seconds(2)) progress.update(phase, r, n);
    };
    for (int r = 0; r < a.warmup; ++r) {
      report("warm-up", r + 1, a.warmup);
      plan->run(input, output, ws);
    }
    std::vector<double> ms;
    ms.reserve(size_t(a.runs));
    const long faults_before = bench::page_faults();
    for (int r = 0; r < a.runs; ++r) {
      report("run", r + 1, a.runs);
      next_block = 0;
      const auto t0 = std::chrono::steady_clock::now();
      last = t0;
      plan->run(input, output, ws, tap_ptr);
      ms.push_back(bench::ms_since(t0));
    }
    // Page faults during the timed runs (0 when the warm-up touched every buffer: no page zeroing then).
    const long run_faults = bench::page_faults() - faults_before;
    const double rss = bench::peak_rss_mb();  // before the overhead plan adds its buffers

    // The fixed overhead: the same prepared core, batch 1, on its smallest image, same threads.
    const int64_t side = smallest_side(*core);
    bench::LatencyStats overhead;
    double overhead_gflop = 0;
    if (side > 0) {
      auto small = core->plan({1, core->input_channels(), side, side});
      Tensor sin(small->input_shape()), sout(small->output_shape());
      Rng(seed ^ 0x0fe4eadULL).fill_uniform(sin, 0.0f, 1.0f);
      Workspace sws = small->make_workspace();
      for (int r = 0; r < std::min(a.warmup, 3) + 1; ++r) small->run(sin, sout, sws);
      std::vector<double> oms;
      const int overhead_runs = std::max(a.runs, 20);  // cheap: almost no arithmetic
      for (int r = 0; r < overhead_runs; ++r) {
        report("overhead", r + 1, overhead_runs);
        const auto t0 = std::chrono::steady_clock::now();
        small->run(sin, sout, sws);
        oms.push_back(bench::ms_since(t0));
      }
      overhead = bench::summarize(oms);
      overhead_gflop = small->conv_flops() / 1e9;
    }
    progress.done();
    const bench::LatencyStats st = bench::summarize(ms);
    const double gflop = plan->conv_flops() / 1e9;
    const double gflops = st.median_ms > 0 ? gflop / (st.median_ms / 1e3) : 0;
    const double fraction = peak.gflops > 0 ? gflops / peak.gflops : 0;
    const double per_image = st.median_ms / double(a.batch);
    // Whether the native backend may compute eligible convolutions with Winograd or FFT (on the AVX2 and AVX-512
    // ISAs; opt.isa is resolved by EngineFlags::options()).
    const bool winograd = opt.backend == Backend::Native && opt.winograd && opt.isa != Isa::Generic;

    struct BlockRow {
      std::string name;
      double median_ms, gflop, gflops, fraction;
      std::vector<ConvRun> convs;
    };
    const std::vector<ConvRun> convs = plan->convs();
    const double overhead_share = st.median_ms > 0 ? overhead.median_ms / st.median_ms : 0;
    std::vector<BlockRow> rows;
    if (a.layers)
      for (size_t b = 0; b < nb; ++b) {
        const double m = bench::summarize(block_ms[b]).median_ms, g = plan->block_conv_flops(b) / 1e9;
        const double gs = m > 0 ? g / (m / 1e3) : 0;
        rows.push_back({plan->block_name(b), m, g, gs, peak.gflops > 0 ? gs / peak.gflops : 0, plan->block_convs(b)});
      }

    if (a.json) {
      json j = {{"core", core->type()},
                {"config", a.config},
                {"batch", a.batch},
                {"channels", in_shape[1]},
                {"height", H},
                {"width", W},
                {"threads", threads},
                {"backend", backend_name(opt.backend)},
                {"winograd", winograd},
                {"isa", isa_name(opt.isa)},
                {"cpu_isa", isa_name(cpu_isa())},
                {"cpu_model", cpu_model_name()},
                {"precision", precision_name(opt.precision)},
                {"fused", opt.fuse},
                {"warmup", a.warmup},
                {"runs", a.runs},
                {"seed", seed},
                {"median_ms", st.median_ms},
                {"min_ms", st.min_ms},
                {"p99_ms", st.p99_ms},
                {"max_ms", st.max_ms},
                {"mean_ms", st.mean_ms},
                {"per_image_ms", per_image},
                {"flops_basis", "direct-equivalent"},
                {"gflop", gflop},
                {"gflops", gflops},
                {"peak_gflops", peak.gflops},
                {"peak_isa", peak.isa},
                {"peak_fraction", fraction},
                {"peak_rss_mb", rss},
                {"page_faults_timed", run_faults},
                {"pretrained_overridden", bc.pretrained_overridden},
                {"times_ms", ms},
                {"convs", convs_json(convs)}};
      if (side > 0)
        j["overhead"] = {{"what", "batch 1 on the smallest square image the core accepts, same threads"},
                         {"height", side},
                         {"width", side},
                         {"gflop", overhead_gflop},
                         {"median_ms", overhead.median_ms},
                         {"min_ms", overhead.min_ms},
                         {"share_of_median", overhead_share}};
      else
        j["overhead"] = nullptr;
      if (a.layers) {
        json l = json::array();
        for (const BlockRow& r : rows)
          l.push_back({{"block", r.name},
                       {"median_ms", r.median_ms},
                       {"gflop", r.gflop},
                       {"gflops", r.gflops},
                       {"peak_fraction", r.fraction},
                       {"convs", convs_json(r.convs)}});
        j["layers"] = l;
      }
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("npcore bench %s: %s, %s backend%s, ISA %s (CPU: %s), precision %s, %d thread%s, norms and activations %s\n",
                  a.config.c_str(), core->type(), backend_name(opt.backend),
                  opt.backend == Backend::Native && !opt.winograd ? " (no Winograd)" : "", isa_name(opt.isa),
                  isa_name(cpu_isa()), precision_name(opt.precision), threads,
                  threads == 1 ? "" : "s", opt.fuse ? "fused" : "separate");
      if (bc.pretrained_overridden)
        std::printf(
            "note: pretrained: true taken as pretrained: false (random weights; timing is the same)\n");
      std::printf("input: %s, uniform [0, 1); weights: deterministic init, seed %llu\n",
                  in_shape.str().c_str(), (unsigned long long)seed);
      std::printf("runs: %d warm-up, %d timed\n", a.warmup, a.runs);
      std::printf("latency per batch: median %.2f ms, min %.2f ms, p99 %.2f ms (max %.2f ms)\n", st.median_ms,
                  st.min_ms, st.p99_ms, st.max_ms);
      std::printf("per image: median %.2f ms, min %.2f ms\n", per_image, st.min_ms / double(a.batch));
      std::printf(
          "convolution: %.3f GFLOP per batch, %.1f GFLOP/s at the median, %.1f%% of peak (direct-equivalent "
          "FLOPs: 2 x the multiply-adds of direct summation)\n",
          gflop, gflops, 100 * fraction);
      if (std::any_of(convs.begin(), convs.end(), [](const ConvRun& c) { return c.algorithm == "winograd"; }))
        std::printf(
            "note: the native backend ran its eligible convolutions (stride 1, >= 16 channels) with Winograd "
            "(3x3, 2.25x fewer multiplications) or a tiled FFT (5x5..9x9, about 8x fewer for 7x7): GFLOP/s "
            "and %% of peak overstate the arithmetic done (--no-winograd times direct summation)\n");
      std::printf("FMA peak: %.1f GFLOP/s (%s, %d thread%s, measured by the built-in probe)\n", peak.gflops,
                  peak.isa.c_str(), peak.threads, peak.threads == 1 ? "" : "s");
      std::printf("peak RSS: %.1f MB; page faults during the timed runs: %ld\n", rss, run_faults);
      std::printf("CPU: %s\n", cpu_model_name().c_str());
      if (side > 0)
        std::printf(
            "fixed overhead: median %.3f ms, min %.3f ms per forward (batch 1 on a %lldx%lld image, %.6f GFLOP: "
            "dispatch, threads, per-layer work); %.1f%% of the median latency\n",
            overhead.median_ms, overhead.min_ms, (long long)side, (long long)side, overhead_gflop,
            100 * overhead_share);
      std::printf("convolutions: %s\n", convs_summary(convs).c_str());
      print_convs(convs, "  ");
      if (a.layers) {
        std::printf("\nper block (median of %d runs; times between taps):\n", a.runs);
        std::printf("  %-32s %10s %7s %9s %10s %7s   %s\n", "block", "ms", "share", "GFLOP", "GFLOP/s", "peak",
                    "convolutions (GFLOP direct-equivalent)");
        double sum = 0;
        for (const BlockRow& r : rows) sum += r.median_ms;
        for (const BlockRow& r : rows)
          std::printf("  %-32s %10.2f %6.1f%% %9.3f %10.1f %6.1f%%   %s\n", r.name.c_str(), r.median_ms,
                      sum > 0 ? 100 * r.median_ms / sum : 0.0, r.gflop, r.gflops, 100 * r.fraction,
                      convs_summary(r.convs).c_str());
      }
    }
    std::fflush(stdout);
    status = 0;
  });
}

}  // namespace npcore::tool
