#include "engine/peak.h"

#include <omp.h>

#include <chrono>

#include "engine/isa.h"
#include "engine/native/kernels.h"

namespace npcore {
namespace {

// The portable fallback of the probe's loop (the vector ones are in engine/native/common/fma_probe.h).
float fma_chains_scalar(long iters) {
  volatile float seed = 0.999999f;
  float m = seed, a[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  for (long i = 0; i < iters; ++i)
    for (float& x : a) x = x * m + 1e-7f;
  return a[0] + a[11];
}

}  // namespace

PeakResult measure_fma_peak(int threads, int repeats) {
  PeakResult r;
  r.threads = threads > 0 ? threads : omp_get_max_threads();
  // The CPU's best ISA, whatever the engine was told to use: the peak is the machine's.
  const Isa isa = cpu_isa();
  const native::Kernels* k = native::kernels(isa);
  const int lanes = k ? k->lanes : 1;
  float (*fma_chains)(long) = k ? k->fma_probe : fma_chains_scalar;
  r.isa = isa == Isa::Generic ? "scalar" : isa_name(isa);
  const long iters = 8000000;  // ~0.05-0.1 s per repeat on a 3 GHz core
  double best = 1e300;
  for (int rep = 0; rep < repeats; ++rep) {
    float sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(r.threads) reduction(+ : sink)
    sink += fma_chains(iters);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt < best) best = dt;
    if (sink == 1.2345f) r.isa += " ";  // keeps the result live
  }
  r.gflops = double(iters) * 12.0 * lanes * 2.0 * r.threads / best / 1e9;
  return r;
}

}  // namespace npcore
