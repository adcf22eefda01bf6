// npcore_kernel_bench: every convolution backend on the convolutions the seed cores run, at the sizes
// they run at with a 144x256 input. Each (shape, backend) is one ConvKernel made once and run warm-up
// then timed times on one thread team; reported: min/median/p99 ms, GFLOP, GFLOP/s at the median and
// its fraction of the FMA peak measured by engine/peak.h in the same process.
//
// GFLOP are direct-equivalent: Conv2dParams::flops, twice the multiply-adds of direct summation, whatever
// algorithm runs. The native backend computes stride-1 convolutions with >= 16 channels with Winograd
// F(2x2, 3x3) (3x3, 2.25x fewer multiplications) or a tiled FFT (5x5..9x9, about 8x fewer for 7x7), so
// its GFLOP/s and fraction of peak there overstate the arithmetic done (above 100% of peak is possible);
// --no-winograd makes it sum directly, and then the figures are the arithmetic executed. Rows say which
// ran ("winograd", "fft").
//
// The shapes (batch 1 unless --batch):
//   Stacked2dCore / SE2dCore layer0 9x9 1->64 and hidden 7x7 64->64 at 144x256. RotationEquivariant2dCore's
//   Hermite layers are these very convolutions once the filter bank is built (8 rotations x 8 channels =
//   64, no bias), so the same rows time them.
//   TransferLearningCore vgg16[:12]: features.0 (3->64, run as 1->64: the grayscale repeat is folded into
//   the conv), .2 64->64 at 144x256, .5 64->128 and .7 128->128 at 72x128, .10 128->256 at 36x64; all 3x3.
//   Depthwise 3x3 and 7x7 over 64 channels and pointwise 1x1 64->64 at 144x256 (depth_separable cores), and
//   the 7x7 depthwise and the 1x1 at 28x56 (the SENSORIUM core's hidden layers on a 36x64 input).
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench/bench_stats.h"
#include "engine/conv.h"
#include "engine/error.h"
#include "engine/peak.h"
#include "engine/rng.h"
#include "engine/winograd.h"
#include "tools/cli_checks.h"

