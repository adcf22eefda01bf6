// libFuzzer target: the safetensors reader on arbitrary bytes. Only npcore::Error may come out; anything
// else (a crash, a sanitizer report, a bare std:: exception) is a finding.
#include <cstddef>
#include <cstdint>

#include "engine/error.h"
#include "weights/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    npcore::SafetensorsFile f = npcore::parse_safetensors(data, size, "fuzz.safetensors", nullptr);
    // Touch every tensor's bytes, as a loader would.
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : f.tensors.tensors())
      for (size_t i = 0; i < t.nbytes; i += 61) sink = sink ^ t.data[i];
  } catch (const npcore::Error&) {
  }
  return 0;
}
