#pragma once
// Latency statistics and process memory shared by `npcore bench` and npcore_kernel_bench, computed the
// same way as bench/torch_baseline.py and bench/ort_baseline.js so that their numbers compare:
// percentiles interpolate linearly between order statistics (numpy's default), so p99 of 50 runs lies
// between the 49th and 50th smallest times.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace npcore::bench {

// Summary of a set of timed runs, in milliseconds.
struct LatencyStats {
  int runs = 0;
  double min_ms = 0, median_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
};

// The q-quantile (0..1) of sorted values, linearly interpolated.
inline double quantile_sorted(const std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

inline LatencyStats summarize(std::vector<double> ms) {
  LatencyStats s;
  s.runs = int(ms.size());
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.min_ms = ms.front();
  s.max_ms = ms.back();
  s.median_ms = quantile_sorted(ms, 0.5);
  s.p99_ms = quantile_sorted(ms, 0.99);
  double sum = 0;
  for (double x : ms) sum += x;
  s.mean_ms = sum / double(ms.size());
  return s;
}

// Milliseconds since t0.
inline double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Peak resident memory of this process so far (getrusage ru_maxrss, KiB on Linux), in MB (10^6 bytes).
inline double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) * 1024.0 / 1e6;
}

// Page faults of this process so far (minor + major): a forward that touches memory for the first time
// (fresh pages, zeroed by the kernel) faults; a steady-state forward should not.
inline long page_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt + ru.ru_majflt;
}

}  // namespace npcore::bench
