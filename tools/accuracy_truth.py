#!/usr/bin/python3
"""Float64 truth for the reference cases, and how far PyTorch float32 and npcore are from it.

For each case (NAME.json with "core" and "config", NAME.weights.safetensors, NAME.io.safetensors) this
builds the neuralpredictors core with PyTorch in float64, loads the case's weights, and runs the case's
input: that output is the truth. It then runs the same core in float32 on this machine (PyTorch's own
error) and `npcore run` with each given option set, and prints the normalised error
max|y - truth| / max|truth| of each, one markdown row per case plus the median and worst rows.

neuralpredictors is not vendored: pass a checkout of it (commit a2055cd, the one the dumps came from)
with --neuralpredictors. Its plotting and scipy imports are not needed for the cores and are stubbed
when missing. Needs /usr/bin/python3 with torch, torchvision and numpy (Debian packages).

Usage: /usr/bin/python3 tools/accuracy_truth.py --neuralpredictors DIR [--npcore build/npcore]
           [--ref ../shared/ref] [--variant "default="] [--variant "fast=--precision fast"] [CASE ...]
"""
import argparse
import glob
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import types

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[h["dtype"]]).reshape(h["shape"]).copy()
    return out


def stub_missing(names):
    """Modules the cores' imports name but do not need (plotting), or need one function of: scipy's gamma
    (Hermite filters) becomes math.gamma, elementwise."""
    import importlib
    import math

    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            m = types.ModuleType(name)
            m.__path__ = []
            m.__getattr__ = lambda attr: None
            if name == "scipy.special":
                m.gamma = np.vectorize(lambda v: math.gamma(float(v)), otypes=[np.float64])
            sys.modules[name] = m


def normalised(y, truth):
    return float(np.max(np.abs(y.astype(np.float64) - truth)) / max(np.max(np.abs(truth)), 1e-300))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neuralpredictors", required=True, help="checkout of sinzlab/neuralpredictors (a2055cd)")
    ap.add_argument("--npcore", default="build/npcore")
    ap.add_argument("--ref", default="../shared/ref")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=npcore run flags (default: default= and fast=--precision fast)")
    ap.add_argument("cases", nargs="*", help="case prefixes (default: every core case in --ref)")
    a = ap.parse_args()
    variants = [v.split("=", 1) for v in (a.variant or ["default=", "fast=--precision fast"])]

    sys.path.insert(0, a.neuralpredictors)
    stub_missing(["matplotlib", "matplotlib.pyplot", "scipy", "scipy.special"])
    import torch
    from neuralpredictors.layers import cores as npc

    # Upstream SE2dCore passes the list hidden_channels as SqueezeExcitationBlock's in_ch and crashes; the
    # reference dumps were made with in_ch = hidden_channels[l] (their note says so): the same here.
    import neuralpredictors.layers.cores.conv2d as conv2d_mod

    se_block = conv2d_mod.SqueezeExcitationBlock

    def se_with_channels(in_ch, reduction):
        if isinstance(in_ch, (list, tuple)):
            if len(set(in_ch)) != 1:
                raise SystemExit("accuracy_truth: SE2dCore with differing hidden_channels is not handled")
            in_ch = in_ch[0]
        return se_block(in_ch=in_ch, reduction=reduction)

    conv2d_mod.SqueezeExcitationBlock = se_with_channels
    torch.set_num_threads(a.threads)
    cases = a.cases or sorted(p[:-5] for p in glob.glob(os.path.join(a.ref, "*.json")))
    rows, skipped = [], []
    for prefix in cases:
        desc = json.load(open(prefix + ".json"))
        if "core" not in desc:
            continue
        name = os.path.basename(prefix)
        config = dict(desc["config"])
        if "pretrained" in config:
            config["pretrained"] = False  # the case's weights replace them
        weights = {k: torch.from_numpy(v) for k, v in read_safetensors(prefix + ".weights.safetensors").items()}
        x = read_safetensors(prefix + ".io.safetensors")["input"]
        torch.manual_seed(0)
        try:
            core = getattr(npc, desc["core"])(**config)
            core.load_state_dict(weights, strict=True)
        except Exception as e:  # upstream quirks the dumps worked around (see the case's "note")
            why = str(e).strip().splitlines()[0]
            skipped.append((name, why))
            print(f"{name}: skipped, upstream core does not build or load: {why}", file=sys.stderr, flush=True)
            continue
        core.eval()
        with torch.no_grad():
            truth = core.double()(torch.from_numpy(x).double()).numpy()
            f32 = core.float()(torch.from_numpy(x).float()).numpy()
        errs = {"pytorch": normalised(f32, truth)}
        with tempfile.TemporaryDirectory() as tmp:
            for vname, flags in variants:
                out = os.path.join(tmp, "y.npy")
                cmd = [a.npcore, "run", prefix + ".json", "-w", prefix + ".weights.safetensors", "-i",
                       prefix + ".io.safetensors", "-o", out, "-q", "--threads", str(a.threads)] + flags.split()
                subprocess.run(cmd, check=True)
                errs[vname] = normalised(np.load(out), truth)
        rows.append((name, errs))
        print(f"{name}: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()), file=sys.stderr, flush=True)

    cols = ["pytorch"] + [v for v, _ in variants]
    print("| case | PyTorch float32 | " + " | ".join(f"npcore {c}" for c in cols[1:]) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, e in rows:
        print(f"| {name} | " + " | ".join(f"{e[c]:.2e}" for c in cols) + " |")
    for label, f in (("median", statistics.median), ("worst", max)):
        print(f"| **{label}** | " + " | ".join(f"**{f([e[c] for _, e in rows]):.2e}**" for c in cols) + " |")
    for name, why in skipped:
        print(f"\nskipped {name}: {why}")


if __name__ == "__main__":
    main()
