#include "tests/alloc_count.h"

#include <atomic>
#include <cerrno>
#include <cstddef>

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define NPCORE_COUNT_ALLOCS 1
#else
#define NPCORE_COUNT_ALLOCS 0
#endif

namespace {
std::atomic<int> g_active{0};
std::atomic<int64_t> g_allocs{0}, g_bytes{0};
inline void note(size_t bytes) {
  if (g_active.load(std::memory_order_relaxed) > 0) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    g_bytes.fetch_add(int64_t(bytes), std::memory_order_relaxed);
  }
}
}  // namespace

#if NPCORE_COUNT_ALLOCS
// glibc's own entry points; every allocation still goes to glibc, these only count on the way.
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);

void* malloc(size_t n) {
  note(n);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
  note(n * m);
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
  note(n);
  return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
  note(n);
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
  note(n);
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
  note(n);
  void* p = __libc_memalign(a, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}
#endif

namespace npcore::test {

AllocCount::AllocCount() {
  g_active.fetch_add(1);
  start_ = g_allocs.load();
  start_bytes_ = g_bytes.load();
}

AllocCount::~AllocCount() {
  g_active.fetch_sub(1);
}

int64_t AllocCount::count() const {
  return g_allocs.load() - start_;
}

int64_t AllocCount::bytes() const {
  return g_bytes.load() - start_bytes_;
}

bool AllocCount::available() {
  return NPCORE_COUNT_ALLOCS != 0;
}

}  // namespace npcore::test
