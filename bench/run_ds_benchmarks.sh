#!/usr/bin/env bash
# Issue 12's comparison: the SENSORIUM 2022 depth-separable core (bench/configs/sensorium_ds.json: a
# Stacked2dCore, 9x9 input conv, 3 depth-separable 7x7 hidden layers of 64 channels) at 36x64 (batch 1, 8,
# 64) and 144x256 (batch 1, 8): npcore native and onednn (`npcore bench`), PyTorch eager
# (bench/torch_baseline.py, torch.nn modules doing upstream's computation) and ONNX Runtime
# (bench/ort_baseline.js on that model exported to ONNX at each image size), medians and mins, npcore
# native / ORT; then the engine's per-block times (`npcore bench --layers`) and its fixed overhead per
# forward at both sizes. Prints a markdown report (the 5-row table, with the CPU model, ISA and load
# average beside it) and writes it to OUT.
#
#   bench/run_ds_benchmarks.sh [NPCORE]     (default build/npcore)
#
# Builds nothing. Weights are random in every framework (npcore: its deterministic init; PyTorch and ORT:
# torch's default init): timing does not depend on their values. Per row the four columns run back to
# back (native, onednn, PyTorch, ORT), and the pass over the rows is repeated ROUNDS times; the table
# pools the timed runs of all rounds, and the per-round ratios show the noise. Environment:
#   THREADS=2  ROUNDS=2  WARMUP=3  RUNS_SCALE=1 (multiplies every row's run count)  CONFIG=bench/configs/sensorium_ds.json
#   ORT_DIR=~/.cache/npcore-bench/ort (onnxruntime-node; see bench/run_benchmarks.sh to install it)
#   REF=../shared/ref (reference dumps the PyTorch model is checked against)  CACHE=~/.cache/npcore-bench (exported ONNX models)  OUT=$CACHE/results-ds.md  ONEDNN=0 to skip that column
# PyTorch and ONNX Runtime are optional: without them their columns say n/a. About 5-10 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
npcore=$(realpath "${1:-$repo/build/npcore}")
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
warmup=${WARMUP:-3}
scale=${RUNS_SCALE:-1}
config=$(realpath "${CONFIG:-$here/configs/sensorium_ds.json}")
cache=${CACHE:-$HOME/.cache/npcore-bench}
ort_dir=${ORT_DIR:-$cache/ort}
out=${OUT:-$cache/results-ds.md}
onednn=${ONEDNN:-1}
python=/usr/bin/python3
# The rows: HxW batch runs.
rows=("36x64 1 60" "36x64 8 20" "36x64 64 5" "144x256 1 12" "144x256 8 4")

