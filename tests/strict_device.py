"""A strict CuPy-like device for the tests: NumPy underneath, CuPy's rules on top.

``pytest --device strict`` runs the suite with every tensor on this device. It checks the
*device discipline* of the library, not GPU numerics: its results are NumPy's, bit for bit. What
it enforces is where CuPy differs from NumPy and where GPU bugs hide (CuPy's user guide,
"Differences between CuPy and NumPy", and its ndarray reference):

- its arrays refuse implicit conversion to NumPy (``numpy.asarray(x)``, ``numpy.array(x)``,
  ``x.__array__()``, and so matplotlib, ``numpy.save``, ``numpy.testing``) with CuPy's own
  TypeError; the way to the host is ``x.get()``, which the backend's ``to_numpy`` calls;
- an operation that mixes one of its arrays with a NumPy array (not a Python or NumPy scalar)
  raises CuPy's ``TypeError: Unsupported type <class 'numpy.ndarray'>``, and so does calling its
  array module on NumPy arrays (``xp.exp(numpy_array)``), except the constructors
  (``xp.asarray``, ``xp.array``), which copy host data to the device as ``cupy.asarray`` does;
- reductions and scalar indexing return 0-d device arrays, not NumPy scalars, as in CuPy;
- NumPy functions called on its arrays dispatch to its own module (``__array_function__``,
  ``__array_ufunc__``) as they do for CuPy arrays; ufuncs from outside NumPy (``scipy.special``)
  refuse them;
- every host synchronisation is counted in ``SYNCS`` by kind: ``float``, ``int``, ``bool``,
  ``item``, ``tolist``, ``transfer`` (``get()``, pickling), ``repr`` (printing, formatting);
  ``with count_syncs() as syncs:`` gives a test the counts of one block.

Scatter-add, the error function and host transfers reach it through the backend's device
registry (``backend.register_device``), exactly as CuPy's do; random numbers come from the
host's ``default_rng`` as on every device.
"""

from __future__ import annotations

import collections
import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.special

from tinynormact import backend

NAME = "strict"
IMPLICIT_CONVERSION = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
    "array explicitly."
)
SYNCS: collections.Counter[str] = collections.Counter()
"""Host synchronisations so far, by kind."""

# Constructors take host data as cupy.asarray does (a copy to the device, not a sync).
_HOST_DATA_CONSTRUCTORS = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray"})
# Functions that write device arrays to files copy them to the host first, as CuPy's do.
_HOST_WRITERS = frozenset({"save", "savez", "savez_compressed", "savetxt"})
# ndarray attributes whose NumPy meaning CuPy does not share (cupy.ndarray.data is a device pointer).
_REFUSED_ATTRIBUTES = frozenset({"data", "ctypes"})


def _refuse_host_array(value: Any) -> None:
    raise TypeError(f"Unsupported type {type(value)}")


def _unwrap(value: Any, allow_host: bool = False) -> Any:
    """The NumPy array under a StrictArray, recursively through lists and tuples; a bare NumPy
    array (not a scalar) is refused unless ``allow_host``."""
    if type(value) is StrictArray:
        return value._array
    if isinstance(value, np.ndarray):
        if not allow_host:
            _refuse_host_array(value)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(item, allow_host) for item in value)
    return value


