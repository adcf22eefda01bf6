#include "engine/packed_weights.h"

#include "engine/conv.h"
#include "engine/error.h"

namespace npcore {
namespace {

std::atomic<size_t> g_made{0};

PackedRef run_pack(const ConvSpec& spec, const PackKey& key, PackFn pack) {
  if (!pack || !spec.weight) throw BackendError(std::string("packing '") + key.form + "' weights: no pack function or weights");
  auto p = std::make_shared<PackedWeights>(pack(spec, key));
  g_made.fetch_add(1, std::memory_order_relaxed);
  return p;
}

}  // namespace

PackedRef WeightPacks::get(const ConvSpec& spec, const PackKey& key, PackFn pack) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = entries_[Key(key.form, int(key.isa), key.blocking)];
    if (!slot) slot = std::make_shared<Entry>();
    e = slot;
  }
  // Packing runs outside the map's lock: other forms proceed, requests for this one wait here. If the pack
  // throws, call_once lets the next request try again.
  std::call_once(e->once, [&] {
    e->packed = run_pack(spec, key, pack);
    made_.fetch_add(1, std::memory_order_relaxed);
  });
  return e->packed;
}

PackedRef shared_pack(const ConvSpec& spec, const PackKey& key, PackFn pack) {
  return spec.packs ? spec.packs->get(spec, key, pack) : run_pack(spec, key, pack);
}

size_t weight_packs_made() { return g_made.load(std::memory_order_relaxed); }

}  // namespace npcore
