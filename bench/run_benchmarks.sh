#!/usr/bin/env bash
# The performance comparison of docs/PERFORMANCE.md: the engine (`npcore bench`), PyTorch eager
# (bench/torch_baseline.py, Debian's python3-torch) and ONNX Runtime (bench/ort_baseline.js on the same
# models exported to ONNX) on the four seed cores at batch 1 and 8, then every conv backend on the cores'
# convolutions (npcore_kernel_bench), and the native backend once more with --no-winograd (GFLOP are
# direct-equivalent; that run gives the arithmetic actually executed). Writes docs/PERFORMANCE.md and
# docs/performance.png.
#
#   bench/run_benchmarks.sh [NPCORE [KERNEL_BENCH]]     (default build/npcore, build/npcore_kernel_bench)
#
# Builds nothing. Per core the three frameworks run back to back (engine, torch, ort; batch 1, then
# batch 8) to keep machine drift out of their ratios, and the whole pass is repeated ROUNDS times; the
# tables pool the timed runs of all rounds and also show each round's ratio. Environment:
#   THREADS=2  RUNS1=50 (batch 1: enough for a p99)  RUNS8=8  WARMUP=3  ROUNDS=2  REF=../shared/ref
#   ORT_DIR=~/.cache/npcore-bench/ort (onnxruntime-node, installed there with npm if missing)
#   CACHE=~/.cache/npcore-bench (exported ONNX models)  OUT=docs/PERFORMANCE.md  SKIP_KERNELS=1 to skip
#   the kernel bench  SIZE=HxW (a smaller image for a quick try of the script; the report says so)
# PyTorch and ONNX Runtime are optional: without them their columns say n/a. About 10-15 minutes on
# 2 cores with the defaults.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
npcore=$(realpath "${1:-$repo/build/npcore}")
kbench=$(realpath "${2:-$(dirname "$npcore")/npcore_kernel_bench}")
threads=${THREADS:-2}
runs1=${RUNS1:-50}
runs8=${RUNS8:-8}
warmup=${WARMUP:-3}
rounds=${ROUNDS:-2}
ref=$(realpath "${REF:-$repo/../shared/ref}")
cache=${CACHE:-$HOME/.cache/npcore-bench}
ort_dir=${ORT_DIR:-$cache/ort}
out=${OUT:-$repo/docs/PERFORMANCE.md}
png="$(dirname "$out")/performance.png"
python=/usr/bin/python3
size_args=()
if [[ -n ${SIZE:-} ]]; then
  [[ $SIZE =~ ^([0-9]+)x([0-9]+)$ ]] || { echo "run_benchmarks: SIZE must be HxW, e.g. 48x64" >&2; exit 2; }
  size_args=(--height "${BASH_REMATCH[1]}" --width "${BASH_REMATCH[2]}")
fi
cores=(seed_stacked2d seed_se2d seed_rotation_equivariant seed_transfer_vgg16)

