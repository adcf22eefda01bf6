#!/usr/bin/env bash
# Runs the libFuzzer targets (fuzz/fuzz_*.cpp, built by the `fuzz` CMake preset into build-fuzz/) for
# SECONDS each, on a seed corpus made at run time from real files (tests/fixtures and, when present,
# ../shared/ref or $NPCORE_REF_DIR), under AddressSanitizer and UndefinedBehaviorSanitizer.
#   tools/fuzz.sh SECONDS [TARGET...]     TARGET: safetensors pth npy config (default: all four)
# Environment: FUZZ_DIR (default build-fuzz), FUZZ_PARALLEL (targets run at once, default 1).
# Per target it prints executions, coverage (cov: edges, ft: features) and corpus size, from
# FUZZ_DIR/logs/TARGET.log; a crash, leak, sanitizer report or escaping exception leaves its input in
# FUZZ_DIR/findings/ and makes the script exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: tools/fuzz.sh SECONDS [safetensors|pth|npy|config ...]}
shift
targets=("$@")
((${#targets[@]})) || targets=(safetensors pth npy config)
dir=${FUZZ_DIR:-build-fuzz}
ref=${NPCORE_REF_DIR:-../shared/ref}
[[ -d $ref ]] || ref=""
mkdir -p "$dir/logs" "$dir/findings"

# Seeds: files up to 256 KiB (libFuzzer's -max_len below); larger ones would only be cut.
seed() {  # seed CORPUS FILE... (one find and one cp: cheap even under load)
  local corpus=$1
  shift
  (($#)) || return 0
  # Same-named files (the fixtures are copies of reference cases) are kept once.
  find "$@" -maxdepth 0 -type f -size -257k -exec cp -n -t "$corpus" {} + 2>/dev/null || true
}
make_corpus() {  # make_corpus TARGET
  local t=$1 c=$dir/corpus/$1
  mkdir -p "$c"
  shopt -s nullglob
  case $t in
    safetensors) seed "$c" tests/fixtures/*.safetensors tests/fixtures/layers/*.safetensors \
                   tests/fixtures/pth/*.safetensors ${ref:+"$ref"/*.safetensors "$ref"/layers/*.safetensors} ;;
    pth) seed "$c" tests/fixtures/pth/*.pth ${ref:+"$ref"/*.pth "$ref"/torchvision/*.pth} ;;
    npy) seed "$c" tests/fixtures/npy/*.npy ;;
    config) seed "$c" tests/fixtures/*.json tests/fixtures/layers/*.json \
              ${ref:+"$ref"/*.json "$ref"/layers/*.json "$ref"/models/*.json} ;;
    *) echo "fuzz: unknown target '$t' (safetensors, pth, npy, config)" >&2; exit 2 ;;
  esac
  shopt -u nullglob
}

run_one() {  # run_one TARGET
  local t=$1 bin=$dir/fuzz_$1 log=$dir/logs/$1.log
  [[ -x $bin ]] || { echo "fuzz: $bin is not built (cmake --preset fuzz && cmake --build $dir)" >&2; return 2; }
  # -rss_limit_mb: the readers must refuse what does not fit, not allocate it; detect_leaks: leaks are
  # findings; -timeout: one input may not take more than 10 s.
  local status=0
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" "$dir/corpus/$t" -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$dir/findings/$t-" >"$log" 2>&1 || status=$?
  local execs cov ft units
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  units=$(find "$dir/corpus/$t" -type f | wc -l)
  echo "fuzz: $t: ${secs}s, ${execs:-?} executions, cov ${cov:-?} edges, ft ${ft:-?} features, corpus $units files, exit $status"
  if ((status != 0)); then
    echo "fuzz: $t FAILED; see $log and $dir/findings/:" >&2
    grep -m5 -E 'ERROR|SUMMARY|runtime error|terminate called|deadly signal' "$log" >&2 || true
    return 1
  fi
}

for t in "${targets[@]}"; do make_corpus "$t"; done
failed=0
parallel=${FUZZ_PARALLEL:-1}
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  if ((${#pids[@]} >= parallel)); then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit $failed
