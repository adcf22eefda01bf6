#!/usr/bin/env bash
# Installs what npcore needs from Debian (if missing), builds it, then runs one job:
#   tools/setup.sh demo    the main job: `npcore demo`
#   tools/setup.sh test    the whole test suite (ctest), then which reference cases it ran
#   tools/setup.sh build   build only
#   tools/setup.sh sanitize  the whole suite built with AddressSanitizer + UndefinedBehaviorSanitizer (the
#                            `sanitize` CMake preset, in build-sanitize/; reference cases: tests/fixtures only;
#                            without the `npcore demo` test)
#   tools/setup.sh fuzz      the libFuzzer targets (the `fuzz` preset, clang-14, in build-fuzz/), each run
#                            for FUZZ_SECONDS (default 30) on a seed corpus from tests/fixtures and ../shared/ref
# Run as root on Debian 12 (or with the packages already installed). Environment: BUILD_DIR (default
# build), NPCORE_NATIVE (default OFF: one portable x86-64-v2 build with AVX2/AVX-512 kernels chosen at run
# time; ON: -march=native, runs on this CPU only), JOBS (default: nproc),
# NPCORE_REF_DIR (reference dumps; default ../shared/ref, and the tests fail if it is set but missing).
set -euo pipefail
job=${1:-build}
case "$job" in demo|test|build|sanitize|fuzz) ;; *) echo "usage: $0 demo|test|build|sanitize|fuzz" >&2; exit 2;; esac
cd "$(dirname "$0")/.."

packages=(g++ cmake make pkg-config libeigen3-dev libdnnl-dev catch2 nlohmann-json3-dev libcli11-dev libzip-dev zlib1g-dev python3-numpy)
# The fuzz job: clang with libFuzzer, its sanitizer runtimes and OpenMP.
[[ $job == fuzz ]] && packages+=(clang-14 libclang-rt-14-dev libfuzzer-14-dev libomp-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then echo "setup: run as root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

jobs=${JOBS:-$(nproc)}
case "$job" in
  sanitize)
    cmake --preset sanitize -DNPCORE_NATIVE="${NPCORE_NATIVE:-OFF}"
    cmake --build build-sanitize -j "$jobs"
    # Leaks are findings too; a sanitizer report fails the test that made it. allocator_may_return_null:
    # the tests ask for absurd sizes on purpose and expect ResourceError, not an ASan abort. Left out: the
    # demo test (`npcore demo --backend reference`, VGG-sized cores, takes > 6 minutes under ASan), and the
    # tests that load the library into a program not built with the sanitizers (the Python module, the
    # installed package's consumers): ASan must be the first library of a process, which they cannot be.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-sanitize --output-on-failure -j "$jobs" \
      -E "^cli: demo runs|^npcore_python$|^npcore_install_embed$|^npcore_dump_reference$"
    exit
    ;;
  fuzz)
    cmake --preset fuzz -DNPCORE_NATIVE="${NPCORE_NATIVE:-OFF}"
    cmake --build build-fuzz -j "$jobs"
    exec tools/fuzz.sh "${FUZZ_SECONDS:-30}"
    ;;
esac

build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNPCORE_NATIVE="${NPCORE_NATIVE:-OFF}"
cmake --build "$build" -j "$jobs"

case "$job" in
  demo) "$build/npcore" demo ;;
  test)
    status=0
    ctest --test-dir "$build" --output-on-failure || status=$?
    # Which reference cases ran: the dumps in ../shared/ref (or $NPCORE_REF_DIR), or the copies in
    # tests/fixtures, with the list of reference cases skipped.
    # Which ISA variants of the vector kernels ran (those this CPU supports) and which could not.
    "$build/npcore_tests" "[mode]" -r compact 2>&1 |
      sed -n "s/.*warning: '\(test mode: .*\)'\$/setup: \1/p; s/.*warning: '\(ISA variants run: .*\)'\$/setup: \1/p"
    exit "$status"
    ;;
  build) ;;
esac
