"""npcore from Python: neuralpredictors cores run by the npcore engine, through its C API (ctypes + NumPy).

    import numpy as np, npcore
    core = npcore.load("core.json", "core.pth")          # or .safetensors; backend=, threads=
    y = core(np.zeros((1, core.input_channels, 64, 64), np.float32))

    model = npcore.load_model("model.json", "model.pth")  # a whole model: core, readouts, shifter
    rates = model(x, pupil=None, data_key="session_a")    # (N, neurons); data_key=None: a dict for all

The shared library is found through $NPCORE_LIBRARY (a path to libnpcore.so), then beside this package
(an installed prefix: lib/, lib64/ or lib/<multiarch>/ above lib/python3/...), then the system's library
path. Errors are raised as npcore.Error subclasses carrying the engine's one-line message.
"""
import ctypes
import ctypes.util
import os

import numpy as np

__all__ = ["load", "loads", "Core", "load_model", "loads_model", "Model", "version", "Error", "ConfigError", "ShapeError", "FormatError", "WeightError",
           "BackendError", "UsageError", "ResourceError"]


class Error(RuntimeError):
    """Base of every npcore error (npcore::Error)."""


class ConfigError(Error):
    """Bad core description: unknown key, bad value, unknown backend."""


class ShapeError(Error, ValueError):
    """A shape the core cannot take."""


class FormatError(Error):
    """A file that cannot be read or does not follow its format."""


class WeightError(Error):
    """Weights that do not match the core (missing, unexpected, mis-shaped keys)."""


class BackendError(Error):
    """A backend that cannot run the request."""


class UsageError(Error):
    """API misuse."""


class ResourceError(Error, MemoryError):
    """Out of memory."""


# npcore_status codes of npcore/npcore_c.h.
_ERRORS = {1: Error, 2: ConfigError, 3: ShapeError, 4: FormatError, 5: WeightError, 6: BackendError,
           7: UsageError, 8: ResourceError}


def _candidates():
    env = os.environ.get("NPCORE_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    # <prefix>/lib/python3/dist-packages/npcore -> <prefix>
    prefix = os.path.abspath(os.path.join(here, "..", "..", "..", ".."))
    for libdir in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu")):
        yield os.path.join(prefix, libdir, "libnpcore.so")
    found = ctypes.util.find_library("npcore")
    if found:
        yield found


def _load_library():
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
    raise ImportError("npcore: cannot find libnpcore.so; set NPCORE_LIBRARY to its path (tried: "
                      + ", ".join(tried) + ")")


_lib = _load_library()
_i64x4 = ctypes.c_int64 * 4
_f32p = ctypes.POINTER(ctypes.c_float)
_lib.npcore_version.restype = ctypes.c_char_p
_lib.npcore_last_error.restype = ctypes.c_char_p
_lib.npcore_core_load.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                                  ctypes.POINTER(ctypes.c_void_p)]
_lib.npcore_core_load_string.argtypes = _lib.npcore_core_load.argtypes
_lib.npcore_core_free.argtypes = [ctypes.c_void_p]
_lib.npcore_core_free.restype = None
_lib.npcore_core_type.argtypes = [ctypes.c_void_p]
_lib.npcore_core_type.restype = ctypes.c_char_p
_lib.npcore_core_input_channels.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)]
_lib.npcore_core_output_shape.argtypes = [ctypes.c_void_p, _i64x4, _i64x4]
_lib.npcore_core_prepare.argtypes = [ctypes.c_void_p, _i64x4]
_lib.npcore_core_forward.argtypes = [ctypes.c_void_p, _f32p, _i64x4, _f32p, ctypes.c_size_t]
_lib.npcore_model_load.argtypes = _lib.npcore_core_load.argtypes
_lib.npcore_model_load_string.argtypes = _lib.npcore_core_load.argtypes
_lib.npcore_model_free.argtypes = [ctypes.c_void_p]
_lib.npcore_model_free.restype = None
_lib.npcore_model_core_type.argtypes = [ctypes.c_void_p]
_lib.npcore_model_core_type.restype = ctypes.c_char_p
_lib.npcore_model_data_key_count.argtypes = [ctypes.c_void_p]
_lib.npcore_model_data_key_count.restype = ctypes.c_size_t
_lib.npcore_model_data_key.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_lib.npcore_model_data_key.restype = ctypes.c_char_p
_lib.npcore_model_neurons.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]
_lib.npcore_model_input_channels.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)]
_lib.npcore_model_pupil_channels.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)]
_lib.npcore_model_prepare.argtypes = [ctypes.c_void_p, _i64x4]
_lib.npcore_model_forward.argtypes = [ctypes.c_void_p, _f32p, _i64x4, _f32p, ctypes.c_size_t, ctypes.c_char_p,
                                      _f32p, ctypes.c_size_t]
_lib.npcore_model_forward_all.argtypes = [ctypes.c_void_p, _f32p, _i64x4, _f32p, ctypes.c_size_t,
                                          ctypes.POINTER(_f32p), ctypes.POINTER(ctypes.c_size_t),
                                          ctypes.c_size_t]
