#!/usr/bin/python3
"""Writes docs/PERFORMANCE.md from the JSON results bench/run_benchmarks.sh collected (standard library only).

Results: r<round>_<core>_b<batch>_<engine|torch|ort>.json (npcore bench / torch_baseline.py /
ort_baseline.js --json), layers_<core>.json (npcore bench --layers), kernels.json (npcore_kernel_bench),
kernels_direct.json (npcore_kernel_bench --backend native --no-winograd), export_<core>.json
(torch_baseline.py --export-onnx). Timed runs of all rounds are pooled per (core, batch, framework);
ratios are of pooled medians, and each round's own ratio is listed beside. Throughput fractions use the
highest FMA peak any probe of the run measured (noise only lowers it).

Every GFLOP figure is direct-equivalent: 2 x the multiply-adds of direct summation, whatever algorithm
ran. Where the native backend runs Winograd (fewer multiplications) that overstates the arithmetic done,
so the kernel target lines show the direct-summation figure beside it and say which one meets the target.
"""
import argparse
import glob
import json
import math
import os
import re

CORES = [
    ("seed_stacked2d", "Stacked2dCore"),
    ("seed_se2d", "SE2dCore"),
    ("seed_rotation_equivariant", "RotationEquivariant2dCore"),
    ("seed_transfer_vgg16", "TransferLearningCore vgg16[:12]"),
]
FRAMEWORKS = ("engine", "torch", "ort")
# The targets: engine/PyTorch latency ratio at batch 1, and per image at batch 8.
TORCH_TARGET_B1 = {"seed_stacked2d": 0.80, "seed_se2d": 0.80, "seed_rotation_equivariant": 0.60,
                   "seed_transfer_vgg16": 0.75}
TORCH_TARGET_B8 = 0.70
KERNEL_TARGET = 0.90
P99_TARGET = 1.15
# The anchors (another run on a 2-core AVX-512 machine): ms per image, batch 1 and 8.
ANCHOR_TORCH = {"seed_stacked2d": (114, "160-180"), "seed_rotation_equivariant": (154, None),
                "seed_se2d": (118, None), "seed_transfer_vgg16": (38, None)}
ANCHOR_ORT = {"seed_stacked2d": (112, 872 / 8), "seed_rotation_equivariant": (114, 969 / 8),
              "seed_se2d": (106, 873 / 8), "seed_transfer_vgg16": (18, 154 / 8)}


