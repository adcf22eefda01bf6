#include "tests/test_util.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <catch2/catch.hpp>

#include "cores/ref_case.h"
#include "engine/rng.h"

namespace npcore::test {

std::string ref_dir() {
  const char* env = std::getenv("NPCORE_REF_DIR");
  if (env && *env) {
    if (!std::filesystem::is_directory(env))
      throw std::runtime_error(
          std::string("NPCORE_REF_DIR=") + env +
          " is not a folder (unset it to use ../shared/ref, or the fixtures without it)");
    return env;
  }
  return std::filesystem::is_directory(NPCORE_DEFAULT_REF_DIR) ? std::string(NPCORE_DEFAULT_REF_DIR)
                                                               : std::string();
}

std::string fixture_dir() {
  return NPCORE_FIXTURE_DIR;
}

std::vector<std::string> list_cases(const std::string& dir) {
  std::vector<std::string> out;
  if (dir.empty() || !std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string p = e.path().string();
    if (e.is_regular_file() && p.size() > 5 && p.compare(p.size() - 5, 5, ".json") == 0)
      out.push_back(p.substr(0, p.size() - 5));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Tensor random_tensor(const Shape& shape, uint64_t seed, float scale) {
  Tensor t(shape);
  Rng rng(seed);
  rng.fill_normal(t, 0.0f, scale);
  return t;
}

bool numa_balancing() {
  std::ifstream f("/proc/sys/kernel/numa_balancing");
  int v = 0;
  return f >> v && v != 0;
}

bool kernel_reclaims_pages() {
  if (numa_balancing()) return true;
  namespace fs = std::filesystem;
  const fs::path kdamonds = "/sys/kernel/mm/damon/admin/kdamonds";
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(kdamonds, ec)) {
    std::ifstream state(d.path() / "state");
    std::string on;
    if (!(state >> on) || on != "on") continue;
    for (const auto& ctx : fs::directory_iterator(d.path() / "contexts", ec)) {
      for (const auto& sch : fs::directory_iterator(ctx.path() / "schemes", ec)) {
        std::ifstream action(sch.path() / "action");
        std::string a;
        if (action >> a && a == "pageout") return true;
      }
    }
  }
  return false;
}

double normalised_error(const Tensor& a, const Tensor& b) {
  return compare_tensors("", a, b).normalised;
}

}  // namespace npcore::test

namespace npcore::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "npcore_test.XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("cannot create a temporary folder from " + tmpl);
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> TempDir::entries() const {
  std::vector<std::string> v;
  for (const auto& e : std::filesystem::directory_iterator(path_)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), size_t(a.numel()) * sizeof(float)) == 0;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  return std::filesystem::exists(path);
}

std::string quoted(const std::string& path) {
  return "'" + path + "'";
}

size_t CmdResult::err_lines() const {
  return size_t(std::count(err.begin(), err.end(), '\n'));
}

#ifdef NPCORE_TOOL_PATH
CmdResult run_npcore(const std::string& args, const TempDir& logs) {
  const std::string cmd = quoted(NPCORE_TOOL_PATH) + " " + args + " >" + quoted(logs.file("stdout")) + " 2>" +
                          quoted(logs.file("stderr")) + " </dev/null";
  const int rc = std::system(cmd.c_str());
  CmdResult r;
  r.status = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = read_file(logs.file("stdout"));
  r.err = read_file(logs.file("stderr"));
  return r;
}
#endif

std::vector<Isa> runnable_isas(const char* what) {
  std::vector<Isa> v;
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (cpu_supports(isa))
      v.push_back(isa);
    else
      WARN(what << ": ISA " << isa_name(isa) << " not run on this CPU (it runs up to " << isa_name(cpu_isa()) << ")");
  }
  return v;
}

}  // namespace npcore::test
