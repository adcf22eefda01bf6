// Every PyTorch reference case (../shared/ref: NAME.json and layers/NAME.json) on every backend, each
// a section named by case and backend that prints its normalised error; a case passes when every
// compared tensor has max|y - ref| <= 1e-4 * max(1, max|ref|) (../shared/ref/README.md). Without
// ../shared/ref (a clone on its own), the copies in tests/fixtures run instead and the skipped cases
// are listed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>

#include "cores/ref_case.h"
#include "engine/error.h"
#include "tests/test_util.h"

using namespace npcore;

namespace {

std::string base_name(const std::string& prefix) {
  return prefix.substr(prefix.rfind('/') + 1);
}

// Case prefixes of a reference folder: top-level cases, then layers/.
std::vector<std::string> cases_in(const std::string& dir) {
  std::vector<std::string> v = test::list_cases(dir);
  for (const std::string& p : test::list_cases(dir + "/layers")) v.push_back(p);
  return v;
}

// The folder the cases come from; warns once, listing what is skipped, when it is the fixtures.
const std::vector<std::string>& reference_cases() {
  static const std::vector<std::string> cases = [] {
    const std::string ref = test::ref_dir();
    if (!ref.empty()) return cases_in(ref);
    std::vector<std::string> fx = cases_in(test::fixture_dir());
    // tests/fixtures/reference_cases.txt lists every case of ../shared/ref when the fixtures were copied.
    std::set<std::string> have;
    for (const auto& p : fx) have.insert(p.substr(test::fixture_dir().size() + 1));
    std::ifstream list(test::fixture_dir() + "/reference_cases.txt");
    std::string line, skipped;
    size_t n = 0;
    while (std::getline(list, line))
      if (!line.empty() && !have.count(line)) {
        skipped += (n++ ? ", " : "") + line;
      }
    WARN("../shared/ref is absent (set NPCORE_REF_DIR to use another folder): running the "
         << fx.size() << " fixture cases in tests/fixtures; skipped " << n
         << " reference cases: " << skipped);
    return fx;
  }();
  return cases;
}

// Runs every case on one backend, one section each.
void run_all(Backend backend) {
  const auto& cases = reference_cases();
  REQUIRE(!cases.empty());
  for (const std::string& prefix : cases) {
    DYNAMIC_SECTION(base_name(prefix) << " on " << backend_name(backend)) {
      CaseOptions opt;
      opt.engine.backend = backend;
      CaseResult r;
      try {
        r = run_reference_case(prefix, opt);
      } catch (const Error& e) {
        FAIL(base_name(prefix) << " on " << backend_name(backend) << " could not run: " << e.what());
      }
      std::ostringstream detail;
      for (const TensorCheck& c : r.checks)
        detail << "\n    " << c.name << ": max|y-ref| " << c.max_abs_err << ", max|ref| " << c.max_abs_ref
               << ", normalised " << c.normalised << ", bound " << c.bound << (c.pass ? "" : "  FAIL ")
               << c.problem;
      WARN(base_name(prefix) << " (" << r.kind << ") on " << backend_name(backend) << ": normalised error "
                             << r.worst_normalised << " (" << r.seconds << " s)" << detail.str());
      CHECK(r.pass);
    }
  }
}

}  // namespace

TEST_CASE("reference cases on the reference backend", "[ref]") {
  run_all(Backend::Reference);
}
TEST_CASE("reference cases on the gemm backend", "[ref]") {
  run_all(Backend::Gemm);
}
TEST_CASE("reference cases on the onednn backend", "[ref]") {
  run_all(Backend::OneDnn);
}

TEST_CASE("reference cases on the native backend", "[ref]") {
  run_all(Backend::Native);
}

TEST_CASE("all_backends() is covered by the reference-case tests above", "[ref]") {
  CHECK(all_backends() == std::vector<Backend>{Backend::Reference, Backend::Gemm, Backend::OneDnn, Backend::Native});
}

TEST_CASE("fixtures are unchanged copies of the reference cases", "[ref]") {
  const std::string ref = test::ref_dir();
  if (ref.empty()) {
    WARN("../shared/ref is absent: fixtures not compared");
    return;
  }
  const std::vector<std::string> fx = cases_in(test::fixture_dir());
  REQUIRE(fx.size() >= 10);
  for (const std::string& p : fx) {
    const std::string rel = p.substr(test::fixture_dir().size());
    for (const char* suffix : {".json", ".weights.safetensors", ".io.safetensors"}) {
      INFO(rel << suffix);
      CHECK(test::read_file(p + suffix) == test::read_file(ref + rel + suffix));
    }
  }
}
