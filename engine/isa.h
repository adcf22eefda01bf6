#pragma once
// The instruction sets the engine has kernels for, which one this CPU runs, and which one a plan uses.
// The library is compiled for a portable baseline (x86-64-v2); the AVX2 and AVX-512 kernels live in
// their own translation units (engine/native/avx2/, engine/native/avx512/) compiled with their own target
// flags and are chosen at run time from CPUID. NPCORE_ISA=generic|avx2|avx512 (or EngineOptions::isa)
// forces a lower one; asking for one the CPU lacks is an error.
#include <string>

namespace npcore {

enum class Isa {
  Auto,     // the CPU's best, or NPCORE_ISA if set
  Generic,  // portable C++ (the gemm and scalar paths)
  Avx2,     // AVX2 + FMA
  Avx512,   // AVX-512 F/BW/VL/DQ
};

const char* isa_name(Isa isa);  // "auto", "generic", "avx2", "avx512"
// Parses "auto", "generic", "avx2", "avx512"; throws ConfigError naming `where` otherwise.
Isa parse_isa(const std::string& name, const std::string& where = "isa");
// The best ISA this CPU supports (CPUID, once).
Isa cpu_isa();
// Whether this CPU can run the kernels of `isa` (Auto and Generic: always).
bool cpu_supports(Isa isa);
// The ISA a plan uses for `requested`: Auto becomes NPCORE_ISA if set, else cpu_isa(). Throws ConfigError
// for an unknown NPCORE_ISA value or an ISA the CPU cannot run.
Isa resolve_isa(Isa requested);
// The ISAs with kernels in this build, lowest first (generic, avx2, avx512).
const Isa* built_isas(int* count);

}  // namespace npcore
