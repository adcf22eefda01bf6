#pragma once
// Running one PyTorch reference case (../shared/ref/README.md): NAME.json describes a core ("core") or a
// single module ("module"), NAME.weights.safetensors holds its state_dict, NAME.io.safetensors its
// `input`, `output` and, for cores, `act/<block>` outputs (modules: extra tensors such as `filter_bank`).
// A case passes when every compared tensor has max|y - ref| <= 1e-4 * max(1, max|ref|).
#include <string>
#include <vector>

#include "layers/layer.h"
#include "weights/weights_file.h"

namespace npcore {

struct TensorCheck {
  std::string name;         // "output", "act/features.layer0", "filter_bank"
  double max_abs_err = 0;   // max |y - ref|
  double max_abs_ref = 0;   // max |ref|
  double normalised = 0;    // max_abs_err / max_abs_ref (max_abs_err if ref is all zero)
  double bound = 0;         // 1e-4 * max(1, max|ref|)
  bool pass = false;
  std::string problem;      // set when the tensor could not be compared (missing, shape)
};

struct CaseResult {
  std::string name;         // the case's base name
  std::string kind;         // core or module class name
  std::vector<TensorCheck> checks;
  bool pass = false;
  double worst_normalised = 0;
  double seconds = 0;       // build + load + prepare + run
  // Cores: the first block, in the engine's order, whose act/ tensor fails ("features.layer1"), with its
  // normalised error; empty when every block passes (or the case has no act/ tensors).
  std::string first_departing_block;
  double first_departing_error = 0;
  // The convolutions the case ran, in order, each with its algorithm and ISA (a model's: its core's).
  std::vector<ConvRun> convs;
};

struct CaseOptions {
  EngineOptions engine;
  std::string weights;      // replaces PREFIX.weights.safetensors when set (.safetensors or .pth)
};

// The case prefix of any of a case's files ("x/NAME.json", "x/NAME.io.safetensors", "x/NAME.pth", ...
// all give "x/NAME"), so that a shell glob over a folder names each case.
std::string case_prefix(const std::string& path);
// Case prefixes of `paths` in order, each once.
std::vector<std::string> case_prefixes(const std::vector<std::string>& paths);

// The tolerance rule of ../shared/ref/README.md.
TensorCheck compare_tensors(const std::string& name, const Tensor& got, const Tensor& ref);

// Runs a case. `prefix` may end in ".json". Throws npcore::Error if the case cannot be built or
// loaded at all (the message names the file); numeric failures are reported in the result.
CaseResult run_reference_case(const std::string& prefix, const CaseOptions& opt);

}  // namespace npcore