for _f in ("npcore_core_load", "npcore_core_load_string", "npcore_core_input_channels",
           "npcore_core_output_shape", "npcore_core_prepare", "npcore_core_forward", "npcore_model_load",
           "npcore_model_load_string", "npcore_model_neurons", "npcore_model_input_channels",
           "npcore_model_pupil_channels", "npcore_model_prepare", "npcore_model_forward",
           "npcore_model_forward_all"):
    getattr(_lib, _f).restype = ctypes.c_int


def _check(status):
    if status != 0:
        message = _lib.npcore_last_error().decode("utf-8", "replace")
        raise _ERRORS.get(status, Error)(message)


def version():
    """The version of the loaded libnpcore."""
    return _lib.npcore_version().decode()


def _bytes(s):
    return None if s is None else os.fsencode(s) if not isinstance(s, bytes) else s


def _open(kind, config, weights, backend, threads, config_is_json):
    """The handle of a core or model (kind "core" or "model") loaded from its JSON description (a file, or the
    JSON text itself) and its weights file."""
    handle = ctypes.c_void_p()
    load = getattr(_lib, f"npcore_{kind}_load_string" if config_is_json else f"npcore_{kind}_load")
    config_arg = config.encode("utf-8") if config_is_json else _bytes(config)
    _check(load(config_arg, _bytes(weights), _bytes(backend), int(threads), ctypes.byref(handle)))
    return handle