# log, run_one
source "$here/bench_common.sh"
[[ -x $npcore ]] || { echo "run_benchmarks: $npcore is not an executable npcore (build it first)" >&2; exit 2; }
for c in "${cores[@]}"; do
  [[ -f $ref/$c.json ]] || { echo "run_benchmarks: $ref/$c.json not found (set REF)" >&2; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/npcore-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/results" "$cache/onnx"
start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# ---- what is available ---------------------------------------------------------------------------------
have_torch=0
if [[ -x $python ]] && $python -c 'import torch, torchvision' 2>/dev/null; then
  have_torch=1
else
  log "PyTorch (Debian python3-torch, python3-torchvision) not importable by $python: no PyTorch column"
fi

have_ort=0
ort_note=""
if ! command -v node >/dev/null; then
  ort_note="node is not installed"
elif node -e "require(require.resolve('onnxruntime-node', {paths: ['$ort_dir']}))" 2>/dev/null; then
  have_ort=1
elif command -v npm >/dev/null; then
  log "installing onnxruntime-node into $ort_dir"
  mkdir -p "$ort_dir"
  [[ -f $ort_dir/package.json ]] || echo '{"name": "npcore-ort-bench", "private": true}' >"$ort_dir/package.json"
  # The plain install fails fetching a GPU add-on; the CPU build is in the package itself.
  if (cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund onnxruntime-node >&2) &&
    node -e "require(require.resolve('onnxruntime-node', {paths: ['$ort_dir']}))" 2>/dev/null; then
    have_ort=1
  else
    ort_note="npm install onnxruntime-node failed"
  fi
else
  ort_note="npm is not installed"
fi
((have_torch)) || { [[ -n $ort_note ]] || ort_note="no PyTorch to export the models to ONNX"; have_ort=0; }
ort_version=""
if ((have_ort)); then
  ort_version=$(node -e "console.log(require(require.resolve('onnxruntime-node/package.json', {paths: ['$ort_dir']})).version)")
else
  log "ONNX Runtime column skipped: $ort_note"
fi

# ---- the PyTorch column's models against the reference dumps (same weights, same output?) ------------
if ((have_torch)); then
  for c in "${cores[@]}"; do
    $python "$here/torch_baseline.py" "$ref/$c.json" --threads "$threads" --check-ref "$ref/$c" 2>/dev/null |
      tail -1 >>"$work/results/checks.txt" || true
  done
fi

# ---- ONNX models (same torch.nn models as the PyTorch column, opset 13, dynamic batch) -----------------
if ((have_ort)); then
  for c in "${cores[@]}"; do
    if ! $python "$here/torch_baseline.py" "$ref/$c.json" --export-onnx "$cache/onnx/$c${SIZE:+_$SIZE}.onnx" \
      "${size_args[@]}" >"$work/results/export_$c.json" 2>"$work/export_$c.err"; then
      log "ONNX export of $c failed: $(tail -1 "$work/export_$c.err")"
      rm -f "$cache/onnx/$c${SIZE:+_$SIZE}.onnx"
    fi
  done
fi

# ---- the comparison, interleaved per core ---------------------------------------------------------------
# Each result is one JSON object in results/r<round>_<core>_b<batch>_<framework>.json.
shape_of() { $python -c "import json,sys; s=json.load(open(sys.argv[1]))['input_shape']; print(s[1], s[2], s[3])" "$1"; }

for ((r = 1; r <= rounds; ++r)); do
  for c in "${cores[@]}"; do
    read -r ch h w < <(shape_of "$ref/$c.json")
    if ((${#size_args[@]})); then h=${size_args[1]} w=${size_args[3]}; fi
    for b in 1 8; do
      n=$runs1
      ((b == 1)) || n=$runs8
      log "round $r/$rounds  $c  batch $b  ($n runs)"
      base="$work/results/r${r}_${c}_b${b}"
      run_one "${base}_engine.json" "$npcore" bench "$ref/$c.json" --batch "$b" --threads "$threads" \
        --warmup "$warmup" --runs "$n" "${size_args[@]}" --json
      if ((have_torch)); then
        run_one "${base}_torch.json" "$python" "$here/torch_baseline.py" "$ref/$c.json" --batch "$b" \
          --threads "$threads" --warmup "$warmup" --runs "$n" "${size_args[@]}" --json
      fi
      if ((have_ort)) && [[ -f $cache/onnx/$c${SIZE:+_$SIZE}.onnx ]]; then
        run_one "${base}_ort.json" node "$here/ort_baseline.js" "$cache/onnx/$c${SIZE:+_$SIZE}.onnx" --core "$c" --batch "$b" \
          --channels "$ch" --height "$h" --width "$w" --threads "$threads" --warmup "$warmup" --runs "$n" \
          --ort-dir "$ort_dir" --json
      fi
    done
  done
done

# Per-block times of the engine (one short run per core), for the breakdown table.
for c in "${cores[@]}"; do
  run_one "$work/results/layers_${c}.json" "$npcore" bench "$ref/$c.json" --threads "$threads" --warmup 2 \
    --runs 10 "${size_args[@]}" --layers --json
done

if [[ ${SKIP_KERNELS:-0} != 1 ]]; then
  if [[ -x $kbench ]]; then
    log "kernel bench ($kbench)"
    run_one "$work/results/kernels.json" "$kbench" --threads "$threads" --warmup 2 --runs 10 --reference-runs 1 --json
    # The native backend again, summing directly: its GFLOP/s are then the arithmetic executed, which the
    # report shows beside the direct-equivalent figures of the Winograd rows.
    log "kernel bench, native --no-winograd"
    run_one "$work/results/kernels_direct.json" "$kbench" --threads "$threads" --warmup 2 --runs 10 \
      --backend native --no-winograd --json
  else
    log "no kernel bench at $kbench: kernel table skipped"
  fi
fi

# ---- the report ---------------------------------------------------------------------------------------
# The commit of the checkout the npcore binary sits in (build/ inside a clone or worktree), else this one's.
src=$(git -C "$(dirname "$npcore")" rev-parse --show-toplevel 2>/dev/null || echo "$repo")
commit="$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown) in $src"
git -C "$src" diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
cmdline="bench/run_benchmarks.sh ${1:-build/npcore}${2:+ $2}"
cmdline="${SIZE:+SIZE=$SIZE }THREADS=$threads RUNS1=$runs1 RUNS8=$runs8 WARMUP=$warmup ROUNDS=$rounds $cmdline"
elapsed=$(($(date +%s) - start))
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
# Keep the raw results beside the ONNX cache (not in the repository): make_report.py can be rerun on them.
rm -rf "$cache/results-last" && cp -r "$work/results" "$cache/results-last"
torch_version=""
((have_torch)) && torch_version=$($python -c 'import torch; print(torch.__version__)')
report_args=(--results "$work/results" --out "$out" --plot-data "$work/plot.dat" --size "${SIZE:-}" --ref-dir "$ref"
  --commit "$commit" --command "$cmdline" --threads "$threads" --runs1 "$runs1" --runs8 "$runs8" \
  --warmup "$warmup" --rounds "$rounds" --cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
  --cpus "$(nproc)" --torch "$torch_version" --ort "$ort_version" --ort-note "$ort_note" \
  --npcore-version "$("$npcore" --version 2>/dev/null || echo npcore)" --elapsed "$elapsed" --load "$load_start -> $load_end")
$python "$here/make_report.py" "${report_args[@]}" --png "$(basename "$png")"

# ---- the plot -----------------------------------------------------------------------------------------
if ! command -v gnuplot >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  log "installing gnuplot-nox for the plot"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >&2; } || true
fi
if command -v gnuplot >/dev/null; then
  gnuplot <<EOF
set terminal pngcairo size 1100,480 font "sans,10"
set output "$png"
set multiplot layout 1,2 title "Seed cores, 1x${SIZE:-144x256} input, $threads threads: latency per image (ms), lower is better"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set ylabel "ms per image (median)"
set key below horizontal
set xtics rotate by -20 scale 0
set title "batch 1"
plot "$work/plot.dat" index 0 using 2:xtic(1) title "npcore" lc rgb "#1f77b4", \
     "" index 0 using 3 title "PyTorch eager" lc rgb "#ff7f0e", \
     "" index 0 using 4 title "ONNX Runtime" lc rgb "#2ca02c"
set title "batch 8"
plot "$work/plot.dat" index 1 using 2:xtic(1) title "npcore" lc rgb "#1f77b4", \
     "" index 1 using 3 title "PyTorch eager" lc rgb "#ff7f0e", \
     "" index 1 using 4 title "ONNX Runtime" lc rgb "#2ca02c"
unset multiplot
EOF
  log "wrote $png"
fi
if [[ ! -s $png || $png -ot $out ]]; then
  log "no plot made (gnuplot-nox missing or failed): the report goes without it"
  report_args+=(--png "")
  $python "$here/make_report.py" "${report_args[@]}"
fi
log "wrote $out in $((($(date +%s) - start) / 60)) min"
# The whole-model section (its own script, so that it can be rerun alone).
if [[ -f ${REF:-$here/../../shared/ref}/models/model_seed_stacked2d_gaussian.json ]]; then
  THREADS=$threads "$here/run_model_benchmarks.sh" "$npcore" "$out" || log "whole-model benchmark failed"
fi
