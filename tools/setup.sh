#!/usr/bin/env bash
# Installs what npcore needs from Debian (if missing), builds it, then runs one job:
#   tools/setup.sh demo    the main job: `npcore demo`
#   tools/setup.sh test    the whole test suite (ctest), then which reference cases it ran
#   tools/setup.sh build   build only
# Run as root on Debian 12 (or with the packages already installed). Environment: BUILD_DIR (default
# build), NPCORE_NATIVE (default OFF: one portable x86-64-v2 build with AVX2/AVX-512 kernels chosen at run
# time; ON: -march=native, runs on this CPU only), JOBS (default: nproc),
# NPCORE_REF_DIR (reference dumps; default ../shared/ref, and the tests fail if it is set but missing).
set -euo pipefail
job=${1:-build}
case "$job" in demo|test|build) ;; *) echo "usage: $0 demo|test|build" >&2; exit 2;; esac
cd "$(dirname "$0")/.."

packages=(g++ cmake make pkg-config libeigen3-dev libdnnl-dev catch2 nlohmann-json3-dev libcli11-dev libzip-dev zlib1g-dev python3-numpy)
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

build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
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