def quantile(v, q):
    v = sorted(v)
    if not v:
        return float("nan")
    pos = q * (len(v) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def fmt(x, nd=1):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


CONV_RE = re.compile(r"Conv2d\((\d+), (\d+), k=(\d+)x(\d+), s=(\d+)x(\d+), p=\d+x\d+, d=(\d+)x(\d+), g=(\d+)")


def ran_winograd(row, isa):
    """Whether a kernel-bench row of the native backend ran a fast algorithm (Winograd or the tiled FFT,
    both fewer multiplications than direct summation): the row says so, or (results from before the
    fields existed) the eligibility rule of engine/winograd.h in an AVX-512 build says so."""
    if row.get("backend") != "native":
        return False
    if row.get("fft"):
        return True
    if "winograd" in row:
        return bool(row["winograd"])
    m = CONV_RE.match(row.get("conv", ""))
    if not m or not isa.startswith("avx512"):
        return False
    cin, cout, kh, kw, sh, sw, dh, dw, g = map(int, m.groups())
    return g == 1 and sh == sw == 1 and dh == dw == 1 and kh == kw and kh in (3, 5, 7) and cin >= 16 and cout >= 16


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Cell:
    """One (core, batch, framework): the rounds' results and their pooled statistics."""

    def __init__(self, rounds):
        self.rounds = rounds  # {round: result}
        times = [t for r in rounds.values() for t in r.get("times_ms", [])]
        self.n = len(times)
        self.min = min(times) if times else None
        self.median = quantile(times, 0.5) if times else None
        self.p99 = quantile(times, 0.99) if times else None
        self.rss = max((r.get("peak_rss_mb", 0) for r in rounds.values()), default=None)
        self.round_medians = {k: r["median_ms"] for k, r in rounds.items()}
        # p99 / median of each round's own runs (the jitter target is about one run of N).
        self.round_jitter = {k: r["p99_ms"] / r["median_ms"] for k, r in rounds.items() if r.get("median_ms")}

    def __bool__(self):
        return self.n > 0


def main():
    ap = argparse.ArgumentParser()
    for k in ("results", "out", "plot-data", "commit", "command", "cpu", "torch", "ort", "ort-note",
              "npcore-version", "png", "size", "ref-dir", "load"):
        ap.add_argument("--" + k, default="")
    for k in ("threads", "runs1", "runs8", "warmup", "rounds", "cpus", "elapsed"):
        ap.add_argument("--" + k, type=int, default=0)
    a = ap.parse_args()

    res = {}
    for path in glob.glob(os.path.join(a.results, "r*_b*_*.json")):
        m = re.match(r"r(\d+)_(.+)_b(\d+)_(engine|torch|ort)\.json$", os.path.basename(path))
        d = load(path)
        if m and d:
            res.setdefault((m.group(2), int(m.group(3)), m.group(4)), {})[int(m.group(1))] = d
    cells = {k: Cell(v) for k, v in res.items()}
    empty = Cell({})

    def cell(core, b, fw):
        return cells.get((core, b, fw), empty)

    kernels = load(os.path.join(a.results, "kernels.json"))
    direct = load(os.path.join(a.results, "kernels_direct.json"))  # native --no-winograd
    peaks = [r.get("peak_gflops", 0) for v in res.values() for r in v.values() if r.get("peak_gflops")]
    if kernels:
        peaks.append(kernels["peak_gflops"])
    if direct:
        peaks.append(direct["peak_gflops"])
    peak = max(peaks) if peaks else float("nan")
    isa = next((r.get("peak_isa") for v in res.values() for r in v.values() if r.get("peak_isa")), "?")

    L = []
    w = L.append
    w("# Performance\n")
    if a.size:
        w(f"**A trial run on {a.size} images (SIZE={a.size}), not the 144x256 of the comparison: do not quote.**\n")
    w("Written by `bench/run_benchmarks.sh` (do not edit by hand; rerun it). The engine (`npcore bench`), "
      "PyTorch eager (`bench/torch_baseline.py`) and ONNX Runtime (`bench/ort_baseline.js`) time the four "
      f"seed cores on random 1x{a.size or '144x256'} images with {a.threads} threads, back to back per core, in "
      f"{a.rounds} round{'s' if a.rounds != 1 else ''}; each table pools the timed runs of all rounds. The machine is shared and noisy: "
      "only the ratios of one run of the script mean anything, and the per-round ratios show the noise.\n")
    w("Every GFLOP and GFLOP/s figure here is **direct-equivalent**: twice the multiply-adds a direct "
      "summation of the convolution does, whatever algorithm ran. The engine's native backend computes "
      "stride-1 convolutions with >= 16 channels by Winograd F(2x2, 3x3) (3x3 kernels: 2.25x fewer "
      "multiplications) or by a tiled FFT (5x5..9x9 kernels: about 8x fewer for 7x7), so on those its GFLOP/s "
      "and fraction of peak overstate the arithmetic "
      "executed and can exceed 100% of the FMA peak. The direct-summation figures "
      "(`npcore_kernel_bench --no-winograd`) are the arithmetic executed.\n")
    w("## Machine and run\n")
    w(f"- CPU: {a.cpu}, {a.cpus} cores; measured single-precision FMA peak ({isa}, {a.threads} threads): "
      f"**{fmt(peak)} GFLOP/s** (highest of {len(peaks)} probes in this run; lowest "
      f"{fmt(min(peaks) if peaks else None)}, median {fmt(quantile(peaks, 0.5) if peaks else None)}: "
      "the spread is other load on the machine). Fractions of peak below are of the highest.")
    w(f"- Engine: {a.npcore_version}, commit {a.commit}, default backend (native), fused.")
    torch_impls = sorted({r.get("impl", "?") for (c, b, fw), v in res.items() if fw == "torch" for r in v.values()})
    w(f"- PyTorch: {a.torch or 'not available'} eager"
      + (f" ({', '.join(torch_impls)} models), torch.set_num_threads({a.threads}), one inter-op thread, "
         "eval mode, torch.inference_mode()." if a.torch else "."))
    if a.ort:
        w(f"- ONNX Runtime: onnxruntime-node {a.ort} (CPU execution provider), intraOpNumThreads {a.threads}, "
          "interOpNumThreads 1, sequential execution, all graph optimisations; models exported from the "
          "PyTorch column's modules with torch.onnx.export, opset 13.")
    else:
        w(f"- ONNX Runtime: not measured ({a.ort_note or 'not available'}).")
    w(f"- Runs: {a.warmup} warm-up + {a.runs1} timed at batch 1, {a.runs8} timed at batch 8, per framework, "
      f"core and round; whole script {a.elapsed // 60} min {a.elapsed % 60} s"
      + (f"; load average (1, 5, 15 min) at start and end: {a.load} (other work on the machine shows here)."
         if a.load else "."))
    notes = sorted({n for (c, b, fw), v in res.items() if fw == "torch" for r in v.values()
                    for n in r.get("notes", [])})
    for n in notes:
        w(f"- PyTorch column note: {n}.")
    checks = []
    try:
        with open(os.path.join(a.results, "checks.txt")) as f:
            checks = [l.strip() for l in f if l.strip()]
    except OSError:
        pass
    if checks:
        w("- The PyTorch column's models, loaded with the reference dumps' weights, against the reference "
          "outputs (`torch_baseline.py C --check-ref PREFIX`):")
        for c in checks:
            w(f"  - {c.replace(a.ref_dir + '/', '') if a.ref_dir else c}")
    w("")
    w("Commands (from the repository root):\n")
    w("```")
    w(a.command)
    w("# which runs, per core C (../shared/ref/seed_*.json), batch B in 1 8, N runs, per round:")
    w(f"build/npcore bench C --batch B --threads {a.threads} --warmup {a.warmup} --runs N --json")
    w(f"/usr/bin/python3 bench/torch_baseline.py C --batch B --threads {a.threads} --warmup {a.warmup} --runs N --json")
    w(f"node bench/ort_baseline.js ~/.cache/npcore-bench/onnx/C.onnx --batch B --height 144 --width 256 "
      f"--threads {a.threads} --warmup {a.warmup} --runs N --json")
    w("# once: bench/torch_baseline.py C --export-onnx ~/.cache/npcore-bench/onnx/C.onnx; "
      f"npcore bench C --layers; npcore_kernel_bench --threads {a.threads} --json; "
      f"npcore_kernel_bench --threads {a.threads} --backend native --no-winograd --json")
    w("```\n")
    if a.png:
        w(f"![latency per image, engine vs PyTorch and ONNX Runtime]({a.png})\n")

    def ratio(x, y):
        return x / y if x and y else None

    def round_ratios(core, b, fw):
        e, o = cell(core, b, "engine"), cell(core, b, fw)
        rs = [e.round_medians[r] / o.round_medians[r] for r in sorted(e.round_medians) if r in o.round_medians]
        return ", ".join(f"{x:.2f}" for x in rs) if rs else "n/a"

    plot = {1: [], 8: []}
    for b in (1, 8):
        per_image = b > 1
        w(f"## Batch {b}\n")
        w(f"Latency per batch of {b} in ms{' (per image in brackets)' if per_image else ''}: pooled median, "
          "min and p99 of all rounds' timed runs. Ratios below 1 mean the engine is faster; "
          "\"rounds\" lists each round's own ratio of medians.\n")
        w("| core | engine median | min | p99 | PyTorch median | min | p99 | ORT median | min | p99 | "
          "engine/PyTorch (rounds) | engine/ORT (rounds) | engine GFLOP/s (direct-equivalent) | of peak |")
        w("|---|" + "---:|" * 13)
        for core, title in CORES:
            e, t, o = cell(core, b, "engine"), cell(core, b, "torch"), cell(core, b, "ort")

            def med(c):
                if not c:
                    return "n/a"
                return f"{c.median:.1f} ({c.median / b:.1f})" if per_image else f"{c.median:.1f}"

            gflop = next(iter(e.rounds.values()))["gflop"] if e else None
            gflops = gflop / (e.median / 1e3) if e else None
            rt, ro = ratio(e.median, t.median), ratio(e.median, o.median)
            w(f"| {title} | {med(e)} | {fmt(e.min)} | {fmt(e.p99)} | {med(t)} | {fmt(t.min)} | {fmt(t.p99)} | "
              f"{med(o)} | {fmt(o.min)} | {fmt(o.p99)} | **{fmt(rt, 2)}** ({round_ratios(core, b, 'torch')}) | "
              f"**{fmt(ro, 2)}** ({round_ratios(core, b, 'ort')}) | {fmt(gflops)} | "
              f"{fmt(100 * gflops / peak if gflops else None)}% |")
            plot[b].append((title.split()[0], *(c.median / b if c else float("nan") for c in (e, t, o))))
        w("")

    # Targets.
    w("## Targets of the performance issue\n")
    w("| target | measured | met? |")
    w("|---|---|---|")

    def verdict(value, limit, lower_is_better=True, unit=""):
        if value is None:
            return "n/a"
        ok = value <= limit if lower_is_better else value >= limit
        d = abs(value - limit)
        nd = 1 if unit else 3
        if ok:
            return f"met (margin {d:.{nd}f}{unit})"
        return f"**missed** by {d:.{nd}f}{unit}"

    for b in (1, 8):
        for core, title in CORES:
            e, o = cell(core, b, "engine"), cell(core, b, "ort")
            r = ratio(e.median, o.median)
            w(f"| faster than ONNX Runtime, {title}, batch {b} (engine/ORT < 1) | {fmt(r, 3)} | "
              f"{verdict(r, 1.0) if r is not None else 'n/a'} |")
    for core, title in CORES:
        r = ratio(cell(core, 1, "engine").median, cell(core, 1, "torch").median)
        lim = TORCH_TARGET_B1[core]
        w(f"| batch 1 engine/PyTorch <= {lim:.2f}, {title} | {fmt(r, 3)} | {verdict(r, lim)} |")
    for core, title in CORES:
        r = ratio(cell(core, 8, "engine").median, cell(core, 8, "torch").median)
        w(f"| batch 8 per image engine/PyTorch <= {TORCH_TARGET_B8:.2f}, {title} | {fmt(r, 3)} | "
          f"{verdict(r, TORCH_TARGET_B8)} |")
    if kernels:
        direct_rows = {r["shape"]: r for r in (direct or {}).get("results", []) if r["backend"] == "native"}
        for row in kernels["results"]:
            if row["backend"] == "native" and (row["shape"].startswith("hid7x7") or
                                               (row["shape"].startswith("vgg") and "1to64" not in row["shape"])):
                lim = 100 * KERNEL_TARGET
                f = 100 * row["gflops"] / peak
                wino = ran_winograd(row, kernels.get("peak_isa", isa))
                d = direct_rows.get(row["shape"])
                fd = 100 * d["gflops"] / peak if d else None
                if not wino:
                    measured = f"{f:.1f}% (direct summation; no Winograd or FFT ran)"
                    met = verdict(f, lim, False, " points")
                else:
                    algo = "FFT" if row.get("fft") else "Winograd"
                    measured = (f"direct-equivalent ({algo}) {f:.1f}%; direct summation "
                                + (f"{fd:.1f}%" if fd is not None else "not measured in this run"))
                    if fd is None:
                        met = (f"direct-equivalent figure: {verdict(f, lim, False, ' points')}; the direct-summation "
                               "figure, the arithmetic executed, was not measured (rerun bench/run_benchmarks.sh)")
                    elif f >= lim and fd >= lim:
                        met = f"met by both figures (direct summation: {verdict(fd, lim, False, ' points')})"
                    elif f >= lim:
                        met = (f"**met only by the direct-equivalent figure**; direct summation "
                               f"{verdict(fd, lim, False, ' points')}")
                    elif fd >= lim:
                        met = f"met only by direct summation ({verdict(fd, lim, False, ' points')})"
                    else:
                        met = f"**missed** by both (direct summation {verdict(fd, lim, False, ' points')})"
                w(f"| {row['shape']} (native) >= {lim:.0f}% of FMA peak | {measured} | {met} |")
    for core, title in CORES:
        e = cell(core, 1, "engine")
        js = [e.round_jitter[r] for r in sorted(e.round_jitter)]
        j = quantile(js, 0.5) if js else None
        w(f"| batch 1 p99 <= {P99_TARGET:.2f} x median over {a.runs1} runs, {title} | "
          f"{fmt(j, 3)} (rounds: {', '.join(f'{x:.3f}' for x in js) or 'n/a'}) | {verdict(j, P99_TARGET)} |")
    e, t = cell("seed_stacked2d", 1, "engine"), cell("seed_stacked2d", 1, "torch")
    w(f"| peak RSS, Stacked2dCore batch 1, engine <= PyTorch | {fmt(e.rss)} MB vs {fmt(t.rss)} MB | "
      f"{verdict(e.rss, t.rss, unit=' MB') if e and t else 'n/a'} |")
    w("")

    # Memory.
    w("## Peak resident memory (MB)\n")
    w("getrusage ru_maxrss of each process (one process per core, batch and framework; highest over rounds). "
      "The PyTorch process holds about its \"after import\" figure before building any model.\n")
    w("| core | batch | engine | PyTorch | PyTorch after import | ORT | ORT after loading the runtime |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for b in (1, 8):
        for core, title in CORES:
            e, t, o = cell(core, b, "engine"), cell(core, b, "torch"), cell(core, b, "ort")
            ti = max((r.get("rss_after_import_mb", 0) for r in t.rounds.values()), default=None) if t else None
            oi = max((r.get("rss_after_load_mb", 0) for r in o.rounds.values()), default=None) if o else None
            w(f"| {title} | {b} | {fmt(e.rss)} | {fmt(t.rss)} | {fmt(ti)} | {fmt(o.rss)} | {fmt(oi)} |")
    w("")

    # Kernels.
    if kernels:
        w("## Convolution kernels\n")
        w(f"`npcore_kernel_bench`, batch {kernels['batch']}, {kernels['threads']} threads, {kernels['warmup']} "
          f"warm-up + {kernels['runs']} timed runs ({kernels['reference_runs']} for the reference backend). "
          "The 9x9 1->64 and 7x7 64->64 rows are also RotationEquivariant2dCore's Hermite layers (once the "
          "filter bank is built they are these convolutions); vgg0 is vgg16's 3->64 conv with the grayscale "
          "repeat folded in (1->64). Native falls back to gemm for grouped (depthwise) convs. GFLOP are "
          "direct-equivalent; \"W\" marks rows where the native backend ran Winograd, \"F\" the tiled FFT"
          + ("" if "winograd" in (kernels["results"][0] if kernels["results"] else {"winograd": 0}) else
             " (inferred from its eligibility rule: these results predate the field)")
          + ", whose GFLOP/s overstate the arithmetic executed.\n")
        w("| shape | conv | at | backend | min ms | median ms | p99 ms | GFLOP | GFLOP/s | of peak |")
        w("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
        for row in kernels["results"]:
            mark = " F" if row.get("fft") else " W" if ran_winograd(row, kernels.get("peak_isa", isa)) else ""
            w(f"| {row['shape']} | {row['conv']} | {row['height']}x{row['width']} | {row['backend']}{mark} | "
              f"{row['min_ms']:.2f} | {row['median_ms']:.2f} | {row['p99_ms']:.2f} | {row['gflop']:.3f} | "
              f"{row['gflops']:.1f} | {100 * row['gflops'] / peak:.1f}% |")
        w("")
        if direct:
            w("Native backend summing directly (`npcore_kernel_bench --backend native --no-winograd`, same "
              "settings): here GFLOP/s are the arithmetic executed.\n")
            w("| shape | conv | at | min ms | median ms | p99 ms | GFLOP | GFLOP/s | of peak |")
            w("|---|---|---|---:|---:|---:|---:|---:|---:|")
            for row in direct["results"]:
                w(f"| {row['shape']} | {row['conv']} | {row['height']}x{row['width']} | {row['min_ms']:.2f} | "
                  f"{row['median_ms']:.2f} | {row['p99_ms']:.2f} | {row['gflop']:.3f} | {row['gflops']:.1f} | "
                  f"{100 * row['gflops'] / peak:.1f}% |")
            w("")
        else:
            w("The native backend summing directly (`--no-winograd`) was not measured in this run; "
              "bench/run_benchmarks.sh now runs it.\n")

    # Per-block breakdown.
    lay = [(core, title, load(os.path.join(a.results, f"layers_{core}.json"))) for core, title in CORES]
    if any(d for _, _, d in lay):
        w("## Engine time per block (batch 1)\n")
        w("`npcore bench C --layers`: median over 10 runs of the time between Plan::run's taps; GFLOP are "
          "direct-equivalent (the native backend's Winograd layers do fewer).\n")
        w("| core | block | ms | GFLOP | GFLOP/s | of peak |")
        w("|---|---|---:|---:|---:|---:|")
        for core, title, d in lay:
            for l in (d or {}).get("layers", []):
                w(f"| {title} | {l['block']} | {l['median_ms']:.2f} | {l['gflop']:.3f} | {l['gflops']:.1f} | "
                  f"{100 * l['gflops'] / peak:.1f}% |")
        w("")

    # Anchors.
    w("## Baselines against the issue's anchors\n")
    w("The issue quotes PyTorch 1.13 eager and ONNX Runtime 1.30 on another run of a 2-core AVX-512 machine "
      "(ms per image). They are not comparable with this run's numbers; they only show whether the "
      "baselines here behave like the ones there.\n")
    w("| core | PyTorch b1 here / anchor | PyTorch b8 per image here / anchor | ORT b1 here / anchor | "
      "ORT b8 per image here / anchor |")
    w("|---|---:|---:|---:|---:|")
    for core, title in CORES:
        t1, t8, o1, o8 = cell(core, 1, "torch"), cell(core, 8, "torch"), cell(core, 1, "ort"), cell(core, 8, "ort")
        at, ao = ANCHOR_TORCH[core], ANCHOR_ORT[core]
        w(f"| {title} | {fmt(t1.median)} / {at[0]} | {fmt(t8.median / 8 if t8 else None)} / {at[1] or 'n/a'} | "
          f"{fmt(o1.median)} / {ao[0]} | {fmt(o8.median / 8 if o8 else None)} / {ao[1]:.0f} |")
    w("")

    with open(a.out, "w") as f:
        f.write("\n".join(L))
    if a.plot_data:
        with open(a.plot_data, "w") as f:
            for b in (1, 8):
                f.write(f"# batch {b}: core engine torch ort (ms per image)\n")
                for name, *v in plot[b]:
                    f.write(f'"{name}" ' + " ".join("NaN" if math.isnan(x) else f"{x:.3f}" for x in v) + "\n")
                f.write("\n\n")


if __name__ == "__main__":
    main()
