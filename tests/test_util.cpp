#include "tests/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "engine/rng.h"

namespace npcore::test {

std::string ref_dir() {
  const char* env = std::getenv("NPCORE_REF_DIR");
  std::string d = env && *env ? env : NPCORE_DEFAULT_REF_DIR;
  return std::filesystem::is_directory(d) ? d : std::string();
}

std::string fixture_dir() { return NPCORE_FIXTURE_DIR; }

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

double normalised_error(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  Tensor x = a.contiguous() ? a : a.clone(), y = b.contiguous() ? b : b.clone();
  double err = 0, ref = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    if (!std::isfinite(x.data()[i]) && std::isfinite(y.data()[i])) return INFINITY;
    err = std::max(err, double(std::fabs(x.data()[i] - y.data()[i])));
    ref = std::max(ref, double(std::fabs(y.data()[i])));
  }
  return ref > 0 ? err / ref : err;
}

}  // namespace npcore::test
