#!/usr/bin/python3
"""Writes the small PyTorch checkpoints that tests/test_torch_checkpoint.cpp reads (tests/fixtures/pth/).

Run with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):
    /usr/bin/python3 tools/make_pth_fixtures.py [OUT_DIR]

Two kinds of files:
  * real torch.save output with the layouts a reader must handle: non-contiguous strides, storage
    offsets, several tensors sharing one storage, F16/F64/I64/bool dtypes, 0-dim and empty tensors,
    nn.Parameter values, pickle protocol 4, the legacy format; each with NAME.expected.safetensors
    holding dense copies of the same tensors (written here by hand; no safetensors package needed);
  * files a reader must refuse: pickles naming os.system / builtins.eval, a whole nn.Module, a nested
    training checkpoint, a truncated zip, and zips whose pickle and storages disagree (crafted with a
    custom Pickler, since torch.save never writes them);
  * files beyond the reader's limits: a tensor whose zero strides expand 4 bytes of storage to 2 GiB
    (zip and legacy), eight tensors of 1 MiB each expanded from one float, a stored storage entry whose bytes fail the zip CRC-32, a data.pkl claiming more
    than 64 MiB (bzip2-compressed zeros, so the file stays small).
Nothing here is executed when the files are written: pickling a __reduce__ only records the call.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "pth")

ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.int64: "I64",
             torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def save_pair(name, sd, **kw):
    torch.save(sd, os.path.join(OUT, name + ".pth"), **kw)
    write_safetensors(os.path.join(OUT, name + ".expected.safetensors"), sd)


# ---- layouts that must read -------------------------------------------------------------------------

def layouts():
    g = torch.Generator().manual_seed(7)
    base = torch.randn(4, 6, generator=g)
    shared = torch.arange(12, dtype=torch.float32)
    sd = collections.OrderedDict()
    sd["transposed"] = base.t()                     # stride (1, 6): gathered
    sd["row"] = base[2]                             # storage offset 12, dense
    sd["cols"] = base[:, 1:5:2]                     # offset 1, stride (6, 2)
    sd["shared_a"] = shared[:6].view(2, 3)          # two views of one storage
    sd["shared_b"] = shared[6:]
    sd["half"] = torch.randn(3, 5, generator=g).half()
    sd["double"] = torch.randn(2, 2, 2, generator=g).double()
    sd["long"] = torch.arange(-3, 4, dtype=torch.int64)
    sd["flags"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 3, generator=g))
    sd["broadcast"] = torch.randn(3, generator=g).expand(2, 3)  # stride (0, 1)
    return sd


def write_layouts():
    sd = layouts()
    dense = collections.OrderedDict((k, v.detach().clone()) for k, v in sd.items())
    torch.save(sd, os.path.join(OUT, "layouts.pth"))
    torch.save(sd, os.path.join(OUT, "layouts.legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(sd, os.path.join(OUT, "layouts.proto4.pth"), pickle_protocol=4)
    write_safetensors(os.path.join(OUT, "layouts.expected.safetensors"), dense)


# ---- files to refuse ----------------------------------------------------------------------------------

class CallOsSystem:
    def __reduce__(self):
        return (os.system, ("echo npcore-fixture-must-not-run",))


class CallEval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('echo npcore-fixture-must-not-run')",))


class FakeStorage:
    def __init__(self, key, numel, kind=torch.FloatStorage):
        self.key, self.numel, self.kind = key, numel, kind


class FakeTensor:
    """Pickles as torch.save pickles a tensor, with whatever geometry it is given."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class FakePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def write_crafted_zip(name, obj, storages):
    """A zip laid out as torch.save lays it out: <name>/data.pkl, <name>/data/<key>, <name>/version."""
    buf = io.BytesIO()
    FakePickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(os.path.join(OUT, name + ".pth"), "w", zipfile.ZIP_STORED) as z:
        z.writestr(name + "/data.pkl", buf.getvalue())
        for key, data in storages.items():
            z.writestr(name + "/data/" + key, data)
        z.writestr(name + "/version", "3\n")


class FakeLegacyPickler(pickle.Pickler):
    """persistent ids of the legacy format, which could name a view of a larger storage (pre-1.0 torch)."""

    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            view = getattr(obj, "view", None)  # (view key, offset, size) in elements of the root
            return ("storage", obj.kind, obj.key, "cpu", obj.numel, view)
        return None


