#pragma once
// Converting a state_dict checkpoint (torch.save .pth in either format, or safetensors) to safetensors:
// the tensors unchanged (dtype, shape, bytes), by name, in the checkpoint's order, streamed from the
// memory-mapped input into a temporary file renamed into place, so the tensors are never held twice and a
// failure leaves no partial output. What `npcore convert` runs.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "weights/state_dict.h"

namespace npcore {

struct ConvertOptions {
  bool features_only = false;  // keep only tensors under "features."
  bool force = false;          // overwrite an existing output
  // Optional check of the tensors to be written (after the features filter): problems, one per entry;
  // any problem refuses the conversion with a WeightError naming `check_what` and listing them.
  std::function<std::vector<std::string>(const StateDict&)> check;
  std::string check_what;  // e.g. "vgg16's features"
  // Extra __metadata__ entries.
  std::map<std::string, std::string> metadata;
};

struct ConvertReport {
  size_t tensors = 0;         // written
  size_t dropped = 0;         // left out by features_only
  uint64_t tensor_bytes = 0;  // written
  uint64_t copied_bytes = 0;  // gathered from non-dense views (the rest streamed from the map)
  std::string source_format;  // "pytorch zip", "pytorch legacy", "safetensors"
  std::map<std::string, std::string> metadata;  // as written
};

// Converts `in` to `out`. __metadata__ holds source (the input's file name), source_bytes (its size),
// source_format, and opt.metadata. Throws FormatError (unreadable input, existing output without force,
// nothing left to write, I/O failure) or WeightError (check problems).
ConvertReport convert_checkpoint(const std::string& in, const std::string& out, const ConvertOptions& opt);

}  // namespace npcore
