#pragma once
// Files `npcore run` reads and writes, for cores (tools/cmd_run.cpp) and whole models (tools/cmd_model.cpp)
// alike: input tensors from .npy or .safetensors, and the check of an output path before any work.
#include <string>

#include "engine/tensor.h"

namespace npcore::tool {

// A tensor from a .npy file, or from a .safetensors file: the tensor named `preferred`, or the only one.
// FormatError naming the file (and the tensors it holds) otherwise.
Tensor read_tensor_file(const std::string& path, const std::string& preferred);

// Input images: read_tensor_file(path, "input"), (N, C, H, W) with N > 0, or (C, H, W) taken as a batch of
// one. ShapeError naming the file otherwise.
Tensor read_input_images(const std::string& path);

// Refuses an output path that could not be written (type other than .npy/.safetensors: UsageError; missing
// folder, or a folder in its place: FormatError), before any work is done.
void check_output_path(const std::string& path);

}  // namespace npcore::tool
