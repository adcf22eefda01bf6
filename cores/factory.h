#pragma once
// Building cores and single layers from their JSON descriptions:
//   {"core": "Stacked2dCore", "config": {...neuralpredictors keyword arguments...}}
//   {"module": "AttentionConv", "config": {...constructor arguments...}}
// Other top-level fields (input_shape, seed, note, ...) are metadata and ignored.
#include <memory>
#include <string>
#include <vector>

#include "cores/core.h"

namespace npcore {

// Parses a core description; `source` (a file name) prefixes messages. Throws ConfigError.
std::unique_ptr<Core> make_core(const std::string& json_text, const std::string& source);
// Reads and parses a core description file.
std::unique_ptr<Core> load_core(const std::string& path);
// Parses a single-module description (the ../shared/ref/layers cases); the module gets an empty name,
// so its state_dict keys are those of the module on its own ("weight", "key_conv.bias").
std::unique_ptr<Layer> make_module(const std::string& json_text, const std::string& source);

// Names of the supported cores and modules.
const std::vector<std::string>& core_names();
const std::vector<std::string>& module_names();

// Reads a whole (small) file; throws FormatError naming it.
std::string read_text_file(const std::string& path, size_t max_bytes = 16u << 20);

}  // namespace npcore
