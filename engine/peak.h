#pragma once
// A probe of the machine's single-precision FMA peak: each thread runs 12 independent vector FMA
// chains (enough to cover FMA latency on two ports), so GFLOP/s = threads * FMAs * lanes * 2 / time.
// Benchmarks report their throughput as a fraction of this, measured in the same run.
#include <string>

namespace npcore {

struct PeakResult {
  double gflops = 0;   // best of the repeats, all threads together
  int threads = 0;
  std::string isa;     // "avx512" (16 lanes), "avx2" (8) or "scalar"
};

// Measures with `threads` OpenMP threads (0: OpenMP's default), best of `repeats` (~0.1 s each).
PeakResult measure_fma_peak(int threads = 0, int repeats = 5);

}  // namespace npcore
