#!/usr/bin/python3
"""Would Winograd F(3x3, 3x3) be accurate enough? A float32 emulation on the VGG reference cases.

The accuracy rule (docs/ACCURACY.md) asks the default path to be at least as close to float64 truth as
PyTorch float32. Before writing an F(m x m, 3x3) kernel, this emulates it in numpy float32 on the
TransferLearningCore VGG cases of ../shared/ref (their real weights and inputs) and on the torchvision
checkpoints' weights (a seeded standard-normal 1x3x144x256 input), against a float64 direct convolution
of the same network (the truth: it reproduces tools/accuracy_truth.py's npcore figures exactly).
It needs no torch, only numpy (Debian's python3-numpy).

Each float32 variant runs the whole feature stack on its own activations, as the engine does:
  f32 direct  float32 im2col GEMM (with Debian's reference BLAS: one sequential chain of IC*9 terms),
              a proxy of PyTorch float32 where PyTorch itself is not installed;
  F2, F3{pts} Winograd F(m x m, 3x3) on every conv with >= 16 input channels (as winograd_eligible),
              the first (RGB) conv direct; U = G g G^T made in float64 and rounded once (as the
              engine packs it), the transforms and the channel sums in float32. F3{pts} uses the finite
              points pts plus infinity (alpha 5). The channel sum is one chain of IC terms (as the
              engine's Winograd GEMM sums) or, with "K16", float32 chains of 16 channels added in float32;
  ... unpooled  F(3x3) only on the convs not followed by a 2x2 max pool (F(2x2) on the pooled ones).
It prints max|y - truth| / max|truth| per variant (and per layer with --per-layer: each Winograd layer
fed the float64 truth of its input, so the figure is that layer's own rounding).

Usage: /usr/bin/python3 tools/winograd_accuracy.py [--ref ../shared/ref] [--per-layer] [CASE ...]
"""
import argparse
import json
import struct
from fractions import Fraction as Fr

import numpy as np

CASES = ["seed_transfer_vgg16", "tl_vgg11_l8_rgb", "tl_vgg13_no_bn_no_relu", "tl_vgg16_bn_l10",
         "tv_vgg16_l12", "tv_vgg11_bn_l8"]
TV_LAYERS = {"tv_vgg16_l12": 12, "tv_vgg11_bn_l8": 8}  # features[:L] of the torchvision checkpoints
POINTS3 = {"{0,1,-1,2}": [0, 1, -1, 2], "{0,1,-1,1/2}": [0, 1, -1, Fr(1, 2)], "{0,1,-1,-1/2}": [0, 1, -1, Fr(-1, 2)]}
POINTS2 = [0, 1, -1]  # the engine's F(2x2, 3x3)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I64": np.int64, "F64": np.float64}
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=dtypes[v["dtype"]]).reshape(v["shape"])
            for k, v in header.items() if k != "__metadata__"}


def toom_cook(m, r, points):
    """A^T [m, alpha], G [alpha, r], B^T [alpha, alpha] of F(m, r) for the finite points plus infinity,
    exact in rationals (the construction of engine/winograd.h), returned as float64."""
    n = m + r - 2
    p = [Fr(x) for x in points]
    assert len(p) == n

    def poly(roots):  # coefficients of prod (x - q), ascending powers
        c = [Fr(1)]
        for q in roots:
            c = [(c[i - 1] if i > 0 else 0) - q * (c[i] if i < len(c) else 0) for i in range(len(c) + 1)]
        return c

    at = [[p[k] ** i for k in range(n)] + [Fr(int(i == m - 1))] for i in range(m)]
    g = []
    for k in range(n):
        f = Fr(1)
        for q in range(n):
            if q != k:
                f *= p[k] - p[q]
        g.append([p[k] ** j / f for j in range(r)])
    g.append([Fr(0)] * (r - 1) + [Fr(1)])
    bt = [poly([p[q] for q in range(n) if q != k]) + [Fr(0)] for k in range(n)] + [poly(p)]
    return [np.array([[float(x) for x in row] for row in mat]) for mat in (at, g, bt)]