def _wrap(value: Any) -> Any:
    """NumPy arrays and NumPy scalars as StrictArrays (CuPy returns 0-d arrays, not scalars)."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(item) for item in value)
    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        return [_wrap(item) for item in value]
    return value


def _on_device(function: Callable[..., Any], allow_host: bool = False) -> Callable[..., Any]:
    """``function`` taking and returning device arrays, refusing bare NumPy arrays."""

    def call(*args: Any, **kwargs: Any) -> Any:
        args = _unwrap(args, allow_host)
        kwargs = {key: _unwrap(value, allow_host) for key, value in kwargs.items()}
        return _wrap(function(*args, **kwargs))

    call.__name__ = getattr(function, "__name__", "function")
    call.__doc__ = getattr(function, "__doc__", None)
    return call


def _to_host_first(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` given host copies of its device arrays (each copy counted as a transfer)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        host = [arg.get() if type(arg) is StrictArray else arg for arg in args]
        return function(*host, **{k: v.get() if type(v) is StrictArray else v for k, v in kwargs.items()})

    return call


class StrictArray:
    """A device array: a NumPy array that can only reach the host through ``get()``."""

    __slots__ = ("_array", "__weakref__")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    # ----- the host boundary: refused, or counted ------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(IMPLICIT_CONVERSION)

    def get(self) -> np.ndarray:
        """A NumPy copy on the host (cupy.ndarray.get)."""
        SYNCS["transfer"] += 1
        return self._array.copy()

    def item(self) -> Any:
        SYNCS["item"] += 1
        return self._array.item()

    def tolist(self) -> Any:
        SYNCS["tolist"] += 1
        return self._array.tolist()

    def __float__(self) -> float:
        SYNCS["float"] += 1
        return float(self._array)

    def __int__(self) -> int:
        SYNCS["int"] += 1
        return int(self._array)

    def __index__(self) -> int:
        SYNCS["int"] += 1
        return self._array.__index__()

    def __bool__(self) -> bool:
        SYNCS["bool"] += 1
        return bool(self._array)

    def __repr__(self) -> str:
        SYNCS["repr"] += 1
        return repr(self._array).replace("array", "strict_array", 1)

    def __str__(self) -> str:
        SYNCS["repr"] += 1
        return str(self._array)

    def __format__(self, spec: str) -> str:
        SYNCS["repr"] += 1
        return format(self._array.item() if self._array.ndim == 0 else self._array, spec)

    def __reduce__(self) -> tuple[Any, tuple[np.ndarray]]:
        return StrictArray, (self.get(),)  # pickling copies to the host, as CuPy's does

    def __copy__(self) -> StrictArray:
        return StrictArray(self._array.copy())

    def __deepcopy__(self, memo: dict[int, Any]) -> StrictArray:
        return StrictArray(self._array.copy())

    # ----- device-side behaviour -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._array)

    def __iter__(self) -> Any:
        return (_wrap(row) for row in self._array)

    def __getitem__(self, index: Any) -> Any:
        return _wrap(self._array[_unwrap(index, allow_host=True)])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._array[_unwrap(index, allow_host=True)] = _unwrap(value, allow_host=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in _REFUSED_ATTRIBUTES:
            raise AttributeError(f"{NAME} arrays have no attribute {name!r}")
        value = getattr(self._array, name)
        return _on_device(value) if callable(value) else _wrap(value)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if getattr(np, ufunc.__name__, None) is not ufunc:
            return NotImplemented  # scipy.special and other non-NumPy ufuncs: CuPy refuses too
        return _on_device(getattr(ufunc, method))(*inputs, **kwargs)

    def __array_function__(self, function: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        return getattr(MODULE, function.__name__)(*args, **kwargs)


def _binary(ufunc: np.ufunc, reflected: bool = False) -> Callable[[StrictArray, Any], Any]:
    if reflected:
        return lambda self, other: ufunc(other, self)
    return lambda self, other: ufunc(self, other)


for _name, _ufunc in {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
}.items():  # fmt: skip
    setattr(StrictArray, f"__{_name}__", _binary(_ufunc))
    setattr(StrictArray, f"__r{_name}__", _binary(_ufunc, reflected=True))
    setattr(StrictArray, f"__i{_name}__", lambda self, other, _u=_ufunc: _u(self, other, out=self))
for _name, _ufunc in {
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "eq": np.equal, "ne": np.not_equal,
}.items():  # fmt: skip
    setattr(StrictArray, f"__{_name}__", _binary(_ufunc))
StrictArray.__neg__ = lambda self: np.negative(self)  # type: ignore[method-assign]
StrictArray.__pos__ = lambda self: np.positive(self)  # type: ignore[method-assign]
StrictArray.__abs__ = lambda self: np.absolute(self)  # type: ignore[method-assign]
StrictArray.__invert__ = lambda self: np.invert(self)  # type: ignore[method-assign]


class _StrictModule(types.ModuleType):
    """NumPy's namespace, each function taking and returning device arrays only."""

    def __init__(self, name: str, numpy_namespace: types.ModuleType) -> None:
        super().__init__(name, f"NumPy's {numpy_namespace.__name__} with CuPy's rules (tests only)")
        self._numpy = numpy_namespace
        self.ndarray = StrictArray

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._numpy, name)
        if isinstance(value, types.ModuleType):
            value = _StrictModule(f"{self.__name__}.{name}", value)
        elif isinstance(value, (type, np.dtype)) or not callable(value):
            return value  # dtypes, constants (pi, inf, newaxis): the same objects as NumPy's
        elif name in _HOST_WRITERS:
            value = _to_host_first(value)
        else:
            value = _on_device(value, allow_host=name in _HOST_DATA_CONSTRUCTORS)
        setattr(self, name, value)  # looked up once
        return value


MODULE = _StrictModule("strictnumpy", np)


def _scatter_add(target: StrictArray, index: Any, values: Any) -> None:
    np.add.at(_unwrap(target), _unwrap(index), _unwrap(values))


DEVICE = backend.ArrayDevice(
    NAME,
    module=lambda: MODULE,
    owns=lambda array: type(array) is StrictArray,
    to_host=lambda array: array.get(),
    scatter_add=_scatter_add,
    erf=lambda array: StrictArray(scipy.special.erf(_unwrap(array))),
)


@contextlib.contextmanager
def count_syncs() -> Iterator[collections.Counter[str]]:
    """The host synchronisations made inside the block, by kind (filled when the block ends)."""
    counts: collections.Counter[str] = collections.Counter()
    start = collections.Counter(SYNCS)
    try:
        yield counts
    finally:
        counts.update(SYNCS - start)


def register() -> None:
    """Make ``"strict"`` a device of the backend (``tn.set_device("strict")``)."""
    backend.register_device(DEVICE)
