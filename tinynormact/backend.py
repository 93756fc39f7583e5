"""Array backends: the one module that imports NumPy and CuPy as array providers.

Every other module reaches arrays through this one:

- ``xp()`` is the array module of the current device (``numpy`` or ``cupy``);
- ``get_array_module(a)`` is the array module that owns the array ``a``;
- ``np`` is NumPy itself, for host-side work (quadrature in ``theory``, file IO in ``data``).
  Dtypes and scalar constants are reached through it (``backend.np.float64``), since NumPy's
  dtype objects are accepted by CuPy too.

The handful of calls whose spelling differs between NumPy and CuPy (scatter-add, the error
function, host transfer) live here and nowhere else. Random numbers are drawn on the host with
NumPy (``default_rng``) and moved, so a seed means the same numbers on every device.

The device is chosen by ``set_device("cpu" | "cuda")`` or, at import time, by the environment
variable ``TINYNORMACT_DEVICE``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import scipy.special

__all__ = [
    "DEVICES",
    "np",
    "xp",
    "get_device",
    "set_device",
    "get_array_module",
    "device_of",
    "asarray",
    "to_device",
    "to_numpy",
    "scatter_add",
    "erf",
    "default_rng",
    "cuda_available",
    "get_default_dtype",
    "set_default_dtype",
]

DEVICES = ("cpu", "cuda")
_FLOAT_DTYPES = ("float32", "float64")
_GPU_INSTALL_HINT = (
    "install the gpu extra (pip install 'tinynormact[gpu]', which brings cupy-cuda12x; pick the "
    "cupy wheel matching your CUDA version) on a machine with an NVIDIA GPU"
)

_state: dict[str, Any] = {"device": "cpu", "dtype": np.dtype("float32")}


class DeviceError(RuntimeError):
    """Raised when a device is asked for that this machine cannot provide."""


def _import_cupy() -> ModuleType:
    """Import CuPy, or raise a DeviceError that says how to get it."""
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError(f"device 'cuda' needs CuPy, which is not installed: {_GPU_INSTALL_HINT}") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        raise DeviceError(f"device 'cuda': CuPy is installed but no usable GPU was found ({exc})") from exc
    if count < 1:
        raise DeviceError("device 'cuda': CuPy is installed but no GPU was found")
    return cupy


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
    except DeviceError:
        return False
    return True


def _check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; valid devices are {', '.join(DEVICES)}")
    if device == "cuda":
        _import_cupy()
    return device


def set_device(device: str) -> None:
    """Make ``device`` ("cpu" or "cuda") the device new tensors are created on."""
    _state["device"] = _check_device(device)


def get_device() -> str:
    """The device new tensors are created on."""
    return _state["device"]


def set_default_dtype(dtype: Any) -> None:
    """Set the floating dtype of tensors built from Python numbers (float32 or float64)."""
    dt = np.dtype(dtype)
    if dt.name not in _FLOAT_DTYPES:
        raise ValueError(f"default dtype must be one of {', '.join(_FLOAT_DTYPES)}, got {dt.name}")
    _state["dtype"] = dt


def get_default_dtype() -> np.dtype:
    """The floating dtype of tensors built from Python numbers (float32 unless changed)."""
    return _state["dtype"]


def xp(device: str | None = None) -> ModuleType:
    """The array module of ``device`` (default: the current device)."""
    device = get_device() if device is None else _check_device(device)
    return np if device == "cpu" else _import_cupy()


def device_of(array: Any) -> str:
    """'cuda' for a CuPy array, 'cpu' for anything else."""
    return "cuda" if type(array).__module__.startswith("cupy") else "cpu"


def get_array_module(array: Any) -> ModuleType:
    """The array module (numpy or cupy) that owns ``array``."""
    return _import_cupy() if device_of(array) == "cuda" else np


def to_numpy(array: Any) -> np.ndarray:
    """Copy an array of either backend to a NumPy array on the host."""
    if device_of(array) == "cuda":
        return array.get()
    return np.asarray(array)


def asarray(data: Any, dtype: Any = None, device: str | None = None) -> Any:
    """An array on ``device`` (default: current) holding ``data``.

    Python numbers and lists of floats take the default dtype; arrays keep theirs unless ``dtype``
    is given.
    """
    device = get_device() if device is None else _check_device(device)
    if dtype is None and not hasattr(data, "dtype"):
        probe = np.asarray(data)
        dtype = get_default_dtype() if probe.dtype.kind == "f" else probe.dtype
    if device == "cpu":
        return np.asarray(to_numpy(data), dtype=dtype)
    return _import_cupy().asarray(data, dtype=dtype)


def to_device(array: Any, device: str) -> Any:
    """Move an array to ``device``; a no-op when it is already there."""
    _check_device(device)
    if device_of(array) == device:
        return array
    return to_numpy(array) if device == "cpu" else _import_cupy().asarray(array)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """In place ``target[index] += values`` where repeated indices accumulate."""
    if device_of(target) == "cuda":
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def row_dots(a: Any, b: Any) -> Any:
    """sum_j a_ij b_ij for every row i of two 2-d arrays (NumPy's vecdot, twice as fast as
    einsum here; CuPy gets einsum)."""
    if isinstance(a, np.ndarray):
        return np.vecdot(a, b)
    return get_array_module(a).einsum("ij,ij->i", a, b)


def erf(array: Any) -> Any:
    """The error function, elementwise, on either backend."""
    if device_of(array) == "cuda":
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(array)
    return scipy.special.erf(array)


def default_rng(seed: int | Sequence[int] | None = None) -> np.random.Generator:
    """A NumPy random Generator seeded with ``seed``.

    Random draws (initial weights, shuffles, dropout-free data generation) happen on the host and
    are then moved with ``asarray``, so a seed gives the same numbers on every device.
    """
    return np.random.default_rng(seed)


def _device_from_environment() -> None:
    requested = os.environ.get("TINYNORMACT_DEVICE", "").strip().lower()
    if requested:
        try:
            set_device(requested)
        except (ValueError, DeviceError) as exc:
            raise DeviceError(f"TINYNORMACT_DEVICE={requested!r}: {exc}") from exc


_device_from_environment()
