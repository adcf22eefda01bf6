#!/bin/sh
# The per-ISA kernels are compiled with AVX2 or AVX-512 flags. A function they define outside their own
# namespace (npcore::native::<isa>::) - an inline function or template instantiated there, say
# std::vector<float>::assign - is a weak symbol the linker may pick for every caller in the library,
# baseline code included, and that caller then executes AVX-512 instructions on a CPU without them
# (an illegal-instruction crash). This check fails if any such symbol is defined in a per-ISA object.
# Usage: check_isa_symbols.sh <directory holding avx2/ and avx512/ object files>
set -eu
dir=$1
found=0
bad=0
for isa in avx2 avx512; do
  for obj in "$dir"/$isa/*.o; do
    [ -e "$obj" ] || continue
    found=$((found + 1))
    # Global and weak definitions of code (nm types T, W, i); data (typeinfo, the personality
    # reference, thread-local variables of inline functions such as npcore::detail::plan_threads)
    # carries no instructions.
    leaks=$(nm -C --defined-only "$obj" | awk '$2 ~ /^[TWi]$/' | cut -d' ' -f3- |
      grep -v "npcore::native::$isa::" | grep -v '^typeinfo' | grep -v '^DW.ref.__gxx_personality_v0$' || true)
    if [ -n "$leaks" ]; then
      echo "$obj: defines symbols outside npcore::native::$isa:: (compiled with $isa flags, may be linked into baseline code):"
      echo "$leaks" | sed 's/^/  /'
      bad=1
    fi
  done
done
if [ "$found" -lt 2 ]; then
  echo "check_isa_symbols: no per-ISA objects under $dir/avx2 and $dir/avx512"
  exit 1
fi
[ "$bad" -eq 0 ] && echo "check_isa_symbols: $found per-ISA objects define only their own namespace's functions"
exit $bad
