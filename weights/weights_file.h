#pragma once
// The one place that tells file formats apart and reads a state_dict from a file, whatever its format:
// what load_weights_file, `npcore convert` and `npcore info` use.
#include <cstdint>
#include <map>
#include <string>

#include "weights/state_dict.h"

namespace npcore {

// What the first bytes of a file say it is.
enum class FileKind {
  Safetensors,  // an 8-byte header length, then '{'
  TorchZip,     // a zip archive (torch.save since 1.6): local header "PK\3\4" or empty "PK\5\6"
  TorchLegacy,  // a binary pickle, protocol 2-5 (torch.save before 1.6)
  TorchTar,     // a tar archive (torch < 0.4), which is not supported
  Npy,          // NumPy's "\x93NUMPY"
  Unknown,
};
FileKind sniff_file_kind(const uint8_t* data, size_t size);
const char* file_kind_name(FileKind k);  // "safetensors", "pytorch zip", "pytorch legacy", ...

// A state_dict and what its file said about it.
struct StateDictFile {
  StateDict tensors;                            // in the file's order
  std::string format;                           // "safetensors", "pytorch zip", "pytorch legacy"
  std::map<std::string, std::string> metadata;  // safetensors __metadata__ (empty for checkpoints)
  uint64_t file_bytes = 0;
  uint64_t copied_bytes = 0;  // tensor bytes gathered into copies (strided views, compressed entries)
};

// Reads (memory-maps) a safetensors file or a torch.save checkpoint, told apart by content; a file that
// is neither is read as its extension says (.safetensors, or .pth/.pt/.bin) so that the message explains
// what is wrong with it, and otherwise refused. Throws FormatError naming the file.
StateDictFile read_state_dict(const std::string& path, TensorData mode = TensorData::Load);

// The tensors of read_state_dict(path): a core's or model's weights from .safetensors or .pth (zip or
// legacy format). Tensors stay in the memory-mapped file where possible.
StateDict load_weights_file(const std::string& path);

}  // namespace npcore
