#pragma once
// Packed weights made once per layer and shared by the kernels of every input shape.
//
// A conv kernel (engine/conv.h) is made per (ConvSpec, input shape), but its packed weights depend only on
// the weights and on the packed form: the algorithm, the ISA and the blocking (output channels per
// micro-tile, ...). The layer that owns the weights (layers/conv2d.cpp) holds one WeightPacks and points
// ConvSpec::packs at it; a kernel asks it for its form with shared_pack(), which packs on the first request
// and hands every later one (any input shape, any thread) the same immutable buffer. Without a WeightPacks
// (ConvSpec::packs null: conv_once, tests, tools) the kernel packs a private copy, as before.
//
// Adding a packed form is one call in the kernel's constructor:
//   PackedRef w = shared_pack(spec, PackKey{"fft", isa, {tile, ocb}}, &pack_fft_weights);
// with pack_fft_weights(const ConvSpec&, const PackKey&) -> PackedWeights a baseline function (not in a
// per-ISA namespace) that reads its blocking from key.blocking.
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "engine/isa.h"
#include "engine/tensor.h"

namespace npcore {

struct ConvSpec;

// One packed form of a conv's weights: immutable once made.
struct PackedWeights {
  AlignedBuffer buffer;
  size_t floats = 0;
  int64_t blocks = 0;  // output-channel blocks, for forms that have them
  const float* data() const { return buffer.get(); }
};
using PackedRef = std::shared_ptr<const PackedWeights>;

// Which packed form: `form` names the algorithm's layout ("direct", "winograd", "gemm", ...; a string
// literal), `isa` the instruction set it is made for, `blocking` up to four blocking parameters (unused
// ones zero). Two kernels with equal keys read the same buffer.
struct PackKey {
  const char* form = "";
  Isa isa = Isa::Generic;
  std::array<int64_t, 4> blocking{};
};

// Makes a packed form from the spec's weights (spec.weight, [out, in/groups, kh, kw]).
using PackFn = PackedWeights (*)(const ConvSpec& spec, const PackKey& key);

// The packed forms of one layer's weights. Thread-safe: kernels for new input shapes may be made on
// several threads at once; concurrent first requests of one form pack it once (the others wait).
class WeightPacks {
 public:
  PackedRef get(const ConvSpec& spec, const PackKey& key, PackFn pack);
  // Distinct forms packed so far (each form is packed once, whatever the number of shapes or threads).
  size_t forms() const { return made_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    std::once_flag once;
    PackedRef packed;
  };
  using Key = std::tuple<std::string, int, std::array<int64_t, 4>>;
  mutable std::mutex mu_;
  std::map<Key, std::shared_ptr<Entry>> entries_;
  std::atomic<size_t> made_{0};
};

// spec.packs->get(spec, key, pack) when the spec has packs, else a private pack.
PackedRef shared_pack(const ConvSpec& spec, const PackKey& key, PackFn pack);

// Pack functions run in this process so far (every WeightPacks and every private pack): tests assert that
// planning a prepared core for another input shape packs nothing.
size_t weight_packs_made();

}  // namespace npcore