namespace npcore::bench {
namespace {

struct ConvShape {
  const char* name;
  const char* used_by;
  Conv2dParams params;
  int64_t height, width;
  ActKind act;
};

// Conv2dParams::square(in, out, kernel, stride, padding, dilation, groups, bias)
const std::vector<ConvShape>& shapes() {
  static const std::vector<ConvShape> s = {
      {"in9x9_1to64", "Stacked2d/SE2d layer0; RotEq Hermite layer0",
       Conv2dParams::square(1, 64, 9, 1, 4, 1, 1, false), 144, 256, ActKind::ELU},
      {"in9x9_1to64_small", "SENSORIUM layer0 at 36x64 (valid: 28x56 out, 7 vectors a row on AVX2)",
       Conv2dParams::square(1, 64, 9, 1, 0, 1, 1, false), 36, 64, ActKind::ELU},
      {"hid7x7_64to64", "Stacked2d/SE2d layers 1-3; RotEq Hermite layers 1-3",
       Conv2dParams::square(64, 64, 7, 1, 3, 1, 1, true), 144, 256, ActKind::ELU},
      {"vgg0_3x3_1to64", "vgg16 features.0 (3->64, grayscale folded)", Conv2dParams::square(1, 64, 3, 1, 1),
       144, 256, ActKind::ReLU},
      {"vgg2_3x3_64to64", "vgg16 features.2", Conv2dParams::square(64, 64, 3, 1, 1), 144, 256, ActKind::ReLU},
      {"vgg5_3x3_64to128", "vgg16 features.5", Conv2dParams::square(64, 128, 3, 1, 1), 72, 128,
       ActKind::ReLU},
      {"vgg7_3x3_128to128", "vgg16 features.7", Conv2dParams::square(128, 128, 3, 1, 1), 72, 128,
       ActKind::ReLU},
      {"vgg10_3x3_128to256", "vgg16 features.10", Conv2dParams::square(128, 256, 3, 1, 1), 36, 64,
       ActKind::ReLU},
      {"dw3x3_64", "depthwise 3x3 (depth_separable spatial_conv)",
       Conv2dParams::square(64, 64, 3, 1, 1, 1, 64, true), 144, 256, ActKind::None},
      {"pw1x1_64to64", "1x1 (depth_separable in/out_depth_conv)",
       Conv2dParams::square(64, 64, 1, 1, 0, 1, 1, true), 144, 256, ActKind::ELU},
      {"dw7x7_64", "depthwise 7x7 (SENSORIUM depth_separable spatial_conv)",
       Conv2dParams::square(64, 64, 7, 1, 3, 1, 64, true), 144, 256, ActKind::None},
      {"dw7x7_64_small", "depthwise 7x7 at 28x56 (SENSORIUM core on 36x64 input)",
       Conv2dParams::square(64, 64, 7, 1, 3, 1, 64, true), 28, 56, ActKind::None},
      {"pw1x1_64to64_small", "1x1 at 28x56 (SENSORIUM core on 36x64 input)",
       Conv2dParams::square(64, 64, 1, 1, 0, 1, 1, true), 28, 56, ActKind::ELU},
  };
  return s;
}

struct Row {
  std::string shape, used_by, params, backend;
  int64_t batch, height, width;
  LatencyStats st;
  double gflop = 0, gflops = 0, fraction = 0;  // direct-equivalent
  bool winograd = false;                       // the native backend ran Winograd
  bool fft = false;                            // the native backend ran the tiled FFT
};

Row run_one(const ConvShape& cs, Backend backend, int64_t batch, int warmup, int runs, double peak,
            bool allow_winograd) {
  const Conv2dParams& p = cs.params;
  const Shape in_shape{batch, p.in_channels, cs.height, cs.width};
  Tensor weight(p.weight_shape()), bias({p.out_channels}), input(in_shape);
  // Xavier-like scale keeps outputs O(1) (no denormals, activations in their usual range).
  const double fan_in = double(p.in_channels / p.groups * p.kernel_h * p.kernel_w);
  Rng rng(42);
  rng.fill_normal(weight, 0.0f, float(1.0 / std::sqrt(fan_in)));
  rng.fill_normal(bias, 0.0f, 0.1f);
  rng.fill_uniform(input, 0.0f, 1.0f);
  ConvSpec spec;
  spec.params = p;
  spec.weight = weight.data();
  spec.bias = p.bias ? bias.data() : nullptr;
  spec.act.kind = cs.act;
  spec.allow_winograd = allow_winograd;
  auto kernel = make_conv_kernel(backend, spec, in_shape);
  Tensor out(p.output_shape(in_shape, cs.name));
  AlignedBuffer scratch = aligned_floats(std::max<size_t>(kernel->scratch_floats(), 1));
  auto state = kernel->make_state();

  for (int r = 0; r < warmup; ++r) kernel->run(input, out, scratch.get(), state.get());
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    kernel->run(input, out, scratch.get(), state.get());
    ms.push_back(ms_since(t0));
  }
  Row row;
  row.shape = cs.name;
  row.used_by = cs.used_by;
  row.params = p.str();
  row.backend = backend_name(backend);
  row.batch = batch;
  row.height = cs.height;
  row.width = cs.width;
  row.st = summarize(ms);
  row.gflop = p.flops(in_shape) / 1e9;
  row.gflops = row.st.median_ms > 0 ? row.gflop / (row.st.median_ms / 1e3) : 0;
  row.fraction = peak > 0 ? row.gflops / peak : 0;
  row.winograd = backend == Backend::Native && native_algorithm(spec, in_shape) == "winograd";
  row.fft = backend == Backend::Native && native_algorithm(spec, in_shape) == "fft";
  return row;
}

int main_impl(int argc, char** argv) {
  std::vector<std::string> shape_names, backend_names;
  int threads = 0, warmup = 2, runs = 10, reference_runs = 1, peak_repeats = 5;
  int64_t batch = 1;
  bool json_out = false, list = false, no_winograd = false;
  CLI::App app{
      "npcore_kernel_bench: every convolution backend (reference, gemm, onednn, native) on the convolutions "
      "of "
      "the seed cores at the sizes they run at with a 144x256 input (Stacked2d/SE2d 9x9 1->64 and 7x7 "
      "64->64, "
      "which are also RotationEquivariant2dCore's Hermite layers once their filter bank is built; "
      "vgg16[:12]'s "
      "3x3 convs; depthwise 3x3 and 1x1 64->64). Prints min/median/p99 ms, GFLOP, GFLOP/s at the median and "
      "its fraction of the single-precision FMA peak, measured first by a built-in probe with the same "
      "thread count. The reference backend (direct loops, the oracle) is slow and runs --reference-runs "
      "times without warm-up.\n"
      "GFLOP are direct-equivalent: 2 x the multiply-adds of direct summation, whatever algorithm runs. The "
      "native backend computes stride-1 convolutions with >= 16 channels (on AVX2 and AVX-512; NPCORE_ISA "
      "picks the ISA) with Winograd if 3x3 (2.25x fewer multiplications; rows marked W) and with a tiled FFT "
      "if 5x5..9x9 (about 8x fewer for 7x7; rows marked F): on those rows GFLOP/s and the fraction of peak "
      "overstate the arithmetic done and can exceed 100%. --no-winograd sums directly."};
  app.add_option("--shape", shape_names, "Only these shapes (repeat or comma-separate; --list shows them)")
      ->delimiter(',');
  app.add_option("--backend", backend_names, "Only these backends (repeat or comma-separate)")
      ->delimiter(',');
  app.add_option("--threads", threads, "OpenMP threads, 0 to 1024 (default 0: all cores)")
      ->check(npcore::tool::thread_count_check());
  app.add_option("--batch", batch, "Images per run")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(256)));
  app.add_option("--warmup", warmup, "Untimed runs first")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  app.add_option("--runs", runs, "Timed runs")->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--reference-runs", reference_runs, "Timed runs of the reference backend (no warm-up)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--peak-repeats", peak_repeats, "Repeats of the FMA peak probe (best kept)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_flag("--json", json_out,
               "Print one JSON object (machine peak and one entry per shape and backend)");
  app.add_flag("--list", list, "List the shapes and exit");
  app.add_flag("--no-winograd", no_winograd,
               "native backend: sum every convolution directly (no Winograd), so that GFLOP/s are the "
               "arithmetic executed");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "npcore_kernel_bench: error: %s; see 'npcore_kernel_bench --help'\n", e.what());
    return 2;
  }
  if (list) {
    for (const ConvShape& s : shapes())
      std::printf("%-20s %-48s at %lldx%lld  (%s)\n", s.name, s.params.str().c_str(), (long long)s.height,
                  (long long)s.width, s.used_by);
    return 0;
  }

  std::vector<const ConvShape*> todo;
  for (const ConvShape& s : shapes())
    if (shape_names.empty() || std::find(shape_names.begin(), shape_names.end(), s.name) != shape_names.end())
      todo.push_back(&s);
  for (const std::string& n : shape_names)
    if (std::none_of(shapes().begin(), shapes().end(), [&](const ConvShape& s) { return n == s.name; })) {
      std::string known;
      for (const ConvShape& s : shapes()) known += std::string(known.empty() ? "" : ", ") + s.name;
      throw ConfigError("unknown shape '" + n + "'; the shapes are " + known);
    }
  std::vector<Backend> backends;
  if (backend_names.empty()) backends = all_backends();
  for (const std::string& n : backend_names) backends.push_back(parse_backend(n));

  if (threads <= 0) threads = omp_get_max_threads();
  omp_set_num_threads(threads);  // kernels size their teams when made, and run with this count
  const PeakResult peak = measure_fma_peak(threads, peak_repeats);
  if (!json_out) {
    std::printf(
        "npcore_kernel_bench: batch %lld, %d thread%s, %d warm-up + %d timed runs (reference: %d), native "
        "%s\n",
        (long long)batch, threads, threads == 1 ? "" : "s", warmup, runs, reference_runs,
        no_winograd ? "summing directly (--no-winograd)" : "with Winograd where eligible (rows marked W)");
    std::printf(
        "GFLOP and GFLOP/s are direct-equivalent (2 x the multiply-adds of direct summation); Winograd "
        "rows do fewer\n");
    std::printf("FMA peak: %.1f GFLOP/s (%s, measured by the built-in probe)\n\n", peak.gflops,
                peak.isa.c_str());
    std::printf("%-20s %-9s %10s %10s %10s %8s %9s %6s\n", "shape", "backend", "min ms", "median ms",
                "p99 ms", "GFLOP", "GFLOP/s", "peak");
    std::fflush(stdout);
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const ConvShape* s : todo) {
    for (Backend b : backends) {
      std::string why;
      const Shape in_shape{batch, s->params.in_channels, s->height, s->width};
      ConvSpec probe;
      probe.params = s->params;
      if (!conv_supported(b, probe, in_shape, &why)) {
        if (!json_out) std::printf("%-20s %-9s not supported: %s\n", s->name, backend_name(b), why.c_str());
        continue;
      }
      const bool ref = b == Backend::Reference;
      const Row r =
          run_one(*s, b, batch, ref ? 0 : warmup, ref ? reference_runs : runs, peak.gflops, !no_winograd);
      if (json_out) {
        rows.push_back({{"shape", r.shape},
                        {"used_by", r.used_by},
                        {"conv", r.params},
                        {"backend", r.backend},
                        {"batch", r.batch},
                        {"height", r.height},
                        {"width", r.width},
                        {"runs", r.st.runs},
                        {"min_ms", r.st.min_ms},
                        {"median_ms", r.st.median_ms},
                        {"p99_ms", r.st.p99_ms},
                        {"winograd", r.winograd},
                        {"fft", r.fft},
                        {"gflop", r.gflop},
                        {"gflops", r.gflops},
                        {"peak_fraction", r.fraction}});
      } else {
        std::printf("%-20s %-9s %10.3f %10.3f %10.3f %8.3f %9.1f %5.1f%%%s\n", r.shape.c_str(),
                    r.backend.c_str(), r.st.min_ms, r.st.median_ms, r.st.p99_ms, r.gflop, r.gflops,
                    100 * r.fraction, r.winograd ? " W" : r.fft ? " F" : "");
        std::fflush(stdout);
      }
    }
  }
  if (json_out) {
    const nlohmann::json j = {{"threads", threads},
                              {"batch", batch},
                              {"warmup", warmup},
                              {"runs", runs},
                              {"reference_runs", reference_runs},
                              {"winograd", !no_winograd},
                              {"flops_basis", "direct-equivalent"},
                              {"peak_gflops", peak.gflops},
                              {"peak_isa", peak.isa},
                              {"peak_rss_mb", peak_rss_mb()},
                              {"results", rows}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace
}  // namespace npcore::bench

int main(int argc, char** argv) {
  try {
    return npcore::bench::main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "npcore_kernel_bench: error: %s\n", e.what());
    return 2;
  }
}
