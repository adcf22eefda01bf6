#!/usr/bin/env python3
"""Writes a PyTorch reference case of a neuralpredictors core in the three-file format of ../shared/ref
(NAME.json, NAME.weights.safetensors, NAME.io.safetensors with `input`, `output` and `act/features.<child>`,
the output of each top-level block), so that `npcore check NAME` compares the engine with PyTorch on your
own core. Needs torch and neuralpredictors (and torchvision for TransferLearningCore); not the safetensors
package.

  tools/dump_reference.py CORE.json OUT/NAME [--weights trained.pth [--prefix core.]] [--input-shape N,C,H,W]
                          [--seed S] [--randomize]

CORE.json is the description npcore reads: {"core": "Stacked2dCore", "config": {...keyword arguments...}}.
Without --weights the core keeps PyTorch's fresh initialisation (--randomize: every parameter and buffer
random, batch-norm statistics included, as ../shared/ref does, so that every term of the math is checked).
--weights takes a state_dict (.pth / .pt, torch.save; or .safetensors); --prefix picks a model's core out of a
whole model's state_dict (e.g. "core."). From Python: dump(core, "Stacked2dCore", config, "out/NAME", x).
"""
import argparse
import json
import os
import struct
import sys

import torch

# torch dtype -> safetensors dtype name
_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
           torch.bool: "BOOL"}


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: torch.Tensor} as safetensors (8-byte little-endian header length, JSON header with dtype,
    shape and data_offsets, raw little-endian data), atomically."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {t.dtype}, which safetensors cannot hold")
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data 8-byte aligned, as the safetensors package writes it
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def randomize_(core, seed):
    """Every parameter and floating buffer random (variances positive), as the ../shared/ref cases are."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in list(core.named_parameters()) + list(core.named_buffers()):
            if not p.is_floating_point():
                continue
            if name.endswith("running_var"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() <= 1 else 1.0 / max(1, p[0].numel()) ** 0.5))


def build_core(kind, config):
    from neuralpredictors.layers import cores
    cls = getattr(cores, kind, None)
    if cls is None:
        raise SystemExit(f"dump_reference: neuralpredictors has no core '{kind}'")
    return cls(**config)


def load_state_dict(path, prefix):
    if path.endswith(".safetensors"):
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
        inv = {v: k for k, v in _DTYPES.items()}
        sd = {}
        for k, v in header.items():
            if k == "__metadata__":
                continue
            b, e = v["data_offsets"]
            dt = inv[v["dtype"]]
            t = torch.frombuffer(bytearray(data[b:e]), dtype=torch.int16 if dt == torch.bfloat16 else dt)
            sd[k] = (t.view(torch.bfloat16) if dt == torch.bfloat16 else t).reshape(v["shape"])
    else:
        sd = torch.load(path, map_location="cpu")
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if hasattr(sd, "state_dict"):  # a whole pickled module
            sd = sd.state_dict()
    if prefix:
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not sd:
            raise SystemExit(f"dump_reference: {path}: no key starts with '{prefix}'")
    return sd


def dump(core, kind, config, prefix, x, seed=None, note=None):
    """Runs `core` (a neuralpredictors core, any mode: it is put in eval mode) on `x` and writes the three files
    PREFIX.json, PREFIX.weights.safetensors, PREFIX.io.safetensors. `kind` and `config` are the class name and
    keyword arguments the core was built with (what npcore builds it from)."""
    core.eval()
    acts, hooks = {}, []
    for child, module in core.features.named_children():
        def hook(_m, _inp, out, name=f"act/features.{child}"):
            acts[name] = out.detach().clone()
        hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        y = core(x)
    for h in hooks:
        h.remove()
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    desc = {"core": kind, "config": config, "input_shape": list(x.shape), "output_shape": list(y.shape),
            "mode": "eval", "torch": torch.__version__, "source": "tools/dump_reference.py"}
    if seed is not None:
        desc["seed"] = seed
    if note:
        desc["note"] = note
    with open(prefix + ".json", "w") as f:
        json.dump(desc, f, indent=2)
        f.write("\n")
    write_safetensors(prefix + ".weights.safetensors", dict(core.state_dict()))
    write_safetensors(prefix + ".io.safetensors", {"input": x, "output": y, **acts})
    return y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("core_json", help='core description {"core": ..., "config": {...}} (what npcore reads)')
    ap.add_argument("out", help="output prefix OUT/NAME: writes NAME.json, NAME.weights.safetensors, NAME.io.safetensors")
    ap.add_argument("--weights", help="state_dict to load (.pth/.pt or .safetensors), strictly")
    ap.add_argument("--prefix", default="", help='key prefix of the core in --weights (e.g. "core.")')
    ap.add_argument("--input-shape", help="N,C,H,W (default: the JSON's input_shape, else 1,C,64,64)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the input (and of --randomize)")
    ap.add_argument("--randomize", action="store_true", help="randomise every parameter and buffer")
    a = ap.parse_args(argv)

    with open(a.core_json) as f:
        desc = json.load(f)
    if "core" not in desc or not isinstance(desc.get("config"), dict):
        raise SystemExit(f'dump_reference: {a.core_json}: expected {{"core": NAME, "config": {{...}}}}')
    kind, config = desc["core"], desc["config"]
    torch.manual_seed(a.seed)
    core = build_core(kind, config)
    if a.weights:
        core.load_state_dict(load_state_dict(a.weights, a.prefix), strict=True)
    if a.randomize:
        randomize_(core, a.seed)
    if a.input_shape:
        try:
            shape = [int(v) for v in a.input_shape.split(",")]
        except ValueError:
            raise SystemExit(f"dump_reference: --input-shape {a.input_shape!r}: expected N,C,H,W (integers)")
    else:
        shape = desc.get("input_shape") or [1, int(config.get("input_channels", 1)), 64, 64]
    if len(shape) != 4:
        raise SystemExit(f"dump_reference: input shape {shape} is not N,C,H,W")
    x = torch.randn(shape, generator=torch.Generator().manual_seed(a.seed))
    y = dump(core, kind, config, a.out, x, seed=a.seed)
    print(f"dump_reference: {a.out}.json/.weights.safetensors/.io.safetensors: {kind} {tuple(shape)} -> {tuple(y.shape)}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        # One line naming the problem (a file, a bad shape, a config neuralpredictors refuses, a state_dict
        # that does not fit), not a traceback.
        print(f"dump_reference: error: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        sys.exit(2)
