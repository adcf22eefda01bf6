#!/usr/bin/python3
"""Copies small whole-model reference cases from ../shared/ref/models into tests/fixtures/models, for a
clone without ../shared: NAME.json and NAME.weights.safetensors unchanged, NAME.io.safetensors reduced to
`input`, `pupil_center` (if any) and every `output/<data_key>` (the core's `act/core` makes the io files
~1 MB each; it is compared when ../shared/ref is present). Plain Python, no numpy or torch needed.

usage: tools/make_model_fixtures.py [REF_MODELS_DIR] [OUT_DIR]
"""
import json
import shutil
import struct
import sys
from pathlib import Path

CASES = [
    "model_stacked2d_gaussian_shifter",
    "model_stacked2d_gaussian_cortex",
    "model_rot_pointpooled",
    "model_se2d_gaussian_nobias_aligned_false",
]


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__", None)
    return header, data, meta


def write_safetensors(path, tensors, meta):
    header, blobs, off = {}, [], 0
    for name, (info, blob) in tensors.items():
        header[name] = {"dtype": info["dtype"], "shape": info["shape"], "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/ref/models")
    dst = Path(sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/models")
    dst.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        for suffix in (".json", ".weights.safetensors"):
            shutil.copyfile(src / (case + suffix), dst / (case + suffix))
        header, data, meta = read_safetensors(src / (case + ".io.safetensors"))
        keep = {}
        for name, info in header.items():  # the file's order
            if name == "input" or name == "pupil_center" or name.startswith("output/"):
                a, b = info["data_offsets"]
                keep[name] = (info, data[a:b])
        write_safetensors(dst / (case + ".io.safetensors"), keep, meta)
        print(case, sum(len(b) for _, b in keep.values()), "bytes of tensors")


if __name__ == "__main__":
    main()