def _images(x, who):
    """x as a C-contiguous float32 NCHW array, and whether it was a single CHW image; `who` names the
    object in messages."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"{who}: input dtype is {x.dtype}, the engine takes float32")
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4:
        raise ShapeError(f"{who}: input shape {x.shape} is not NCHW (4 dimensions) or CHW (3)")
    return np.ascontiguousarray(x), single


class _Handle:
    """The life of a C handle: close() frees it, as do garbage collection and the end of a `with` block."""

    _free = None  # the name of the C function that frees the handle

    def close(self):
        """Frees it now (also done when it is garbage-collected)."""
        if getattr(self, "_handle", None):
            getattr(_lib, self._free)(self._handle)
            self._handle = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _closed(self):
        """The message for a use after close()."""
        raise NotImplementedError

    def _live(self):
        if not self._handle:
            raise UsageError(self._closed())
        return self._handle


class Core(_Handle):
    """A loaded core. `core(x)` runs it on an NCHW float32 array; not to be called from two threads at once."""

    _free = "npcore_core_free"

    def __init__(self, config, weights, backend="native", threads=0, config_is_json=False):
        handle = self._handle = _open("core", config, weights, backend, threads, config_is_json)
        self.type = _lib.npcore_core_type(handle).decode()
        channels = ctypes.c_int64()
        _check(_lib.npcore_core_input_channels(handle, ctypes.byref(channels)))
        self.input_channels = channels.value

    def _closed(self):
        return f"{self.type}: the core was closed"

    def output_shape(self, input_shape):
        """The NCHW output shape for an NCHW input shape."""
        if len(input_shape) != 4:
            raise ShapeError(f"{self.type}: input shape {tuple(input_shape)} is not NCHW (4 dimensions)")
        out = _i64x4()
        _check(_lib.npcore_core_output_shape(self._live(), _i64x4(*input_shape), out))
        return tuple(out)

    def __call__(self, x, out=None):
        """Runs the core on x (NCHW, or CHW for one image; float32, made C-contiguous if needed) and returns
        the output, written into `out` when given (float32, C-contiguous, the output's shape)."""
        x, single = _images(x, self.type)
        shape = self.output_shape(x.shape)
        if out is None:
            y = np.empty(shape, np.float32)
        else:
            y = out[None] if single and out.ndim == 3 else out
            if y.dtype != np.float32 or not y.flags.c_contiguous or tuple(y.shape) != shape:
                raise ShapeError(f"{self.type}: out must be a C-contiguous float32 array of shape {shape}, "
                                 f"got {y.dtype} {y.shape}")
        _check(_lib.npcore_core_forward(self._live(), x.ctypes.data_as(_f32p), _i64x4(*x.shape),
                                        y.ctypes.data_as(_f32p), y.size))
        if out is not None:
            return out
        return y[0] if single else y

    def __repr__(self):
        return f"<npcore.Core {self.type}, {self.input_channels} input channels>"


def load(config, weights, backend="native", threads=0):
    """Loads a core from its JSON description file and its weights (.safetensors or .pth).
    backend: "native", "onednn", "gemm" or "reference"; threads: 0 for OpenMP's default."""
    return Core(config, weights, backend=backend, threads=threads)


def loads(config_json, weights, backend="native", threads=0):
    """The same with the JSON description given as a string."""
    return Core(config_json, weights, backend=backend, threads=threads, config_is_json=True)


class Model(_Handle):
    """A loaded whole model (neuralpredictors FiringRateEncoder: core, one readout per data_key, optional
    shifter). `model(x, pupil=None, data_key=None)` gives firing rates; not to be called from two threads
    at once."""

    _free = "npcore_model_free"

    def __init__(self, config, weights, backend="native", threads=0, config_is_json=False):
        handle = self._handle = _open("model", config, weights, backend, threads, config_is_json)
        self.core_type = _lib.npcore_model_core_type(handle).decode()
        self.data_keys = tuple(_lib.npcore_model_data_key(handle, i).decode()
                               for i in range(_lib.npcore_model_data_key_count(handle)))
        value = ctypes.c_int64()
        self._neurons = {}
        for k in self.data_keys:
            _check(_lib.npcore_model_neurons(handle, k.encode("utf-8"), ctypes.byref(value)))
            self._neurons[k] = value.value
        _check(_lib.npcore_model_input_channels(handle, ctypes.byref(value)))
        self.input_channels = value.value
        _check(_lib.npcore_model_pupil_channels(handle, ctypes.byref(value)))
        self.pupil_channels = value.value
        # One output pointer and size per data_key, reused by every call for all of them.
        self._out_ptrs = (_f32p * len(self.data_keys))()
        self._out_sizes = (ctypes.c_size_t * len(self.data_keys))()

    @property
    def needs_pupil(self):
        """Whether the model has a shifter and so needs pupil positions (N, pupil_channels)."""
        return self.pupil_channels > 0

    def neurons(self, data_key):
        """The neurons (rates per image) of a session."""
        try:
            return self._neurons[data_key]
        except KeyError:
            raise UsageError(f"FiringRateEncoder: no data_key {data_key!r}; the model has: "
                             + ", ".join(self.data_keys)) from None

    def _closed(self):
        return f"FiringRateEncoder ({self.core_type}): the model was closed"

    def __call__(self, x, pupil=None, data_key=None):
        """Runs the model on x (NCHW, or CHW for one image; float32, made C-contiguous if needed). `pupil`
        (N, pupil_channels) float32 (or (pupil_channels,) for one image) is required when the model has a
        shifter and ignored otherwise. Returns the rates of `data_key`, (N, neurons) (or (neurons,) for a
        CHW input), or for data_key=None a dict {data_key: rates} of every session from one run of the
        core."""
        handle = self._live()
        x, single = _images(x, "FiringRateEncoder")
        n = x.shape[0]
        pupil_ptr, pupil_floats = None, 0
        if self.needs_pupil:
            if pupil is None:
                raise ShapeError(f"FiringRateEncoder: the model has a shifter (MLPShifter): pupil positions "
                                 f"({n}, {self.pupil_channels}) (one row per image) are required")
            pupil = np.asarray(pupil)
            if pupil.dtype != np.float32:
                raise TypeError(f"FiringRateEncoder: pupil dtype is {pupil.dtype}, the engine takes float32")
            if single and pupil.ndim == 1:
                pupil = pupil[None]
            if pupil.shape != (n, self.pupil_channels):
                raise ShapeError(f"FiringRateEncoder: pupil positions are {pupil.shape}, the shifter expects "
                                 f"({n}, {self.pupil_channels}) (one row per image)")
            pupil = np.ascontiguousarray(pupil)
            pupil_ptr, pupil_floats = pupil.ctypes.data_as(_f32p), pupil.size
        shape = _i64x4(*x.shape)
        if data_key is not None:
            y = np.empty((n, self.neurons(data_key)), np.float32)
            _check(_lib.npcore_model_forward(handle, x.ctypes.data_as(_f32p), shape, pupil_ptr, pupil_floats,
                                             data_key.encode("utf-8"), y.ctypes.data_as(_f32p), y.size))
            return y[0] if single else y
        ys = {k: np.empty((n, self._neurons[k]), np.float32) for k in self.data_keys}
        for i, k in enumerate(self.data_keys):
            self._out_ptrs[i] = ys[k].ctypes.data_as(_f32p)
            self._out_sizes[i] = ys[k].size
        _check(_lib.npcore_model_forward_all(handle, x.ctypes.data_as(_f32p), shape, pupil_ptr, pupil_floats,
                                             self._out_ptrs, self._out_sizes, len(self.data_keys)))
        return {k: (y[0] if single else y) for k, y in ys.items()}

    def __repr__(self):
        return (f"<npcore.Model FiringRateEncoder({self.core_type}), data_keys {list(self.data_keys)}"
                f"{', with shifter' if self.needs_pupil else ''}>")


def load_model(config, weights, backend="native", threads=0):
    """Loads a whole model from its JSON description file ({"model": "FiringRateEncoder", ...}) and its
    state_dict (.safetensors or .pth). backend: "native", "onednn", "gemm" or "reference"; threads: 0 for
    OpenMP's default."""
    return Model(config, weights, backend=backend, threads=threads)


def loads_model(config_json, weights, backend="native", threads=0):
    """The same with the JSON description given as a string."""
    return Model(config_json, weights, backend=backend, threads=threads, config_is_json=True)
