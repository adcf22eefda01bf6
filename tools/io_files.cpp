#include "tools/io_files.h"

#include <filesystem>
#include <vector>

#include "engine/error.h"
#include "tools/commands.h"
#include "weights/npy.h"
#include "weights/safetensors.h"
#include "weights/text_util.h"

namespace npcore::tool {

Tensor read_tensor_file(const std::string& path, const std::string& preferred) {
  if (ends_with(path, ".npy")) return read_npy(path);
  if (!ends_with(path, ".safetensors"))
    throw FormatError(path + ": unsupported input file type (expected .npy or .safetensors)");
  SafetensorsFile f = read_safetensors(path);
  const StateDict& sd = f.tensors;
  if (sd.contains(preferred)) return sd.get_float(preferred);
  if (sd.size() == 1) return sd.get_float(sd.order().front());
  std::vector<std::string> quoted;
  for (const std::string& n : sd.order()) quoted.push_back("'" + printable(n) + "'");
  const std::string names = list_some(quoted, 12, ", ");
  throw FormatError(path + ": holds " + std::to_string(sd.size()) + " tensors (" +
                    (names.empty() ? std::string("none") : names) + "); expected the tensor named '" + preferred +
                    "' or a single tensor");
}

Tensor read_input_images(const std::string& path) {
  Tensor t = read_tensor_file(path, "input");
  if (t.rank() == 3) t = t.reshape({1, t.dim(0), t.dim(1), t.dim(2)});
  if (t.rank() != 4)
    throw ShapeError(path + ": input has shape " + t.shape().str() +
                     "; it must be (N, C, H, W), or (C, H, W) for a single image");
  if (t.dim(0) == 0) throw ShapeError(path + ": input has shape " + t.shape().str() + ", a batch of zero images");
  return t;
}

void check_output_path(const std::string& path) {
  if (!ends_with(path, ".npy") && !ends_with(path, ".safetensors"))
    throw UsageError(path + ": unsupported output file type (expected .npy or .safetensors)");
  const std::filesystem::path p(path);
  const std::filesystem::path dir = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw FormatError(path + ": cannot write there: folder " + dir.string() + " does not exist");
  if (std::filesystem::is_directory(p, ec)) throw FormatError(path + ": is a folder, not a file name");
}

}  // namespace npcore::tool
