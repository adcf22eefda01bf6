#pragma once
// Helpers shared by the tests: where the reference dumps are, seeded random tensors, the normalised
// error max|a - b| / max|b| by which closeness is judged, and scratch folders and files.
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace npcore::test {

// ../shared/ref (or $NPCORE_REF_DIR); empty if the folder is absent (a clone without shared/).
std::string ref_dir();
// tests/fixtures: small reference cases kept in the project for clones without ../shared.
std::string fixture_dir();
// Case prefixes (path without .json) of every NAME.json directly in `dir`, sorted.
std::vector<std::string> list_cases(const std::string& dir);

// A tensor of standard-normal values from a fixed seed.
Tensor random_tensor(const Shape& shape, uint64_t seed, float scale = 1.0f);
// max|a - b| / max|b| (max|a - b| if b is all zero); infinity on shape mismatch or non-finite a.
double normalised_error(const Tensor& a, const Tensor& b);

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

// Writes / reads a whole file as bytes (throws std::runtime_error on failure).
void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace npcore::test