def write_crafted_legacy(name, obj, storages):
    """The legacy layout: magic, protocol, sys info, the object, the sorted storage keys, then each storage
    as an 8-byte element count and its bytes. `storages` maps key -> (element count, bytes)."""
    with open(os.path.join(OUT, name + ".pth"), "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001,
                       {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        FakeLegacyPickler(f, protocol=2).dump(obj)
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=2)
        for k in keys:
            numel, data = storages[k]
            f.write(struct.pack("<q", numel) + data)


def write_legacy_views():
    """Two tensors on views of one 10-element storage: view A = elements [2, 8), view B = [5, 10)."""
    root = torch.arange(10, dtype=torch.float32) * 0.5
    a = FakeStorage("100", 10)
    a.view = ("101", 2, 6)
    b = FakeStorage("100", 10)
    b.view = ("102", 5, 5)
    obj = collections.OrderedDict()
    obj["a"] = FakeTensor(a, 1, (2, 2), (2, 1))  # view A elements 1..4 -> root 3..6
    obj["b"] = FakeTensor(b, 0, (5,), (1,))  # root 5..9
    write_crafted_legacy("legacy_views", obj, {"100": (10, root.numpy().tobytes())})
    write_safetensors(os.path.join(OUT, "legacy_views.expected.safetensors"),
                      collections.OrderedDict(a=root[3:7].view(2, 2), b=root[5:10]))
    # The same with a view reaching past its root storage.
    bad = FakeStorage("100", 10)
    bad.view = ("103", 6, 6)
    write_crafted_legacy("legacy_view_beyond", {"w": FakeTensor(bad, 0, (2,), (1,))},
                         {"100": (10, root.numpy().tobytes())})


def write_refusals():
    torch.save({"w": CallOsSystem()}, os.path.join(OUT, "evil_os_system.pth"))
    torch.save({"w": CallEval()}, os.path.join(OUT, "evil_eval.legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(torch.nn.Linear(2, 2), os.path.join(OUT, "whole_module.pth"))
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(2)}}, os.path.join(OUT, "nested.pth"))

    ok = io.BytesIO()
    torch.save({"w": torch.arange(64, dtype=torch.float32)}, ok)
    data = ok.getvalue()
    with open(os.path.join(OUT, "truncated.pth"), "wb") as f:
        f.write(data[: len(data) // 2])

    floats = struct.pack("<6f", *range(6))
    # The pickle says 6 elements, the entry holds 4.
    write_crafted_zip("short_storage", {"w": FakeTensor(FakeStorage("0", 6), 0, (6,), (1,))}, {"0": floats[:16]})
    # A [4, 3] tensor on a 6-element storage.
    write_crafted_zip("tensor_beyond_storage", {"w": FakeTensor(FakeStorage("0", 6), 0, (4, 3), (3, 1))},
                      {"0": floats})
    # Offset 10 of a 6-element storage.
    write_crafted_zip("offset_beyond_storage", {"w": FakeTensor(FakeStorage("0", 6), 10, (2,), (1,))},
                      {"0": floats})
    # A storage key with no zip entry.
    write_crafted_zip("missing_storage", {"w": FakeTensor(FakeStorage("7", 6), 0, (6,), (1,))}, {"0": floats})


def write_limits():
    one = struct.pack("<f", 1.5)
    expand = {"w": FakeTensor(FakeStorage("0", 1), 0, (32768, 16384), (0, 0))}
    write_crafted_zip("expand", expand, {"0": one})
    write_crafted_legacy("expand.legacy", expand, {"0": (1, one)})
    # Eight tensors, each 1 MiB of one repeated float: each within the per-tensor rule, together beyond
    # 4 x the file plus 1 MiB.
    many = collections.OrderedDict((f"w{i}", FakeTensor(FakeStorage("0", 1), 0, (262144,), (0,))) for i in range(8))
    write_crafted_zip("expand_many", many, {"0": one})

    # A stored storage entry with one byte changed after the CRC was written.
    path = os.path.join(OUT, "bad_crc.pth")
    write_crafted_zip("bad_crc", {"w": FakeTensor(FakeStorage("0", 6), 0, (6,), (1,))},
                      {"0": struct.pack("<6f", *range(6))})
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("bad_crc/data/0")
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_len + extra_len + 5)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))

    with zipfile.ZipFile(os.path.join(OUT, "pickle_too_big.pth"), "w", zipfile.ZIP_BZIP2) as z:
        z.writestr("pickle_too_big/data.pkl", bytes((64 << 20) + 1))


def main():
    os.makedirs(OUT, exist_ok=True)
    write_layouts()
    write_legacy_views()
    write_refusals()
    write_limits()
    for f in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, f)):8d}  {f}")


if __name__ == "__main__":
    main()
