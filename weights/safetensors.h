#pragma once
// safetensors (huggingface's format): 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, optional "__metadata__" (a string map), then the raw data.
// The reader validates every field before any byte is used; the writer writes atomically.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "weights/state_dict.h"

namespace npcore {

struct SafetensorsFile {
  StateDict tensors;
  std::map<std::string, std::string> metadata;
};

// Reads (memory-maps) a safetensors file; throws FormatError naming the file, the tensor and the rule
// on any malformed header, bad dtype, inconsistent shape/offsets, overlap, or truncation.
SafetensorsFile read_safetensors(const std::string& path);
// Parses a safetensors image already in memory; `source` names it in messages. The bytes must outlive
// the returned tensors unless `owner` keeps them alive.
SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& source,
                                  std::shared_ptr<const void> owner);

// Writes tensors in the given order to `path` via a temporary file renamed into place, so that a
// failure leaves no partial file. Throws FormatError on I/O failure.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, StoredTensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// Convenience: float32 tensors.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A file written under a temporary name in the target's folder and renamed into place by commit();
// destroyed without commit(), it leaves nothing behind.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);  // throws FormatError on I/O failure
  void commit();

 private:
  [[noreturn]] void fail(const std::string& what);
  std::string path_, tmp_;
  int fd_ = -1;
};

// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace npcore
