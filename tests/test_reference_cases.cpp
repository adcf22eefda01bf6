// Every PyTorch reference case (../shared/ref: NAME.json, layers/NAME.json and the whole models of
// models/NAME.json, whose every output/<data_key> and act/core are compared) on every backend, each
// a section named by case and backend that prints its normalised error; a case passes when every
// compared tensor has max|y - ref| <= 1e-4 * max(1, max|ref|) (../shared/ref/README.md). Without
// ../shared/ref (a clone on its own), the copies in tests/fixtures run instead and the skipped cases
// are listed; "[mode]" says which ran (tools/setup.sh test prints it). NPCORE_REF_DIR set to a missing
// folder fails every test that looks for the dumps.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "cores/ref_case.h"
#include "engine/error.h"
#include "weights/safetensors.h"
#include "tests/test_util.h"

using namespace npcore;

namespace {

std::string base_name(const std::string& prefix) {
  return prefix.substr(prefix.rfind('/') + 1);
}

// Case prefixes of a reference folder: top-level cases, then layers/, then models/.
std::vector<std::string> cases_in(const std::string& dir) {
  std::vector<std::string> v = test::list_cases(dir);
  for (const std::string& p : test::list_cases(dir + "/layers")) v.push_back(p);
  for (const std::string& p : test::list_cases(dir + "/models")) v.push_back(p);
  return v;
}

// Case names relative to `dir` ("stacked2d_small", "layers/attention_k3_p1").
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> v;
  for (const std::string& p : cases_in(dir)) v.push_back(p.substr(dir.size() + 1));
  return v;
}

// tests/fixtures/reference_cases.txt: every case of ../shared/ref when the fixtures were copied.
std::vector<std::string> listed_cases() {
  std::ifstream list(test::fixture_dir() + "/reference_cases.txt");
  std::vector<std::string> v;
  std::string line;
  while (std::getline(list, line))
    if (!line.empty()) v.push_back(line);
  return v;
}

// The cases the tests run: the reference dumps, or without them the fixture copies.
const std::vector<std::string>& reference_cases() {
  static const std::vector<std::string> cases = [] {
    const std::string ref = test::ref_dir();
    return cases_in(ref.empty() ? test::fixture_dir() : ref);
  }();
  return cases;
}

