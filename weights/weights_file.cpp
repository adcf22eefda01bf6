#include "weights/weights_file.h"
#include "engine/guard.h"

#include <cstring>

#include "engine/error.h"
#include "weights/mapped_file.h"
#include "weights/safetensors.h"
#include "weights/text_util.h"
#include "weights/torch_checkpoint.h"

namespace npcore {

FileKind sniff_file_kind(const uint8_t* data, size_t size) {
  if (size >= 4 && (std::memcmp(data, "PK\x03\x04", 4) == 0 || std::memcmp(data, "PK\x05\x06", 4) == 0))
    return FileKind::TorchZip;
  if (size >= 2 && data[0] == 0x80 && data[1] >= 2 && data[1] <= 5) return FileKind::TorchLegacy;
  if (size >= 6 && std::memcmp(data, "\x93NUMPY", 6) == 0) return FileKind::Npy;
  if (size > 262 && std::memcmp(data + 257, "ustar", 5) == 0) return FileKind::TorchTar;
  // The length is left to the safetensors reader, whose message says what is wrong with it.
  if (size > 8 && data[8] == '{') return FileKind::Safetensors;
  return FileKind::Unknown;
}

const char* file_kind_name(FileKind k) {
  switch (k) {
    case FileKind::Safetensors:
      return "safetensors";
    case FileKind::TorchZip:
      return "pytorch zip";
    case FileKind::TorchLegacy:
      return "pytorch legacy";
    case FileKind::TorchTar:
      return "pytorch tar";
    case FileKind::Npy:
      return "npy";
    case FileKind::Unknown:
      break;
  }
  return "unknown";
}

static StateDictFile read_state_dict_unguarded(const std::string& path, TensorData mode) {
  auto file = MappedFile::open(path);
  const FileKind kind = sniff_file_kind(file->data(), file->size());
  StateDictFile out;
  out.file_bytes = file->size();
  auto torch = [&] {
    TorchCheckpoint ck = parse_torch_checkpoint(file->data(), file->size(), path, file, mode);
    out.format = std::string("pytorch ") + torch_format_name(ck.format);
    out.copied_bytes = ck.copied_bytes;
    out.tensors = std::move(ck.tensors);
  };
  auto safetensors = [&] {
    SafetensorsFile f = parse_safetensors(file->data(), file->size(), path, file);
    out.format = "safetensors";
    out.tensors = std::move(f.tensors);
    out.metadata = std::move(f.metadata);
  };
  switch (kind) {
    case FileKind::Safetensors:
      safetensors();
      return out;
    case FileKind::TorchZip:
    case FileKind::TorchLegacy:
    case FileKind::TorchTar:
      torch();
      return out;
    case FileKind::Npy:
      throw FormatError(path +
                        ": a NumPy .npy array, not a state_dict (weights are .safetensors or a "
                        "torch.save checkpoint such as .pth)");
    case FileKind::Unknown:
      break;
  }
  // Neither by content: the extension decides which reader explains what is wrong.
  if (ends_with(path, ".safetensors")) {
    safetensors();
    return out;
  }
  if (ends_with(path, ".pth") || ends_with(path, ".pt") || ends_with(path, ".bin")) {
    torch();
    return out;
  }
  throw FormatError(path +
                    ": unsupported weights file (expected .safetensors, or a torch.save checkpoint such as "
                    ".pth/.pt)");
}

StateDict load_weights_file(const std::string& path) { return read_state_dict(path).tensors; }

StateDictFile read_state_dict(const std::string& path, TensorData mode) {
  return guard_call(path, [&] { return read_state_dict_unguarded(path, mode); });
}

}  // namespace npcore