def conv_direct(x, w, b, dtype):
    """3x3, pad 1: w [OC, C*9] @ im2col(x) [C*9, H*W], in dtype."""
    c, h, wd = x.shape
    xp = np.pad(x.astype(dtype), ((0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, i:i + h, j:j + wd] for i in range(3) for j in range(3)], axis=1).reshape(c * 9, h * wd)
    y = w.astype(dtype).reshape(w.shape[0], -1) @ cols  # [OC, C*9] @ [C*9, H*W]
    return (y + b.astype(dtype)[:, None]).reshape(w.shape[0], h, wd)


def conv_winograd(x, w, b, m, points, chain=0):
    """float32 F(m x m, 3x3), pad 1; chain > 0 sums the channels in float32 chains of that many."""
    at, g, bt = toom_cook(m, 3, points)
    a = m + 2
    oc, (c, h, wd) = w.shape[0], x.shape
    th, tw = -(-h // m), -(-wd // m)
    u = np.einsum("ai,ocij,bj->aboc", g, w.astype(np.float64), g).astype(np.float32)  # [a, a, OC, C]
    xp = np.zeros((c, th * m + 2, tw * m + 2), np.float32)
    xp[:, 1:h + 1, 1:wd + 1] = x
    s = xp.strides
    d = np.lib.stride_tricks.as_strided(xp, (c, th, tw, a, a), (s[0], s[1] * m, s[2] * m, s[1], s[2]))
    bt32, at32 = bt.astype(np.float32), at.astype(np.float32)
    v = np.einsum("ai,cxyij->cxyaj", bt32, d, dtype=np.float32)
    v = np.einsum("cxyaj,bj->abcxy", v, bt32, dtype=np.float32).reshape(a, a, c, th * tw)  # [a, a, C, T]
    if chain:
        mm = np.zeros((a, a, oc, th * tw), np.float32)
        for c0 in range(0, c, chain):
            mm = mm + np.matmul(u[..., c0:c0 + chain], v[:, :, c0:c0 + chain])
    else:
        mm = np.matmul(u, v)  # [a, a, OC, C] @ [a, a, C, T] -> [a, a, OC, T]
    y = np.einsum("ia,aboT->iboT", at32, mm, dtype=np.float32)
    y = np.einsum("iboT,jb->ijoT", y, at32, dtype=np.float32).reshape(m, m, oc, th, tw)
    y = y.transpose(2, 3, 0, 4, 1).reshape(oc, th * m, tw * m)[:, :h, :wd]
    return y + b.astype(np.float32)[:, None, None]


def network(weights, prefix, n_layers, final_bn, final_relu):
    """torchvision VGG features[:n_layers] as ('conv', w, b) (a following BatchNorm folded in float64,
    as the engine folds it before rounding), ('bn', s, t), ('relu',), ('pool',)."""
    seq = []
    for i in range(n_layers):
        k = f"{prefix}{i}."
        if k + "running_mean" in weights:
            s = weights[k + "weight"].astype(np.float64) / np.sqrt(weights[k + "running_var"].astype(np.float64) + 1e-5)
            t = weights[k + "bias"] - weights[k + "running_mean"] * s
            _, w, b = seq.pop()
            seq.append(("conv", w.astype(np.float64) * s[:, None, None, None], b.astype(np.float64) * s + t))
        elif k + "weight" in weights:
            seq.append(("conv", weights[k + "weight"], weights[k + "bias"]))
        else:
            seq.append(("relu",) if seq[-1][0] == "conv" else ("pool",))
    if final_bn:
        k = "features.OutBatchNorm."
        s = weights[k + "weight"].astype(np.float64) / np.sqrt(weights[k + "running_var"].astype(np.float64) + 1e-5)
        seq.append(("bn", s, weights[k + "bias"] - weights[k + "running_mean"] * s))
    if final_relu:
        seq.append(("relu",))
    return seq


def forward(seq, x, conv):
    """x [C, H, W]; conv(index, x, w, b) computes conv number index."""
    index = 0
    for layer in seq:
        if layer[0] == "conv":
            x = conv(index, x, layer[1], layer[2])
            index += 1
        elif layer[0] == "bn":
            x = x * layer[1][:, None, None] + layer[2][:, None, None]
        elif layer[0] == "relu":
            x = np.maximum(x, 0)
        else:
            c, h, w = x.shape
            x = x[:, :h // 2 * 2, :w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
    return x


def variants(seq):
    convs = [i for i, layer in enumerate(seq) if layer[0] == "conv"]
    pooled = {n for n, i in enumerate(convs) if i + 2 < len(seq) and seq[i + 2][0] == "pool"}

    def direct32(n, x, w, b):
        return conv_direct(x, w, b, np.float32)

    def winograd(m, points, chain=0, only=lambda n: True):
        def conv(n, x, w, b):
            if w.shape[1] < 16:
                return direct32(n, x, w, b)
            if not only(n):
                return conv_winograd(x.astype(np.float32), w, b, 2, POINTS2, chain)
            return conv_winograd(x.astype(np.float32), w, b, m, points, chain)
        return conv

    out = {"f32 direct": direct32, "F2": winograd(2, POINTS2), "F2 K16": winograd(2, POINTS2, 16)}
    for name, pts in POINTS3.items():
        out["F3" + name] = winograd(3, pts)
        out["F3" + name + " K16"] = winograd(3, pts, 16)
        out["F3" + name + " unpooled"] = winograd(3, pts, only=lambda n: n not in pooled)
    return out


def nerr(y, truth):
    return float(np.abs(y.astype(np.float64) - truth).max() / np.abs(truth).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", default="../shared/ref")
    ap.add_argument("--per-layer", action="store_true", help="each Winograd layer's own error, on its float64 input")
    ap.add_argument("cases", nargs="*", default=CASES)
    args = ap.parse_args()
    for name in args.cases:
        if name in TV_LAYERS:
            weights = load_safetensors(f"{args.ref}/torchvision/{name}.expected.safetensors")
            seq = network(weights, "features.", TV_LAYERS[name], False, False)
            x = np.random.default_rng(1).standard_normal((1, 3, 144, 256)).astype(np.float32)
            pytorch = None
        else:
            cfg = json.load(open(f"{args.ref}/{name}.json"))["config"]
            weights = load_safetensors(f"{args.ref}/{name}.weights.safetensors")
            io = load_safetensors(f"{args.ref}/{name}.io.safetensors")
            seq = network(weights, "features.TransferLearning.", cfg["layers"], cfg.get("final_batchnorm", True),
                          cfg.get("final_nonlinearity", True))
            x, pytorch = io["input"], io["output"]
            if cfg["input_channels"] == 1:  # TransferLearningCore repeats a grey input to RGB
                x = np.repeat(x, 3, axis=1)
        f64 = lambda n, x, w, b: conv_direct(x, w, b, np.float64)
        truth = np.stack([forward(seq, xi.astype(np.float64), f64) for xi in x])
        row = {k: nerr(np.stack([forward(seq, xi, conv) for xi in x]), truth) for k, conv in variants(seq).items()}
        if pytorch is not None:
            row["PyTorch f32 (the dump's machine)"] = nerr(pytorch, truth)
        print(name, "; ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
        if args.per_layer:
            per_layer(seq, x[0].astype(np.float64))


def per_layer(seq, x):
    for layer in seq:
        if layer[0] == "conv" and layer[1].shape[1] >= 16:
            w, b = layer[1], layer[2]
            truth = conv_direct(x, w, b, np.float64)
            x32 = x.astype(np.float32)
            row = {"f32 direct": nerr(conv_direct(x32, w, b, np.float32), truth),
                   "F2": nerr(conv_winograd(x32, w, b, 2, POINTS2), truth),
                   "F2 K16": nerr(conv_winograd(x32, w, b, 2, POINTS2, 16), truth)}
            for k, pts in POINTS3.items():
                row["F3" + k] = nerr(conv_winograd(x32, w, b, 3, pts), truth)
                row["F3" + k + " K16"] = nerr(conv_winograd(x32, w, b, 3, pts, 16), truth)
            print(f"  {w.shape[1]}->{w.shape[0]} at {x.shape[1]}x{x.shape[2]}:", "; ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
        x = forward([layer], x, lambda n, x, w, b: conv_direct(x, w, b, np.float64))


if __name__ == "__main__":
    main()
