#include "engine/isa.h"

#include <cstdlib>

#include "engine/error.h"

namespace npcore {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Auto: return "auto";
    case Isa::Generic: return "generic";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name, const std::string& where) {
  for (Isa i : {Isa::Auto, Isa::Generic, Isa::Avx2, Isa::Avx512})
    if (name == isa_name(i)) return i;
  throw ConfigError(where + ": unknown ISA '" + name + "': expected one of auto, generic, avx2, avx512");
}

Isa cpu_isa() {
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
      return Isa::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
    return Isa::Generic;
  }();
  return best;
}

bool cpu_supports(Isa isa) { return isa == Isa::Auto || int(isa) <= int(cpu_isa()); }

Isa resolve_isa(Isa requested) {
  const char* where = "EngineOptions::isa";  // no std::string here: plans call this in steady-state runs
  if (requested == Isa::Auto) {
    const char* env = std::getenv("NPCORE_ISA");
    if (!env || !*env) return cpu_isa();
    where = "NPCORE_ISA";
    requested = parse_isa(env, where);
    if (requested == Isa::Auto) return cpu_isa();
  }
  if (!cpu_supports(requested))
    throw ConfigError(std::string(where) + ": ISA '" + isa_name(requested) + "' is not supported by this CPU (it runs up to '" +
                      isa_name(cpu_isa()) + "')");
  return requested;
}

const Isa* built_isas(int* count) {
  static const Isa all[] = {Isa::Generic, Isa::Avx2, Isa::Avx512};
  *count = 3;
  return all;
}

}  // namespace npcore
