"""Array backends: the one module that imports NumPy and CuPy as array providers.

Every other module reaches arrays through this one:

- ``xp()`` is the array module of the current device (``numpy``, ``cupy``, ...);
- ``get_array_module(a)`` is the array module that owns the array ``a``;
- ``np`` is NumPy itself, for host-side work (quadrature in ``theory``, file IO in ``data``).
  Dtypes and scalar constants are reached through it (``backend.np.float64``), since NumPy's
  dtype objects are accepted by CuPy too.

Each device is an ``ArrayDevice`` in a small registry: its array module, how to recognise its
arrays, and the handful of calls whose spelling differs between NumPy and CuPy (scatter-add, the
error function, host transfer). "cpu" (NumPy) and "cuda" (CuPy) are built in; the test suite
registers a third, a strict CuPy-like device (tests/strict_device.py), through the same door.
Random numbers are drawn on the host with NumPy (``default_rng``) and moved, so a seed means the
same numbers on every device.

The device is chosen by ``set_device(name)`` or by the environment variable
``TINYNORMACT_DEVICE``, read the first time the current device is asked for (not at import, so
commands that touch no arrays work whatever it says).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "ArrayDevice",
    "DeviceError",
    "np",
    "xp",
    "devices",
    "register_device",
    "get_device",
    "set_device",
    "get_array_module",
    "device_of",
    "asarray",
    "to_device",
    "to_numpy",
    "scatter_add",
    "row_dots",
    "erf",
    "default_rng",
    "cuda_available",
    "get_default_dtype",
    "set_default_dtype",
]

_FLOAT_DTYPES = ("float32", "float64")
_GPU_INSTALL_HINT = (
    "install CuPy for your CUDA version on a machine with an NVIDIA GPU: pip install 'tinynormact[gpu]' "
    "(cupy-cuda12x, CUDA 12) or 'tinynormact[gpu-cuda13]' (cupy-cuda13x, CUDA 13); nvidia-smi shows "
    "the CUDA version"
)


class DeviceError(RuntimeError):
    """Raised when a device is asked for that this machine cannot provide, or when tensors of two
    devices meet in one operation."""


@dataclass(frozen=True)
class ArrayDevice:
    """One device: where its arrays come from and the calls that differ between array modules.

    ``module()`` returns the array module (and raises DeviceError, saying what is missing, when
    this machine cannot provide it); ``owns(array)`` tells whether an array lives here;
    ``to_host`` copies one of its arrays to a NumPy array (the only way to the host);
    ``scatter_add(target, index, values)`` adds in place with repeated indices accumulating;
    ``erf`` is the error function on its arrays.
    """

    name: str
    module: Callable[[], ModuleType]
    owns: Callable[[Any], bool]
    to_host: Callable[[Any], np.ndarray]
    scatter_add: Callable[[Any, Any, Any], None]
    erf: Callable[[Any], Any]


def _import_cupy() -> ModuleType:
    """Import CuPy, or raise one DeviceError (no chained traceback) that says how to get it."""
    try:
        import cupy
    except ImportError as exc:
        message = f"device 'cuda' needs CuPy, which is not installed ({exc}): {_GPU_INSTALL_HINT}"
        raise DeviceError(message) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        message = f"device 'cuda': CuPy is installed but no usable GPU was found ({exc}): {_GPU_INSTALL_HINT}"
        raise DeviceError(message) from None
    if count < 1:
        raise DeviceError(f"device 'cuda': CuPy is installed but no GPU was found: {_GPU_INSTALL_HINT}")
    return cupy


def _cupy_scatter_add(target: Any, index: Any, values: Any) -> None:
    import cupyx

    cupyx.scatter_add(target, index, values)


def _scipy_erf(array: Any) -> Any:
    import scipy.special  # on first use: the engine loads NumPy only

    return scipy.special.erf(array)


def _cupy_erf(array: Any) -> Any:
    import cupyx.scipy.special

    return cupyx.scipy.special.erf(array)


_REGISTRY: dict[str, ArrayDevice] = {
    "cpu": ArrayDevice(
        "cpu",
        module=lambda: np,
        owns=lambda array: True,  # whatever no other device claims: NumPy arrays, numbers, lists
        to_host=np.asarray,
        scatter_add=np.add.at,
        erf=_scipy_erf,
    ),
    "cuda": ArrayDevice(
        "cuda",
        module=_import_cupy,
        owns=lambda array: type(array).__module__.startswith("cupy"),
        to_host=lambda array: array.get(),
        scatter_add=_cupy_scatter_add,
        erf=_cupy_erf,
    ),
}
_state: dict[str, Any] = {"device": None, "dtype": np.dtype("float32")}


def register_device(device: ArrayDevice) -> None:
    """Add ``device`` to the devices ``set_device`` accepts (replacing one of the same name)."""
    if device.name == "cpu":
        raise ValueError("the 'cpu' device is NumPy and cannot be replaced")
    _REGISTRY[device.name] = device


def devices() -> tuple[str, ...]:
    """The names of the registered devices ("cpu", "cuda", and any registered since)."""
    return tuple(_REGISTRY)


def _registered(device: str) -> ArrayDevice:
    try:
        return _REGISTRY[device]
    except (KeyError, TypeError):
        raise ValueError(f"unknown device {device!r}; valid devices are {', '.join(_REGISTRY)}") from None


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
    except DeviceError:
        return False
    return True


def _check_device(device: str) -> str:
    _registered(device).module()
    return device


def set_device(device: str) -> None:
    """Make ``device`` ("cpu", "cuda", ...) the device new tensors are created on."""
    _state["device"] = _check_device(device)


def get_device() -> str:
    """The device new tensors are created on (TINYNORMACT_DEVICE, else "cpu", until set_device)."""
    if _state["device"] is None:
        _state["device"] = _device_from_environment()
    return _state["device"]


def _device_from_environment() -> str:
    requested = os.environ.get("TINYNORMACT_DEVICE", "").strip().lower() or "cpu"
    try:
        return _check_device(requested)
    except (ValueError, DeviceError) as exc:
        raise DeviceError(f"TINYNORMACT_DEVICE={requested!r}: {exc}") from None


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
    return _registered(get_device() if device is None else device).module()


def _owner(array: Any) -> ArrayDevice:
    """The device whose array ``array`` is; NumPy arrays, numbers and lists count as "cpu"."""
    cpu = _REGISTRY["cpu"]
    if type(array) is np.ndarray:  # the common case first: this runs in every operation
        return cpu
    for device in _REGISTRY.values():
        if device is not cpu and device.owns(array):
            return device
    return cpu  # its owns() claims the rest


def device_of(array: Any) -> str:
    """The name of the device ``array`` lives on ("cpu" for NumPy arrays and anything else)."""
    return _owner(array).name


def get_array_module(array: Any) -> ModuleType:
    """The array module (numpy, cupy, ...) that owns ``array``."""
    return _owner(array).module()


def to_numpy(array: Any) -> np.ndarray:
    """Copy an array of any device to a NumPy array on the host (the one way to the host)."""
    return _owner(array).to_host(array)


def asarray(data: Any, dtype: Any = None, device: str | None = None) -> Any:
    """An array on ``device`` (default: current) holding ``data``.

    Python numbers and lists of floats take the default dtype; arrays keep theirs unless ``dtype``
    is given. Arrays of another device are moved (through the host).
    """
    target = _registered(get_device() if device is None else device)
    if dtype is None and not hasattr(data, "dtype"):
        probe = np.asarray(data)
        dtype = get_default_dtype() if probe.dtype.kind == "f" else probe.dtype
    source = _owner(data)
    if source.name not in ("cpu", target.name):
        data = source.to_host(data)
    if target.name == "cpu":
        return np.asarray(data, dtype=dtype)
    return target.module().asarray(data, dtype=dtype)


def to_device(array: Any, device: str) -> Any:
    """Move an array to ``device``; a no-op when it is already there."""
    _check_device(device)
    if device_of(array) == device:
        return array
    return asarray(array, device=device)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """In place ``target[index] += values`` where repeated indices accumulate."""
    _owner(target).scatter_add(target, index, values)


def row_dots(a: Any, b: Any) -> Any:
    """sum_j a_ij b_ij for every row i of two 2-d arrays (NumPy's vecdot, twice as fast as
    einsum here; other array modules get einsum)."""
    if isinstance(a, np.ndarray):
        return np.vecdot(a, b)
    return get_array_module(a).einsum("ij,ij->i", a, b)


def erf(array: Any) -> Any:
    """The error function, elementwise, on any device."""
    return _owner(array).erf(array)


def default_rng(seed: int | Sequence[int] | None = None) -> np.random.Generator:
    """A NumPy random Generator seeded with ``seed``.

    Random draws (initial weights, shuffles, dropout-free data generation) happen on the host and
    are then moved with ``asarray``, so a seed gives the same numbers on every device.
    """
    return np.random.default_rng(seed)
