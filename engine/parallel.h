#pragma once
// The one way the engine runs loops in parallel: one OpenMP team of a fixed size, chosen when a kernel
// or op is planned, never nested, and no team at all for one thread or one job (libgomp allocates a
// team for every region, single-thread ones included, which a steady-state run must not do).
#include <omp.h>

#include <cstdint>

namespace npcore {

// The thread count a plan made now will use (OpenMP's current setting for this thread).
inline int planned_threads() { return omp_get_max_threads() > 0 ? omp_get_max_threads() : 1; }

// Whether a loop of `jobs` iterations would open a team of `threads`.
inline bool runs_parallel(int64_t jobs, int threads) { return threads > 1 && jobs > 1 && !omp_in_parallel(); }

// fn(i) for i in [0, jobs), statically split (contiguous ranges per thread). Inside fn,
// omp_get_thread_num() is the thread's index (0 when run serially).
template <class F>
inline void parallel_for(int64_t jobs, int threads, F&& fn) {
  if (runs_parallel(jobs, threads)) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < jobs; ++i) fn(i);
  } else {
    for (int64_t i = 0; i < jobs; ++i) fn(i);
  }
}

// The same with dynamic scheduling, for jobs of uneven cost.
template <class F>
inline void parallel_for_dynamic(int64_t jobs, int threads, F&& fn) {
  if (runs_parallel(jobs, threads)) {
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (int64_t i = 0; i < jobs; ++i) fn(i);
  } else {
    for (int64_t i = 0; i < jobs; ++i) fn(i);
  }
}

}  // namespace npcore
