#!/usr/bin/env bash
# Whole-model benchmark for docs/PERFORMANCE.md: `npcore bench` on the tutorial model
# (../shared/ref/models/model_seed_stacked2d_gaussian.json: Stacked2dCore at 144x256 with a 1000-neuron
# FullGaussian2d readout) at batch 1, as it is and with 10 sessions of 1000 neurons, each timing the core
# alone and the whole model interleaved run by run in one process. Replaces the section between the
# "models:begin" and "models:end" markers of the report (appends it the first time).
# usage: bench/run_model_benchmarks.sh [NPCORE] [REPORT]   env: THREADS=2 RUNS=30 WARMUP=3 REF=../shared/ref
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
npcore=${1:-build/npcore}
out=${2:-$here/../docs/PERFORMANCE.md}
ref=${REF:-$here/../../shared/ref}
threads=${THREADS:-2}
runs=${RUNS:-30}
warmup=${WARMUP:-3}
model=$ref/models/model_seed_stacked2d_gaussian.json
[[ -f $model ]] || { echo "run_model_benchmarks.sh: $model not found (set REF)" >&2; exit 2; }
common=(--threads "$threads" --runs "$runs" --warmup "$warmup" --json)
one=$("$npcore" bench "$model" "${common[@]}")
ten=$("$npcore" bench "$model" "${common[@]}" --sessions 10 --neurons 1000)
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
avx512=$(grep -q avx512f /proc/cpuinfo && echo "with AVX-512" || echo "no AVX-512")
load=$(cut -d' ' -f1-3 /proc/loadavg)
section=$(ONE="$one" TEN="$ten" CPU="$cpu, $(nproc) cores, $avx512" LOAD="$load" RUNS="$runs" WARMUP="$warmup" python3 - <<'PY'
import json, os
rows = [json.loads(os.environ["ONE"]), json.loads(os.environ["TEN"])]
print("<!-- models:begin (bench/run_model_benchmarks.sh) -->")
print("## Whole models: readouts against the core")
print()
print(f"Written by `bench/run_model_benchmarks.sh`. CPU: {os.environ['CPU']}; load average at the end: "
      f"{os.environ['LOAD']}. `npcore bench` on `models/model_seed_stacked2d_gaussian.json` (the tutorial's "
      f"Stacked2dCore at 1x1x144x256, FullGaussian2d readouts, ELU + 1), {rows[0]['backend']} backend, "
      f"{rows[0]['threads']} threads, {os.environ['WARMUP']} warm-up and {os.environ['RUNS']} timed runs; in each run "
      "the core alone (`ModelPlan::run_core`), the whole model (`ModelPlan::run`) and the readouts alone "
      "(`run_readouts`: every session's readout, shifter and nonlinearity) are timed back to back, so both "
      "columns see the same machine state. The overhead of the model over its core is model/core - 1; the "
      "targets are 3% (1 session of 1000 neurons) and 10% (10 sessions of 1000 neurons).")
print()
print("| model | neurons | core alone min / median (ms) | whole model min / median (ms) | overhead at min / median | readouts alone min / median (ms) | readouts / core at min |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    share = r["readouts_min_ms"] / r["core_min_ms"] if r["core_min_ms"] > 0 else 0
    print(f"| {r['sessions']} x {r['readout']} | {r['neurons']} | {r['core_min_ms']:.2f} / {r['core_median_ms']:.2f} | "
          f"{r['model_min_ms']:.2f} / {r['model_median_ms']:.2f} | {100*r['overhead_min']:+.2f}% / {100*r['overhead_median']:+.2f}% | "
          f"{r['readouts_min_ms']:.3f} / {r['readouts_median_ms']:.3f} | {100*share:.3f}% |")
print()
print("On a busy machine the core's run-to-run spread exceeds the readouts' cost, so the model-minus-core "
      "difference can come out negative; the readouts-alone column is their cost measured directly.")
print("<!-- models:end -->")
PY
)
if grep -q "<!-- models:begin" "$out" 2>/dev/null; then
  SECTION="$section" python3 - "$out" <<'PY'
import os, re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"<!-- models:begin.*?<!-- models:end -->", lambda m: os.environ["SECTION"], s, flags=re.S)
open(p, "w").write(s)
PY
else
  printf '\n%s\n' "$section" >> "$out"
fi
echo "run_model_benchmarks.sh: wrote the whole-model section of $out"
