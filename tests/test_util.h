#pragma once
// Helpers shared by the tests: where the reference dumps are, seeded random tensors, the normalised
// error max|a - b| / max|b| by which closeness is judged, scratch folders and files, and running the
// built `npcore` command.
#include <string>
#include <vector>

#include "engine/isa.h"
#include "engine/tensor.h"

namespace npcore::test {

// ../shared/ref, or $NPCORE_REF_DIR if set; empty if the default folder is absent (a clone without
// shared/: the tests fall back to tests/fixtures). Throws std::runtime_error if NPCORE_REF_DIR is set
// but is not a folder: a mistyped path must fail the tests, not quietly run the fixtures instead.
std::string ref_dir();
// tests/fixtures: small reference cases kept in the project for clones without ../shared.
std::string fixture_dir();
// Case prefixes (path without .json) of every NAME.json directly in `dir`, sorted.
std::vector<std::string> list_cases(const std::string& dir);

// The vector ISAs (avx2, avx512) this CPU runs; a Catch2 WARN names each one it does not, with `what`.
std::vector<Isa> runnable_isas(const char* what);

// A tensor of standard-normal values from a fixed seed.
Tensor random_tensor(const Shape& shape, uint64_t seed, float scale = 1.0f);
// max|a - b| / max|b| (max|a - b| if b is all zero); infinity on shape mismatch or non-finite a.
// compare_tensors (cores/ref_case.h) computes it: the tests judge closeness as `npcore check` does.
double normalised_error(const Tensor& a, const Tensor& b);
// Whether Linux's automatic NUMA balancing is on: it unmaps pages now and then to see who touches them, and
// its hinting faults count as page faults of code that touches no new memory (tests of "no page faults"
// skip that check then).
bool numa_balancing();
// Whether the kernel may take pages back from a running process on its own: NUMA balancing (above), or a
// running DAMON kdamond with a pageout scheme (proactive reclaim of memory it judges cold, as on this
// project's CI machine). A page so reclaimed faults back in on its next touch, in code that allocates
// nothing. Tests that assert "no page faults" either retry (tests/test_plan.cpp) or only warn then.
bool kernel_reclaims_pages();

// A fresh folder under the system's temporary folder, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // path()/name
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the folder (hidden ones included), sorted.
  std::vector<std::string> entries() const;

 private:
  std::string path_;
};

// Same shape and the same bytes (so -0 differs from +0, and a NaN equals the same NaN): how tests say
// two paths gave one result, not merely close ones.
bool bitwise_equal(const Tensor& a, const Tensor& b);

// Writes / reads a whole file as bytes (throws std::runtime_error on failure).
void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);

// `path` in single quotes, for a shell command line.
std::string quoted(const std::string& path);

// What a run of the npcore command printed and returned.
struct CmdResult {
  int status = -1;  // exit status, or -1 if it did not exit normally
  std::string out, err;
  size_t err_lines() const;  // lines on stderr
};
#ifdef NPCORE_TOOL_PATH
// Runs `npcore ARGS` (ARGS as a shell would split them) with stdout and stderr captured in files in `logs`.
CmdResult run_npcore(const std::string& args, const TempDir& logs);
#endif

}  // namespace npcore::test