# log, run_one
source "$here/bench_common.sh"
[[ -x $npcore ]] || { echo "run_ds_benchmarks: $npcore is not an executable npcore (build it first)" >&2; exit 2; }
[[ -f $config ]] || { echo "run_ds_benchmarks: $config not found (set CONFIG)" >&2; exit 2; }
[[ $scale =~ ^[0-9]+$ && $scale -ge 1 ]] || { echo "run_ds_benchmarks: RUNS_SCALE must be a positive integer" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/npcore-ds-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/results" "$cache/onnx" "$(dirname "$out")"
name=$(basename "$config" .json)
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

have_torch=0
if [[ -x $python ]] && $python -c 'import torch' 2>/dev/null; then have_torch=1; else log "no PyTorch: no PyTorch or ORT column"; fi
have_ort=0
if ((have_torch)) && command -v node >/dev/null &&
  node -e "require(require.resolve('onnxruntime-node', {paths: ['$ort_dir']}))" 2>/dev/null; then
  have_ort=1
else
  log "onnxruntime-node not found in $ort_dir (bench/run_benchmarks.sh installs it): no ORT column"
fi


# The PyTorch model against the reference dumps of depth-separable cores: the same computation?
ref=${REF:-$repo/../shared/ref}
if ((have_torch)); then
  for c in stacked2d_depth_separable se_depth_separable; do
    [[ -f $ref/$c.json ]] || continue
    $python "$here/torch_baseline.py" "$ref/$c.json" --impl torch.nn --check-ref "$ref/$c" 2>&1 |
      tail -1 >>"$work/results/check.txt" || true
  done
fi

# ONNX models at each image size (the export fixes H and W; the batch is dynamic).
if ((have_ort)); then
  for size in 36x64 144x256; do
    h=${size%x*} w=${size#*x}
    onnx="$cache/onnx/${name}_${size}.onnx"
    if ! $python "$here/torch_baseline.py" "$config" --impl torch.nn --height "$h" --width "$w" \
      --export-onnx "$onnx" >"$work/export_$size.json" 2>"$work/export_$size.err"; then
      log "ONNX export at $size failed: $(tail -1 "$work/export_$size.err")"
      rm -f "$onnx"
    fi
  done
fi

for ((r = 1; r <= rounds; ++r)); do
  for row in "${rows[@]}"; do
    read -r size b n <<<"$row"
    n=$((n * scale))
    h=${size%x*} w=${size#*x}
    base="$work/results/r${r}_${size}_b${b}"
    log "round $r/$rounds  ${size}  batch $b  ($n runs)"
    run_one "${base}_native.json" "$npcore" bench "$config" --input-shape "$size" --batch "$b" --threads "$threads" \
      --warmup "$warmup" --runs "$n" --peak-repeats 1 --json
    if ((onednn)); then
      run_one "${base}_onednn.json" "$npcore" bench "$config" --backend onednn --input-shape "$size" --batch "$b" \
        --threads "$threads" --warmup "$warmup" --runs "$n" --peak-repeats 1 --json
    fi
    if ((have_torch)); then
      run_one "${base}_torch.json" "$python" "$here/torch_baseline.py" "$config" --impl torch.nn --batch "$b" \
        --height "$h" --width "$w" --threads "$threads" --warmup "$warmup" --runs "$n" --json
    fi
    if ((have_ort)) && [[ -f $cache/onnx/${name}_${size}.onnx ]]; then
      run_one "${base}_ort.json" node "$here/ort_baseline.js" "$cache/onnx/${name}_${size}.onnx" --core "$name" \
        --batch "$b" --channels 1 --height "$h" --width "$w" --threads "$threads" --warmup "$warmup" --runs "$n" \
        --ort-dir "$ort_dir" --json
    fi
  done
done

# Per-block times and the fixed overhead of the engine, batch 1 and 8 at each size.
for size in 36x64 144x256; do
  for b in 1 8; do
    run_one "$work/results/layers_${size}_b${b}.json" "$npcore" bench "$config" --input-shape "$size" --batch "$b" \
      --threads "$threads" --warmup 2 --runs 10 --peak-repeats 1 --layers --json
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
ort_version=""
((have_ort)) && ort_version=$(node -e "console.log(require(require.resolve('onnxruntime-node/package.json', {paths: ['$ort_dir']})).version)")
torch_version=""
((have_torch)) && torch_version=$($python -c 'import torch; print(torch.__version__)')

PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" $python - "$work/results" "$rounds" "$threads" "$load_start" "$load_end" "$config" "$ort_version" "$torch_version" \
  "$(printf '%s;' "${rows[@]}")" >"$out" <<'EOF'
import glob, json, os, sys
from make_report import load, quantile  # bench/make_report.py: the same JSON reading and percentiles
res, rounds, threads, load0, load1, config, ort_v, torch_v, rows = sys.argv[1:]
rounds = int(rounds)
rows = [r.split() for r in rows.split(";") if r]

def pooled(size, b, fw):
    times = []
    for r in range(1, rounds + 1):
        j = load(f"{res}/r{r}_{size}_b{b}_{fw}.json")
        if j: times += j["times_ms"]
    if not times: return None
    s = sorted(times)
    return quantile(s, 0.5), s[0]

def per_round_ratio(size, b):
    out = []
    for r in range(1, rounds + 1):
        e, o = load(f"{res}/r{r}_{size}_b{b}_native.json"), load(f"{res}/r{r}_{size}_b{b}_ort.json")
        out.append(f"{e['median_ms'] / o['median_ms']:.2f}" if e and o else "n/a")
    return ", ".join(out)

first = None
for p in sorted(glob.glob(f"{res}/*_native.json")):
    first = load(p)
    if first: break
cpu = first.get("cpu_model", "?") if first else "?"
isa = first.get("isa", "?") if first else "?"
cpu_isa = first.get("cpu_isa", "?") if first else "?"

def cell(v):
    return "n/a" if v is None else f"{v[0]:.1f} / {v[1]:.1f}"

print(f"### Depth-separable core (SENSORIUM 2022), {os.path.basename(config)}\n")
print(f"Written by `bench/run_ds_benchmarks.sh`. CPU: {cpu}, engine ISA {isa} (CPU's best: {cpu_isa}); "
      f"{threads} threads; load average {load0} at the start, {load1} at the end. PyTorch {torch_v or 'n/a'} eager "
      f"(torch.nn modules), ONNX Runtime {ort_v or 'n/a'} (onnxruntime-node, the same model exported at each size). "
      f"Random weights everywhere. Cells: median / min in ms per batch over the timed runs of {rounds} round(s), "
      "the four columns of a row run back to back in each round.\n")
print("| input | batch | PyTorch | ONNX Runtime | npcore native | npcore onednn | native / ORT (median, min) | per round |")
print("|---|---|---|---|---|---|---|---|")
for size, b, _ in rows:
    t, o, n, d = (pooled(size, b, fw) for fw in ("torch", "ort", "native", "onednn"))
    ratio = f"{n[0] / o[0]:.2f}, {n[1] / o[1]:.2f}" if n and o else "n/a"
    print(f"| {size} | {b} | {cell(t)} | {cell(o)} | {cell(n)} | {cell(d)} | {ratio} | {per_round_ratio(size, b)} |")
print()
for path in sorted(glob.glob(f"{res}/layers_*.json")):
    j = load(path)
    if not j: continue
    print(f"Per block, `npcore bench --layers`, input [{j['batch']}, {j['channels']}, {j['height']}, {j['width']}], "
          f"native, ISA {j['isa']}: median {j['median_ms']:.2f} ms, min {j['min_ms']:.2f} ms over {j['runs']} runs.")
    o = j.get("overhead")
    if o:
        print(f"Fixed overhead of a forward (batch 1 on a {o['height']}x{o['width']} image): median {o['median_ms']:.3f} ms, "
              f"min {o['min_ms']:.3f} ms ({100 * o['share_of_median']:.1f}% of the median).\n")
    print("| block | ms | share | GFLOP | GFLOP/s | convolutions (algorithm) |")
    print("|---|---|---|---|---|---|")
    total = sum(l["median_ms"] for l in j["layers"]) or 1
    for l in j["layers"]:
        algos = ", ".join(f"{c['layer'].split('.')[-1]}: {c['algorithm']}" for c in l["convs"])
        print(f"| {l['block']} | {l['median_ms']:.2f} | {100 * l['median_ms'] / total:.1f}% | {l['gflop']:.3f} | "
              f"{l['gflops']:.1f} | {algos} |")
    print()
check = f"{res}/check.txt"
if os.path.exists(check):
    with open(check) as f:
        lines = f.read().strip().splitlines()
    for line in lines:
        print(f"PyTorch model against the reference dump: {line}  ")
EOF
cat "$out"
log "report written to $out"
