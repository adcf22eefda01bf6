#pragma once
// The FMA peak probe's inner loop (engine/peak.cpp), once for every vector width: `iters` rounds of 12 FMAs
// on independent accumulators, enough chains to cover FMA latency on two ports. The empty asm keeps every
// chain in a register (no merging, no spilling). Returns their sum, so that nothing is optimised away.
#include <cstdint>

namespace npcore::native::NPCORE_ISA_NS {

template <class V>
float fma_probe(long iters) {
  using reg = typename V::reg;
  reg a[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) a[i] = V::set1(float(i));
  const reg m = V::set1(0.999999f), c = V::set1(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = V::fmadd(a[i], m, c);
    __asm__ volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]), "+v"(a[6]),
                     "+v"(a[7]), "+v"(a[8]), "+v"(a[9]), "+v"(a[10]), "+v"(a[11]));
  }
  reg s = a[0];
#pragma GCC unroll 11
  for (int i = 1; i < 12; ++i) s = V::add(s, a[i]);
  float lanes[V::W];
  V::store(lanes, s);
  float sum = 0;
  for (int i = 0; i < V::W; ++i) sum += lanes[i];
  return sum;
}

}  // namespace npcore::native::NPCORE_ISA_NS