// Runs every case on one backend, one section each (the native backend with `isa` and `precision`).
void run_all(Backend backend, Isa isa = Isa::Auto, Precision precision = Precision::Accurate) {
  const auto& cases = reference_cases();
  REQUIRE(!cases.empty());
  for (const std::string& prefix : cases) {
    DYNAMIC_SECTION(base_name(prefix) << " on " << backend_name(backend) << " " << isa_name(isa) << " "
                                      << precision_name(precision)) {
      CaseOptions opt;
      opt.engine.backend = backend;
      opt.engine.isa = isa;
      opt.engine.precision = precision;
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
      WARN(base_name(prefix) << " (" << r.kind << ") on " << backend_name(backend) << " (ISA "
                             << isa_name(resolve_isa(isa)) << ", " << precision_name(precision) << "): normalised error "
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

// The native backend with every instruction set this CPU runs below its best (the best one ran above),
// and precision "fast" (which may use Winograd for 5x5 and 7x7 where the FFT does not run) with the best;
// ISAs the CPU lacks are listed.
TEST_CASE("reference cases on the native backend with each ISA the CPU runs", "[ref][isa]") {
  for (Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) {
      WARN("native backend, ISA " << isa_name(isa) << ": not run, this CPU lacks it (it runs up to "
                                  << isa_name(cpu_isa()) << ")");
      continue;
    }
    if (isa != cpu_isa()) run_all(Backend::Native, isa);
  }
}
TEST_CASE("reference cases on the native backend, precision fast", "[ref][isa]") {
  run_all(Backend::Native, cpu_isa(), Precision::Fast);
}

TEST_CASE("all_backends() is covered by the reference-case tests above", "[ref]") {
  CHECK(all_backends() ==
        std::vector<Backend>{Backend::Reference, Backend::Gemm, Backend::OneDnn, Backend::Native});
}

TEST_CASE("test data: the reference dumps, or the fixtures with the skipped cases listed", "[ref][mode]") {
  const std::string ref = test::ref_dir();  // throws (fails) if NPCORE_REF_DIR names no folder
  const std::vector<std::string> listed = listed_cases();
  REQUIRE(listed.size() >= 40);
  if (!ref.empty()) {
    const std::vector<std::string> have = names_in(ref);
    WARN("test mode: reference dumps in " << ref << " (" << have.size() << " cases, every one run)");
    // The list the fixture mode reports against must be current.
    for (const std::string& c : listed) {
      INFO(c << " is in tests/fixtures/reference_cases.txt but not in " << ref);
      CHECK(std::find(have.begin(), have.end(), c) != have.end());
    }
    for (const std::string& c : have)
      if (std::find(listed.begin(), listed.end(), c) == listed.end())
        WARN(c << " is not in tests/fixtures/reference_cases.txt: add it there");
  } else {
    const std::vector<std::string> fx = names_in(test::fixture_dir());
    std::string run, skipped;
    size_t n = 0;
    for (const std::string& c : fx) run += (run.empty() ? "" : ", ") + c;
    for (const std::string& c : listed)
      if (std::find(fx.begin(), fx.end(), c) == fx.end()) skipped += (n++ ? ", " : "") + c;
    WARN("test mode: fixtures (../shared/ref is absent; set NPCORE_REF_DIR to use another folder): ran "
         << fx.size() << " fixture cases (" << run << "); skipped " << n << " reference cases: " << skipped);
    // Every fixture is a copy of a listed reference case.
    for (const std::string& c : fx) {
      INFO(c << " is not a listed reference case");
      CHECK(std::find(listed.begin(), listed.end(), c) != listed.end());
    }
    CHECK(n + fx.size() == listed.size());
  }
}

TEST_CASE("test data: NPCORE_REF_DIR naming a missing folder fails instead of falling back", "[ref][mode]") {
  const char* old = std::getenv("NPCORE_REF_DIR");
  const std::string saved = old ? old : "";
  ::setenv("NPCORE_REF_DIR", "/nonexistent/npcore-ref", 1);
  std::string msg;
  try {
    test::ref_dir();
  } catch (const std::runtime_error& e) {
    msg = e.what();
  }
  if (old) {
    ::setenv("NPCORE_REF_DIR", saved.c_str(), 1);
  } else {
    ::unsetenv("NPCORE_REF_DIR");
  }
  CHECK_THAT(msg, Catch::Contains("NPCORE_REF_DIR=/nonexistent/npcore-ref is not a folder"));
}

TEST_CASE("fixtures are unchanged copies of the reference cases", "[ref]") {
  const std::string ref = test::ref_dir();
  if (ref.empty()) {
    WARN("../shared/ref is absent: fixtures not compared");
    return;
  }
  const std::vector<std::string> fx = cases_in(test::fixture_dir());
  REQUIRE(fx.size() >= 10);
  size_t models = 0;
  for (const std::string& p : fx) {
    const std::string rel = p.substr(test::fixture_dir().size());
    const bool model = rel.rfind("/models/", 0) == 0;
    models += model;
    for (const char* suffix : {".json", ".weights.safetensors", ".io.safetensors"}) {
      INFO(rel << suffix);
      if (model && std::string(suffix) == ".io.safetensors") {
        // tools/make_model_fixtures.py keeps input, pupil_center and output/<data_key> (not act/core).
        const SafetensorsFile got = read_safetensors(p + suffix), want = read_safetensors(ref + rel + suffix);
        for (const std::string& name : want.tensors.order()) {
          if (name.rfind("act/", 0) == 0) continue;
          INFO(name);
          REQUIRE(got.tensors.contains(name));
          const Tensor a = got.tensors.get_float(name), b = want.tensors.get_float(name);
          REQUIRE(a.shape() == b.shape());
          CHECK(std::equal(a.data(), a.data() + a.numel(), b.data()));
        }
        CHECK(got.tensors.size() + 1 == want.tensors.size());  // all but act/core
        continue;
      }
      CHECK(test::read_file(p + suffix) == test::read_file(ref + rel + suffix));
    }
  }
  CHECK(models >= 3);
}
