"""ctest npcore_dump_reference: tools/dump_reference.py on freshly initialised neuralpredictors cores
(Stacked2dCore, TransferLearningCore) and on randomised ones, then `npcore check` on the cases it wrote,
which must pass. Exit 77 (skipped) when torch or neuralpredictors is not importable.
Argument: the npcore tool; PYTHONPATH holds tools/."""
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch  # noqa: F401
    import neuralpredictors.layers.cores  # noqa: F401
except Exception as e:  # ImportError, or a dependency of neuralpredictors missing
    print(f"torch or neuralpredictors is not importable ({e}): skipped")
    sys.exit(77)

import dump_reference

CORES = {
    "stacked2d": {"core": "Stacked2dCore", "config": {
        "input_channels": 1, "hidden_channels": 8, "input_kern": 5, "hidden_kern": 3, "layers": 3,
        "skip": 2, "stack": -1}, "input_shape": [2, 1, 36, 44]},
    "tl_alexnet": {"core": "TransferLearningCore", "config": {
        "input_channels": 1, "tl_model_name": "alexnet", "layers": 6, "pretrained": False, "fine_tune": False},
        "input_shape": [1, 1, 80, 96]},
}


def main():
    npcore = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        prefixes = []
        for name, desc in CORES.items():
            path = os.path.join(tmp, name + ".core.json")
            with open(path, "w") as f:
                json.dump(desc, f)
            for variant, extra in (("fresh", []), ("random", ["--randomize"])):
                prefix = os.path.join(tmp, f"{name}_{variant}")
                dump_reference.main([path, prefix, "--seed", "3"] + extra)
                for suffix in (".json", ".weights.safetensors", ".io.safetensors"):
                    assert os.path.exists(prefix + suffix), prefix + suffix
                prefixes.append(prefix)
        r = subprocess.run([npcore, "check", "--verbose", "--backend", "gemm"] + prefixes, capture_output=True,
                           text=True)
        print(r.stdout, r.stderr)
        assert r.returncode == 0, f"npcore check exited {r.returncode}"
        assert r.stdout.count("PASS") == len(prefixes), r.stdout
        assert "act/features.layer2" in r.stdout and "act/features.TransferLearning" in r.stdout, r.stdout

        # A case whose reference was tampered with in one block: check fails and names that block.
        bad = os.path.join(tmp, "stacked2d_random")
        io = dump_reference_read(bad + ".io.safetensors")
        io["act/features.layer1"] = io["act/features.layer1"] + 0.1
        dump_reference.write_safetensors(bad + ".io.safetensors", io)
        r = subprocess.run([npcore, "check", "--verbose", bad], capture_output=True, text=True)
        print(r.stdout, r.stderr)
        assert r.returncode != 0 and "first block departing from the reference: features.layer1" in r.stdout, r.stdout
    print("dump_reference: all checks passed")


def dump_reference_read(path):
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k != "__metadata__":
            b, e = v["data_offsets"]
            out[k] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(v["shape"])
    return out


if __name__ == "__main__":
    main()
