#pragma once
// A read-only memory map of a whole file, so that large weight files are read without a copy.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace npcore {

class MappedFile {
 public:
  // Maps `path`; throws FormatError naming the path and the system's reason if it cannot.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;
};

}  // namespace npcore
