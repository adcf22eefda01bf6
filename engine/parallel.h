#pragma once
// The one way the engine runs loops in parallel: one OpenMP team of a fixed size, chosen when a kernel
// or op is planned, never nested, and no team at all for one thread or one job (libgomp allocates a
// team for every region, single-thread ones included, which a steady-state run must not do).
#include <omp.h>

#include <cstdint>

namespace npcore {

namespace detail {
inline thread_local int plan_threads = 0;  // set by PlanThreads; 0: OpenMP's setting
}

// The thread count a kernel or op made now will use: the count of the enclosing PlanThreads scope, else
// OpenMP's current setting for this thread. Kernels call this once, when made, and pass the count to
// parallel_for (num_threads clause); only OneDnnThreads below calls omp_set_num_threads.
inline int planned_threads() {
  if (detail::plan_threads > 0) return detail::plan_threads;
  return omp_get_max_threads() > 0 ? omp_get_max_threads() : 1;
}

// For the scope's life, planned_threads() on this thread returns n (n > 0; n <= 0 changes nothing): how a
// core plans with its own thread count without touching the program's OpenMP settings.
class PlanThreads {
 public:
  explicit PlanThreads(int n) : saved_(detail::plan_threads) {
    if (n > 0) detail::plan_threads = n;
  }
  ~PlanThreads() { detail::plan_threads = saved_; }
  PlanThreads(const PlanThreads&) = delete;
  PlanThreads& operator=(const PlanThreads&) = delete;

 private:
  int saved_;
};

// oneDNN (OpenMP runtime) sizes its team from omp_get_max_threads() at execute time and has no per-call
// setting: for the scope's life this thread's OpenMP count is n (n > 0), restored after. Used only around
// oneDNN calls of the onednn backend.
class OneDnnThreads {
 public:
  explicit OneDnnThreads(int n) : saved_(omp_get_max_threads()), set_(n > 0 && n != saved_) {
    if (set_) omp_set_num_threads(n);
  }
  ~OneDnnThreads() {
    if (set_) omp_set_num_threads(saved_);
  }
  OneDnnThreads(const OneDnnThreads&) = delete;
  OneDnnThreads& operator=(const OneDnnThreads&) = delete;

 private:
  int saved_;
  bool set_;
};

// Whether a loop of `jobs` iterations would open a team of `threads`.
inline bool runs_parallel(int64_t jobs, int threads) { return threads > 1 && jobs > 1 && !omp_in_parallel(); }

namespace detail {
inline thread_local int loop_slot = 0;  // see thread_slot()
// Sets this thread's slot for a scope (restored after, exceptions included).
class SlotScope {
 public:
  explicit SlotScope(int slot) : saved_(loop_slot) { loop_slot = slot; }
  ~SlotScope() { loop_slot = saved_; }
  SlotScope(const SlotScope&) = delete;
  SlotScope& operator=(const SlotScope&) = delete;

 private:
  int saved_;
};
// A forward's thread team (cores/core.h): for the scope's life this thread is one of a team that runs
// every op of a plan together, and parallel_for / parallel_for_dynamic share their loops out within that
// team (an OpenMP worksharing loop, with its barrier at the end) instead of opening a team each. Only
// for ops that say they are team-safe (Op::team_safe: every thread may run their code outside the loops,
// which writes nothing shared) and whose loops are sized for the team's thread count.
inline thread_local bool in_team = false;
class TeamScope {
 public:
  TeamScope() : saved_(in_team) { in_team = true; }
  ~TeamScope() { in_team = saved_; }
  TeamScope(const TeamScope&) = delete;
  TeamScope& operator=(const TeamScope&) = delete;

 private:
  bool saved_;
};
}  // namespace detail

using detail::TeamScope;

// Inside fn of parallel_for / parallel_for_dynamic: this thread's index in the team that loop opened, 0
// when the loop runs serially: the per-thread scratch slot (slots sized by the kernel's thread count). Not
// omp_get_thread_num(), which inside a team the loop did not open (a plan run by a user's OpenMP team, or
// by the batch split of cores/core.h) numbers that team's threads, past the kernel's slots.
inline int thread_slot() { return detail::loop_slot; }

// fn(i) for i in [0, jobs), statically split (contiguous ranges per thread).
template <class F>
inline void parallel_for(int64_t jobs, int threads, F&& fn) {
  if (detail::in_team) {  // a forward's team: every member arrives here; share the loop out
    detail::SlotScope slot(omp_get_thread_num());
#pragma omp for schedule(static)
    for (int64_t i = 0; i < jobs; ++i) fn(i);
  } else if (runs_parallel(jobs, threads)) {
#pragma omp parallel num_threads(threads)
    {
      detail::SlotScope slot(omp_get_thread_num());
#pragma omp for schedule(static)
      for (int64_t i = 0; i < jobs; ++i) fn(i);
    }
  } else {
    detail::SlotScope slot(0);
    for (int64_t i = 0; i < jobs; ++i) fn(i);
  }
}

// The same with dynamic scheduling, for jobs of uneven cost.
template <class F>
inline void parallel_for_dynamic(int64_t jobs, int threads, F&& fn) {
  if (detail::in_team) {
    detail::SlotScope slot(omp_get_thread_num());
#pragma omp for schedule(dynamic)
    for (int64_t i = 0; i < jobs; ++i) fn(i);
  } else if (runs_parallel(jobs, threads)) {
#pragma omp parallel num_threads(threads)
    {
      detail::SlotScope slot(omp_get_thread_num());
#pragma omp for schedule(dynamic)
      for (int64_t i = 0; i < jobs; ++i) fn(i);
    }
  } else {
    detail::SlotScope slot(0);
    for (int64_t i = 0; i < jobs; ++i) fn(i);
  }
}

}  // namespace npcore
