#pragma once
// Counts heap allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, and so every
// operator new) made by any thread while an AllocCount is alive, so tests can check that a steady-state
// run() allocates nothing. Works by interposing glibc's allocator in the test executable; elsewhere
// (or under a sanitizer) available() is false and count() stays 0.
#include <cstdint>

namespace npcore::test {

class AllocCount {
 public:
  AllocCount();
  ~AllocCount();
  AllocCount(const AllocCount&) = delete;
  AllocCount& operator=(const AllocCount&) = delete;
  // Allocations since construction, and the bytes they asked for.
  int64_t count() const;
  int64_t bytes() const;
  static bool available();

 private:
  int64_t start_, start_bytes_;
};

}  // namespace npcore::test
