#!/usr/bin/python3
"""PyTorch eager baseline for `npcore bench`: times one core, described by the same JSON
(../shared/ref/seed_*.json), on the same random input shape with the same thread count.

    /usr/bin/python3 bench/torch_baseline.py CONFIG.json --batch 8 --threads 2 --runs 10 --json
    /usr/bin/python3 bench/torch_baseline.py CONFIG.json --export-onnx core.onnx

The core is neuralpredictors' own class when the package is importable (a user's install); otherwise,
or when the upstream class cannot be built for this configuration (SE2dCore with n_se_blocks > 0
crashes upstream), torch.nn modules doing the same computation:
  * Stacked2dCore / SE2dCore: Conv2d, BatchNorm2d, Bias/Scale as upstream, elu(x - xshift) + yshift,
    with depth_separable: hidden layers as DepthSeparableConv2d (1x1, depthwise k x k, 1x1, then the norm),
    the SE block (mean pool, Linear, ReLU, Linear, Sigmoid, multiply), torch.cat of the stacked outputs;
  * RotationEquivariant2dCore: the Hermite layer as a plain Conv2d of the same shape (hidden*rotations
    outputs, no bias) and upstream's rotation-shared BatchNorm (BatchNorm1d over a permuted view).
    Upstream rebuilds the filter bank from the Hermite coefficients in every forward; this fallback does
    not, which is generous to PyTorch (the output says so);
  * TransferLearningCore: torchvision's vgg/alexnet features[:layers] (random weights), the 1->3 channel
    repeat of a grayscale input, then BatchNorm2d and ReLU.
Every run is in eval mode under torch.inference_mode(), with torch.set_num_threads(N) and one inter-op
thread. Latencies are summarised as `npcore bench` does (percentiles interpolated linearly); peak RSS
is getrusage's ru_maxrss of this process, so run one process per core (bench/run_benchmarks.sh does).
"""
import argparse
from collections import OrderedDict
import json
import math
import re
import os
import resource
import sys
import time


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def quantile(sorted_values, q):
    if not sorted_values:
        return 0.0
    pos = q * (len(sorted_values) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def summarize(ms):
    s = sorted(ms)
    return {
        "runs": len(s),
        "min_ms": s[0],
        "median_ms": quantile(s, 0.5),
        "p99_ms": quantile(s, 0.99),
        "max_ms": s[-1],
        "mean_ms": sum(s) / len(s),
    }


# ---- torch.nn equivalents of the cores (used when neuralpredictors is not importable) -----------------

STACKED_KEYS = {
    "input_channels", "hidden_channels", "input_kern", "hidden_kern", "layers", "stack", "pad_input",
    "bias", "batch_norm", "batch_norm_scale", "final_batchnorm_scale", "final_nonlinearity", "elu_shift",
    "hidden_padding", "stride", "input_stride", "momentum", "gamma_input", "gamma_hidden", "skip",
    "laplace_padding", "input_regularizer", "use_avg_reg", "hidden_dilation", "depth_separable",
}
SE_KEYS = STACKED_KEYS | {"se_reduction", "n_se_blocks"}
ROT_KEYS = STACKED_KEYS | {"num_rotations", "upsampling", "rot_eq_batch_norm", "init_std"}
TL_KEYS = {"input_channels", "tl_model_name", "layers", "pretrained", "final_batchnorm", "final_nonlinearity",
           "momentum", "fine_tune"}


def build_fallback(core, cfg, torch, nn):
    F = torch.nn.functional

    class ShiftedELU(nn.Module):  # neuralpredictors AdaptiveELU
        def __init__(self, xshift, yshift):
            super().__init__()
            self.xshift, self.yshift = xshift, yshift

        def forward(self, x):
            return F.elu(x - self.xshift) + self.yshift

    class Bias2D(nn.Module):  # neuralpredictors Bias2DLayer (rotations > 1: RotationEquivariantBias2DLayer)
        def __init__(self, shape, rotations=1):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(shape))
            self.r = rotations

        def forward(self, x):
            if self.r == 1:
                return x + self.bias
            n, rc, h, w = x.shape
            return (x.view(n, self.r, rc // self.r, h, w) + self.bias).view(n, rc, h, w)

    class Scale2D(nn.Module):  # neuralpredictors Scale2DLayer (rotations > 1: RotationEquivariantScale2DLayer)
        def __init__(self, shape, rotations=1):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(shape))
            self.r = rotations

        def forward(self, x):
            if self.r == 1:
                return x * self.scale
            n, rc, h, w = x.shape
            return (x.view(n, self.r, rc // self.r, h, w) * self.scale).view(n, rc, h, w)

    class RotEqBatchNorm(nn.Module):  # neuralpredictors RotationEquivariantBatchNorm2D's computation
        def __init__(self, features, rotations, affine):
            super().__init__()
            self.c, self.r = features, rotations
            self.batch_norm = nn.BatchNorm1d(features, affine=affine)

        def forward(self, x):
            n, _, h, w = x.shape
            y = x.view(n, self.r, self.c, h, w).permute(0, 2, 1, 3, 4).reshape(n, self.c, self.r * h * w)
            y = self.batch_norm(y)
            return y.view(n, self.c, self.r, h, w).permute(0, 2, 1, 3, 4).reshape(n, self.r * self.c, h, w)

    class GlobalAvgPool(nn.Module):
        def forward(self, x):
            return x.view(*x.shape[:-2], -1).mean(-1)

    class SqueezeExcitation(nn.Module):  # neuralpredictors SqueezeExcitationBlock (same module names)
        def __init__(self, ch, reduction):
            super().__init__()
            self.se = nn.Sequential(GlobalAvgPool(), nn.Linear(ch, ch // reduction), nn.ReLU(inplace=True),
                                    nn.Linear(ch // reduction, ch), nn.Sigmoid())

        def forward(self, x):
            return x.mul(self.se(x).unsqueeze(-1).unsqueeze(-1))

    class DepthSeparable(nn.Sequential):  # neuralpredictors DepthSeparableConv2d: same layers, same names
        def __init__(self, cin, cout, k, stride, padding, dilation, bias):
            super().__init__(OrderedDict(
                in_depth_conv=nn.Conv2d(cin, cout, 1, bias=bias),  # 1x1: channels in -> out
                spatial_conv=nn.Conv2d(cout, cout, k, stride=stride, padding=padding, dilation=dilation,
                                       bias=bias, groups=cout),  # depthwise k x k
                out_depth_conv=nn.Conv2d(cout, cout, 1, bias=bias)))  # 1x1: out -> out

    class Stacked(nn.Module):  # module names as upstream's state_dict: features.layer0.conv, ...
        def __init__(self, layers, stack):
            super().__init__()
            self.features = nn.Sequential(OrderedDict((f"layer{l}", m) for l, m in enumerate(layers)))
            self.stack = stack

        def forward(self, x):
            ret = []
            for f in self.features:
                x = f(x)
                ret.append(x)
            return torch.cat([ret[i] for i in self.stack], dim=1)

    if core in ("Stacked2dCore", "SE2dCore", "RotationEquivariant2dCore"):
        allowed = {"Stacked2dCore": STACKED_KEYS, "SE2dCore": SE_KEYS, "RotationEquivariant2dCore": ROT_KEYS}[core]
        unknown = sorted(set(cfg) - allowed)
        if unknown:
            raise SystemExit(f"torch_baseline: the torch.nn fallback for {core} does not model {unknown}; "
                             "install neuralpredictors to time this configuration")
        if cfg.get("skip", 0) > 1:
            raise SystemExit("torch_baseline: the torch.nn fallback does not model skip > 1")
        n = cfg.get("layers", 3)
        hidden = cfg["hidden_channels"]
        hidden = hidden if isinstance(hidden, list) else [hidden] * n
        hk = cfg["hidden_kern"]
        hk = hk if isinstance(hk, list) else [hk] * (n - 1)
        bias = cfg.get("bias", core != "SE2dCore")
        bn = cfg.get("batch_norm", True)
        scale = cfg.get("batch_norm_scale", True)
        final_nl = cfg.get("final_nonlinearity", True)
        xs, ys = cfg.get("elu_shift", (0, 0))
        pad = cfg.get("pad_input", True)
        rot = cfg.get("num_rotations", 1) if core == "RotationEquivariant2dCore" else 1
        n_se = cfg.get("n_se_blocks", 0) if core == "SE2dCore" else 0
        se_red = cfg.get("se_reduction", 32)
        stack = cfg.get("stack", None)
        stack = list(range(n)) if stack is None else (list(range(n))[stack:] if isinstance(stack, int) else stack)
        hidden_padding = cfg.get("hidden_padding", None)
        ds = cfg.get("depth_separable", False)
        if ds and rot > 1:
            raise SystemExit("torch_baseline: RotationEquivariant2dCore has no depth_separable option")
        dil = cfg.get("hidden_dilation", 1)
        layers = []
        for l in range(n):
            cin = cfg["input_channels"] if l == 0 else hidden[l - 1] * rot
            k = cfg["input_kern"] if l == 0 else hk[l - 1]
            if l == 0:
                p = k // 2 if pad else 0
            elif rot > 1:
                hidden_padding = hk[0] // 2 if hidden_padding is None else hidden_padding
                p = hidden_padding
            else:
                p = hidden_padding or k // 2
            conv_bias = (bias and not bn) if l == 0 else (rot == 1)  # upstream: hidden convs always biased
            stride = cfg.get("input_stride", 1) if (l == 0 and rot == 1) else cfg.get("stride", 1)
            if ds and l > 0:
                # Upstream's hidden layers with depth_separable: module "ds_conv", padding from the dilated
                # kernel extent, its three convs biased like the plain hidden conv (always, in the version
                # the reference dumps come from: SE2dCore's state_dicts hold their biases too).
                p = hidden_padding or ((k - 1) * dil + 1) // 2
                m = OrderedDict(ds_conv=DepthSeparable(cin, hidden[l], k, stride, p, dil, conv_bias))
            else:
                m = OrderedDict(conv=nn.Conv2d(cin, hidden[l] * rot, k, stride=stride, padding=p, bias=conv_bias))
            if bn:
                if rot > 1:
                    m["norm"] = RotEqBatchNorm(hidden[l], rot, affine=bias and scale)
                    shape = (1, 1, hidden[l], 1, 1)
                else:
                    m["norm"] = nn.BatchNorm2d(hidden[l], affine=bias and scale)
                    shape = (1, hidden[l], 1, 1)
                if bias and not scale:
                    m["bias"] = Bias2D(shape, rot)
                elif scale and not bias:
                    m["scale"] = Scale2D(shape, rot)
            if l < n - 1 or final_nl:
                m["nonlin"] = ShiftedELU(xs, ys)
            if n_se and n - l <= n_se and l > 0:
                m["seg_ex_block"] = SqueezeExcitation(hidden[l], se_red)
            layers.append(nn.Sequential(m))
        return Stacked(layers, stack)

    if core == "TransferLearningCore":
        unknown = sorted(set(cfg) - TL_KEYS)
        if unknown:
            raise SystemExit(f"torch_baseline: the torch.nn fallback for {core} does not model {unknown}")
        import torchvision

        name = cfg["tl_model_name"]
        vgg_cfgs = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
        if name.replace("_bn", "") in vgg_cfgs:
            # Only the features: building the whole model would allocate its 400 MB classifier and count it
            # in the peak RSS (upstream does build it; the engine never holds it).
            from torchvision.models import vgg

            feats = vgg.make_layers(vgg.cfgs[vgg_cfgs[name.replace("_bn", "")]], batch_norm=name.endswith("_bn"))
        else:
            feats = getattr(torchvision.models, name)(weights=None).features
        feats = feats[: cfg["layers"]]
        last_conv = [m for m in feats if isinstance(m, nn.Conv2d)][-1]
        first_conv = [m for m in feats if isinstance(m, nn.Conv2d)][0]
        repeat = cfg.get("input_channels", 1) == 1 and first_conv.in_channels == 3

        class TransferLearning(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential()
                self.features.add_module("TransferLearning", feats)
                if cfg.get("final_batchnorm", True):
                    self.features.add_module("OutBatchNorm", nn.BatchNorm2d(last_conv.out_channels))
                if cfg.get("final_nonlinearity", True):
                    self.features.add_module("OutNonlin", nn.ReLU(inplace=True))

            def forward(self, x):
                if repeat:
                    x = x.repeat(1, 3, 1, 1)
                return self.features(x)

        return TransferLearning()

    raise SystemExit(f"torch_baseline: unknown core {core!r}")


def read_safetensors(path, torch):
    """The tensors of a .safetensors file (a minimal reader: the format is a JSON header and raw bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "F16": torch.float16}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[8 + n + b:8 + n + e]), dtype=dtypes[v["dtype"]]).reshape(v["shape"])
    return out


def hermite_filter_bank(sd, prefix, first_layer, k, torch):
    """The conv weight [R*out, in, k, k] of a HermiteConv2D from its state_dict (coeffs, basis H, rotation
    matrices Rs.i), as CORES.md describes it; only for --check-ref of the fallback's plain convs."""
    coeffs = sd[prefix + ".coeffs"]  # [n, in, out]
    H = sd[prefix + ".rotate_hermite.H"]  # [n, k*up, k*up]
    rots = sorted(int(key.rsplit(".", 1)[1]) for key in sd if key.startswith(prefix + ".rotate_hermite.Rs."))
    n, cin, cout = coeffs.shape
    banks = []
    for i in rots:
        rotated = (sd[f"{prefix}.rotate_hermite.Rs.{i}"] @ coeffs.reshape(n, cin * cout)).reshape(n, cin, cout)
        w = torch.tensordot(H, rotated, dims=([0], [0]))  # [k*up, k*up, in, out]
        if i > 0 and not first_layer:
            w = torch.roll(w, shifts=i * (cin // len(rots)), dims=2)
        banks.append(w)
    w = torch.cat(banks, dim=3)  # [k*up, k*up, in, R*out]: output channel = rotation*out + o
    up = w.shape[0] // k
    w = w.reshape(k, up, k, up, cin, -1).sum(dim=(1, 3))  # [k, k, in, R*out]: each up x up block summed
    return w.permute(3, 2, 0, 1).contiguous()


def check_reference(model, prefix, core, impl, torch):
    """Loads PREFIX.weights.safetensors into the model and compares its output on PREFIX.io.safetensors with
    the reference output: evidence that the baseline computes what the engine computes."""
    sd = read_safetensors(prefix + ".weights.safetensors", torch)
    io = read_safetensors(prefix + ".io.safetensors", torch)
    own = model.state_dict()
    if core == "RotationEquivariant2dCore" and impl == "torch.nn":
        sd = dict(sd)
        for k in own:
            m = re.match(r"(features\.layer(\d+))\.conv\.weight$", k)
            if m and f"{m.group(1)}.hermite_conv.coeffs" in sd:
                sd[k] = hermite_filter_bank(sd, m.group(1) + ".hermite_conv", int(m.group(2)) == 0,
                                            own[k].shape[-1], torch)
    missing = [k for k in own if k not in sd]
    if missing:
        print(f"check {prefix}: cannot load the reference weights into the {impl} model: missing {missing[:4]}"
              f"{' ...' if len(missing) > 4 else ''}")
        return 3
    model.load_state_dict({k: sd[k] for k in own})
    with torch.inference_mode():
        y = model(io["input"])
    ref = io["output"]
    if tuple(y.shape) != tuple(ref.shape):
        print(f"check {prefix}: output shape {list(y.shape)}, reference {list(ref.shape)}: FAIL")
        return 1
    err = float((y - ref).abs().max() / ref.abs().max())
    ok = err <= 1e-4
    how = " (Hermite filter banks built from the coefficients)" if core == "RotationEquivariant2dCore" else ""
    print(f"check {prefix}: {impl} model with the reference weights{how}, max|y - ref| / max|ref| = {err:.2e} "
          f"(bound 1e-4): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def build_upstream(core, cfg, torch):
    """neuralpredictors' own class, or None (with the reason) if it is not importable or fails."""
    try:
        import neuralpredictors.layers.cores as cores
    except Exception as e:  # not installed: the usual case on a machine with Debian's torch only
        return None, f"neuralpredictors not importable ({type(e).__name__})"
    cfg = dict(cfg)
    if core == "TransferLearningCore":
        cfg["pretrained"] = False  # timing only: random weights, no download
    try:
        return getattr(cores, core)(**cfg), None
    except Exception as e:
        return None, f"upstream {core} could not be built for this config ({type(e).__name__}: {e})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="core JSON ({'core': ..., 'config': {...}}, input_shape and seed used if present)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--height", type=int, default=0, help="default: the config's input_shape, else 144")
    ap.add_argument("--width", type=int, default=0, help="default: the config's input_shape, else 256")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--impl", choices=["auto", "torch.nn"], default="auto",
                    help="auto: neuralpredictors if importable, else torch.nn modules")
    ap.add_argument("--export-onnx", metavar="PATH", help="export the model to ONNX (opset 13, dynamic batch) "
                    "instead of timing it")
    ap.add_argument("--check-ref", metavar="PREFIX", help="instead of timing, load PREFIX.weights.safetensors and "
                    "compare the output on PREFIX.io.safetensors with the reference (exit 0 if close)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if a.batch < 1 or a.runs < 1 or a.warmup < 0:
        ap.error("--batch and --runs must be >= 1, --warmup >= 0")

    with open(a.config) as f:
        desc = json.load(f)
    core, cfg = desc["core"], desc["config"]
    shape = desc.get("input_shape") or [1, cfg.get("input_channels", 1), 144, 256]
    H = a.height or shape[2]
    W = a.width or shape[3]
    C = cfg.get("input_channels", 1)
    seed = desc.get("seed", 0)

    import torch
    import torch.nn as nn

    threads = a.threads or os.cpu_count()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    rss_import = peak_rss_mb()
    torch.manual_seed(seed)

    notes = []
    model, why = (None, "torch.nn requested") if a.impl == "torch.nn" else build_upstream(core, cfg, torch)
    impl = "neuralpredictors"
    if model is None:
        impl = "torch.nn"
        notes.append(why)
        model = build_fallback(core, cfg, torch, nn)
        if core == "RotationEquivariant2dCore":
            notes.append("the Hermite layers are plain Conv2d: upstream's per-forward filter-bank rebuild is "
                         "omitted, which is generous to PyTorch")
    if core == "TransferLearningCore" and cfg.get("pretrained", True):
        notes.append("pretrained taken as false (random weights)")
    model.eval()

    if a.check_ref:
        return check_reference(model, a.check_ref, core, impl, torch)
    x = torch.rand(a.batch, C, H, W)
    if a.export_onnx:
        with torch.no_grad():
            torch.onnx.export(model, x, a.export_onnx, opset_version=13, input_names=["input"],
                              output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        print(json.dumps({"core": core, "impl": impl, "onnx": a.export_onnx, "opset": 13,
                          "torch": torch.__version__, "notes": notes}))
        return

    times = []
    with torch.inference_mode():
        for _ in range(a.warmup):
            out = model(x)
        for _ in range(a.runs):
            t0 = time.perf_counter()
            out = model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    st = summarize(times)
    r = {
        "core": core, "config": a.config, "impl": impl, "framework": "pytorch", "torch": torch.__version__,
        "batch": a.batch, "channels": C, "height": H, "width": W, "threads": threads,
        "warmup": a.warmup, **st, "per_image_ms": st["median_ms"] / a.batch,
        "output_shape": list(out.shape), "rss_after_import_mb": rss_import, "peak_rss_mb": peak_rss_mb(),
        "notes": notes, "times_ms": times,
    }
    if a.json:
        print(json.dumps(r))
    else:
        print(f"torch_baseline {a.config}: {core} ({impl}), PyTorch {torch.__version__} eager, {threads} threads")
        for n in notes:
            print(f"note: {n}")
        print(f"input: [{a.batch}, {C}, {H}, {W}]; runs: {a.warmup} warm-up, {a.runs} timed")
        print(f"latency per batch: median {st['median_ms']:.2f} ms, min {st['min_ms']:.2f} ms, "
              f"p99 {st['p99_ms']:.2f} ms (max {st['max_ms']:.2f} ms)")
        print(f"per image: median {r['per_image_ms']:.2f} ms")
        print(f"peak RSS: {r['peak_rss_mb']:.1f} MB (after importing torch: {rss_import:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
