// libFuzzer target: the torch.save reader (zip and legacy layouts) and the restricted unpickler on
// arbitrary bytes. Only npcore::Error may come out.
#include <cstddef>
#include <cstdint>

#include "engine/error.h"
#include "weights/torch_checkpoint.h"
#include "weights/torch_pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    npcore::TorchCheckpoint ck = npcore::parse_torch_checkpoint(data, size, "fuzz.pth", nullptr);
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : ck.tensors.tensors())
      for (size_t i = 0; i < t.nbytes; i += 61) sink = sink ^ t.data[i];
  } catch (const npcore::Error&) {
  }
  // The same bytes as one pickle (a legacy file starts with one; a zip's data.pkl is one).
  try {
    npcore::TorchUnpickler up("fuzz.pkl");
    up.load(data, size);
  } catch (const npcore::Error&) {
  }
  return 0;
}
