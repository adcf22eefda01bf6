#pragma once
// Reading torch.save files that hold a state_dict (a dict or OrderedDict of tensors), in both layouts:
//   zip (torch >= 1.6): <archive>/data.pkl, the pickle, whose persistent ids name storages stored as
//       entries <archive>/data/<key>; read with libzip.
//   legacy (torch < 1.6, or _use_new_zipfile_serialization=False): five pickles in a row (magic number,
//       protocol version, system info, the object, the sorted list of storage keys), then each storage
//       as an 8-byte little-endian element count followed by its raw bytes.
// Pickles go through the restricted TorchUnpickler (weights/torch_pickle.h): nothing is executed.
// Tensors honour storage offsets and strides; a dense tensor of a stored (uncompressed) zip entry or a
// legacy storage points into the memory-mapped file, so a large checkpoint is not held twice; other
// tensors (non-contiguous strides, compressed entries) are gathered into dense copies.
// weights/weights_file.h chooses between this reader and the safetensors one.
#include <cstdint>
#include <memory>
#include <string>

#include "weights/state_dict.h"

namespace npcore {

enum class TorchFormat { Zip, Legacy };
const char* torch_format_name(TorchFormat f);  // "zip", "legacy"

struct TorchCheckpoint {
  StateDict tensors;  // in the order the pickle lists them
  TorchFormat format = TorchFormat::Zip;
  uint64_t file_bytes = 0;
  uint64_t copied_bytes = 0;  // tensor bytes gathered into copies (non-dense views, compressed entries)
};

// Memory-maps and reads `path`. Throws FormatError naming the file and the problem (not a checkpoint,
// refused pickle content, truncated or inconsistent storages, a tensor beyond its storage or repeating
// its storage's elements into more than 4 x its bytes plus 1 MiB, copies (gathered or decompressed)
// totalling more than 4 x the file plus 1 MiB, a stored zip entry failing its CRC-32, ...). With TensorData::ShapesOnly, compressed and strided tensors are not read or gathered (data null).
TorchCheckpoint read_torch_checkpoint(const std::string& path, TensorData mode = TensorData::Load);
// The same from bytes in memory; `source` names them in messages, `owner` keeps them alive for as long
// as the returned tensors.
TorchCheckpoint parse_torch_checkpoint(const uint8_t* data, size_t size, const std::string& source,
                                       std::shared_ptr<const void> owner, TensorData mode = TensorData::Load);

}  // namespace npcore
