// libFuzzer target: core, module and whole-model descriptions (JSON) on arbitrary text: make_core /
// make_module / make_model, then the core's output shape of a small input, as `npcore run` would ask.
// Only npcore::Error may come out.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cores/factory.h"
#include "cores/model.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto core = npcore::make_core(text, "fuzz.json");
    core->output_shape({1, core->input_channels(), 32, 32});
  } catch (const npcore::Error&) {
  }
  try {
    npcore::make_module(text, "fuzz.json");
  } catch (const npcore::Error&) {
  }
  try {
    npcore::make_model(text, "fuzz.json");
  } catch (const npcore::Error&) {
  }
  return 0;
}
