#!/bin/sh
# The per-ISA kernels (engine/native/<isa>/kernels.cpp) switch the target to their ISA only for their own
# namespace, npcore::native::<isa>:: (engine/native/common/outside_isa.h says why). A per-ISA object may
# still define its own copy of an inline function or template from outside that namespace - an
# unoptimised or -O1 build emits std::unique_ptr's destructor there, say - and the linker keeps one copy
# for the whole library, baseline callers included. Such a copy must be baseline code: were it compiled
# for AVX2 or AVX-512, a CPU without them would die with an illegal instruction. This check disassembles
# every code symbol (nm types T, W, i) of the per-ISA objects that lies outside the ISA's namespace and
# fails if it holds a VEX or EVEX instruction (mnemonics v*: vmovaps, vfmadd231ps, vzeroupper, ...; the
# x86-64-v2 baseline has none).
# Usage: check_isa_symbols.sh <directory holding avx2/ and avx512/ object files>
set -eu
dir=$1
found=0
bad=0
for isa in avx2 avx512; do
  for obj in "$dir"/$isa/*.o; do
    [ -e "$obj" ] || continue
    found=$((found + 1))
    outside=$(nm -C --defined-only "$obj" | awk '$2 ~ /^[TWi]$/' | cut -d' ' -f3- | grep -vc "npcore::native::$isa::" || true)
    # Functions outside the namespace that contain vector-ISA instructions.
    leaks=$(objdump -d -C --no-show-raw-insn "$obj" | awk -v ns="npcore::native::$isa::" '
      /^[0-9a-f]+ <.*>:$/ { name = substr($0, index($0, "<") + 1); sub(/>:$/, "", name); next }
      /^ *[0-9a-f]+:\t/ {
        if (name == "" || index(name, ns) > 0) next
        split($0, f, "\t"); split(f[2], w, " ")
        if (w[1] ~ /^v/ && !(name in seen)) { seen[name] = 1; print name " (" w[1] ")" }
      }')
    if [ -n "$leaks" ]; then
      echo "$obj: functions outside npcore::native::$isa:: compiled for $isa (the linker may pick them for baseline callers):"
      echo "$leaks" | sed 's/^/  /'
      bad=1
    else
      echo "$obj: $outside code symbols outside npcore::native::$isa::, all baseline code"
    fi
  done
done
if [ "$found" -lt 2 ]; then
  echo "check_isa_symbols: no per-ISA objects under $dir/avx2 and $dir/avx512"
  exit 1
fi
exit $bad
