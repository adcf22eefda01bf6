// libFuzzer target: the .npy reader on arbitrary bytes. Only npcore::Error may come out.
#include <cstddef>
#include <cstdint>

#include "engine/error.h"
#include "weights/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    npcore::Tensor t = npcore::parse_npy(data, size, "fuzz.npy");
    volatile float sink = 0;
    for (int64_t i = 0; i < t.numel(); i += 17) sink = sink + t.data()[i];
  } catch (const npcore::Error&) {
  }
  return 0;
}
