"""ctest npcore_python: the Python module (python/npcore) on a fixture core, against the PyTorch reference
output stored with it, plus its error mapping; then a fixture whole model with a shifter (load_model). Exit 77 (skipped) when NumPy is not importable.
Argument: the tests/fixtures folder; NPCORE_LIBRARY points at the built libnpcore.so."""
import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError:
    print("numpy is not importable: skipped")
    sys.exit(77)

import npcore


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], np.float32).reshape(v["shape"])
    return out


def expect_raises(cls, words, fn):
    try:
        fn()
    except cls as e:
        assert words in str(e), f"{cls.__name__} message {str(e)!r} lacks {words!r}"
        print(f"{cls.__name__}: {e}")
        return
    raise AssertionError(f"expected {cls.__name__}")


def main():
    fixtures = sys.argv[1]
    name = os.path.join(fixtures, "stacked2d_strides")
    io = read_safetensors(name + ".io.safetensors")
    x, ref = io["input"], io["output"]
    assert npcore.version().count(".") == 2

    core = npcore.load(name + ".json", name + ".weights.safetensors", backend="gemm", threads=1)
    assert core.type == "Stacked2dCore" and core.input_channels == 1, core
    assert core.output_shape(x.shape) == ref.shape
    bound = 1e-4 * max(1.0, float(np.abs(ref).max()))
    y = core(x)
    err = float(np.abs(y - ref).max())
    print(f"max|y - ref| = {err:.3e} (bound {bound:.1e})")
    assert y.shape == ref.shape and err <= bound
    # Into a given array, a non-contiguous input, one CHW image.
    out = np.empty_like(ref)
    assert core(np.asfortranarray(x), out=out) is out and np.abs(out - ref).max() <= bound
    y0 = core(x[0])
    assert y0.shape == ref.shape[1:] and np.abs(y0 - ref[0]).max() <= bound

    expect_raises(npcore.ShapeError, "channels", lambda: core(np.zeros((1, 2, 64, 96), np.float32)))
    expect_raises(TypeError, "float32", lambda: core(x.astype(np.float64)))
    expect_raises(npcore.FormatError, "/nonexistent.json",
                  lambda: npcore.load("/nonexistent.json", name + ".weights.safetensors"))
    expect_raises(npcore.ConfigError, "fastest",
                  lambda: npcore.load(name + ".json", name + ".weights.safetensors", backend="fastest"))
    expect_raises(npcore.ConfigError, "layerz",
                  lambda: npcore.loads('{"core": "Stacked2dCore", "config": {"input_channels": 1, "hidden_channels": 16, "input_kern": 5, "hidden_kern": 3, "layerz": 2}}',
                                       name + ".weights.safetensors"))
    core.close()
    expect_raises(npcore.UsageError, "closed", lambda: core(x))
    check_model(fixtures)
    print("python module: all checks passed")


def check_model(fixtures):
    name = os.path.join(fixtures, "models", "model_stacked2d_gaussian_shifter")
    io = read_safetensors(name + ".io.safetensors")
    x, pupil = io["input"], io["pupil_center"]
    model = npcore.load_model(name + ".json", name + ".weights.safetensors", backend="gemm", threads=1)
    print(model)
    assert model.data_keys == ("session_a", "session_b"), model.data_keys
    assert model.neurons("session_a") == 40 and model.neurons("session_b") == 25
    assert model.core_type == "Stacked2dCore" and model.input_channels == 1
    assert model.needs_pupil and model.pupil_channels == 2
    for key in model.data_keys:
        ref = io["output/" + key]
        bound = 1e-4 * max(1.0, float(np.abs(ref).max()))
        y = model(x, pupil=pupil, data_key=key)
        err = float(np.abs(y - ref).max())
        print(f"model {key}: max|y - ref| = {err:.3e} (bound {bound:.1e})")
        assert y.shape == ref.shape and err <= bound
        y0 = model(x[0], pupil=pupil[0], data_key=key)  # one CHW image, one pupil row
        assert y0.shape == ref.shape[1:] and np.abs(y0 - ref[0]).max() <= bound
    ys = model(x, pupil=pupil)
    assert isinstance(ys, dict) and sorted(ys) == ["session_a", "session_b"]
    for key, y in ys.items():
        ref = io["output/" + key]
        assert y.shape == ref.shape and np.abs(y - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))

    expect_raises(npcore.UsageError, "session_a, session_b", lambda: model(x, pupil=pupil, data_key="nope"))
    expect_raises(npcore.UsageError, "session_a, session_b", lambda: model.neurons("nope"))
    expect_raises(npcore.ShapeError, "(3, 2)", lambda: model(x, data_key="session_a"))
    expect_raises(npcore.ShapeError, "(3, 2)", lambda: model(x, pupil=pupil[:2], data_key="session_a"))
    expect_raises(npcore.ShapeError, "channels", lambda: model(np.zeros((3, 2, 36, 64), np.float32), pupil=pupil))
    expect_raises(npcore.WeightError, "shifter",
                  lambda: npcore.load_model(name + ".json", os.path.join(
                      fixtures, "models", "model_stacked2d_gaussian_cortex.weights.safetensors")))
    model.close()
    expect_raises(npcore.UsageError, "closed", lambda: model(x, pupil=pupil))

    # A model without a shifter ignores pupil positions.
    plain = os.path.join(fixtures, "models", "model_stacked2d_gaussian_cortex")
    io = read_safetensors(plain + ".io.safetensors")
    with npcore.loads_model(open(plain + ".json").read(), plain + ".weights.safetensors") as m:
        assert not m.needs_pupil
        ref = io["output/session_b"]
        y = m(io["input"], data_key="session_b")
        assert np.abs(y - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))


if __name__ == "__main__":
    main()
