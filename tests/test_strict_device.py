"""The strict CuPy-like test device itself (tests/strict_device.py): it must refuse what CuPy
refuses and count every host synchronisation, or the suite run on it proves nothing. Each test
names the CuPy behaviour it mirrors (CuPy user guide, "Differences between CuPy and NumPy"; the
cupy.ndarray reference)."""

from __future__ import annotations

import io
import pickle

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import pytest
import scipy.special

from tests.strict_device import IMPLICIT_CONVERSION, MODULE, StrictArray, count_syncs
from tinynormact import backend


def strict(values: object) -> StrictArray:
    return backend.asarray(np.asarray(values, dtype=float), device="strict")


@pytest.mark.parametrize(
    "convert",
    [np.asarray, np.array, lambda a: a.__array__(), lambda a: np.testing.assert_array_equal(a, a),
     lambda a: plt.plot(a), scipy.special.erf],
    ids=["asarray", "array", "__array__", "testing", "matplotlib", "scipy-ufunc"],
)  # fmt: skip
def test_implicit_conversion_to_numpy_raises_cupys_type_error(convert) -> None:
    refused = "Implicit conversion to a NumPy array is not allowed|returned NotImplemented"
    with pytest.raises(TypeError, match=refused):
        convert(strict([1.0, 2.0]))


def test_the_message_is_cupys() -> None:
    with pytest.raises(TypeError) as caught:
        np.asarray(strict([1.0]))
    assert str(caught.value) == IMPLICIT_CONVERSION and "`.get()`" in str(caught.value)


@pytest.mark.parametrize(
    "mix",
    [lambda d, h: d + h, lambda d, h: h * d, lambda d, h: d @ h, lambda d, h: MODULE.maximum(d, h),
     lambda d, h: MODULE.exp(h), lambda d, h: MODULE.zeros_like(h), lambda d, h: MODULE.concatenate([d, h]),
     lambda d, h: d + h[:1]],
    ids=["add", "rmul", "matmul", "module-ufunc", "module-on-host", "zeros_like", "concatenate", "0-d"],
)  # fmt: skip
def test_mixing_with_a_numpy_array_raises(mix) -> None:
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        mix(strict([1.0, 2.0]), np.array([3.0, 4.0]))


def test_python_and_numpy_scalars_mix_freely_and_results_equal_numpys() -> None:
    device, host = strict([1.5, -2.0, 3.0]), np.array([1.5, -2.0, 3.0])
    for got, want in [
        (device * 2 + np.float32(1.0), host * 2 + np.float32(1.0)),
        (MODULE.exp(device) / 3.0, np.exp(host) / 3.0),
        (np.tanh(device), np.tanh(host)),  # NumPy's own ufuncs dispatch to the device
    ]:
        assert isinstance(got, StrictArray)
        np.testing.assert_array_equal(backend.to_numpy(got), want)


def test_constructors_take_host_data_as_cupy_asarray_does() -> None:
    device = MODULE.asarray(np.arange(4))
    assert isinstance(device, StrictArray) and device.dtype == np.arange(4).dtype


def test_reductions_and_scalar_indexing_return_0d_device_arrays() -> None:
    device = strict([[1.0, 2.0], [3.0, 4.0]])
    for value in (device.sum(), np.mean(device), MODULE.max(device), device[1, 0]):
        assert isinstance(value, StrictArray) and value.shape == ()


def test_every_host_synchronisation_is_counted_by_kind() -> None:
    scalar, vector = strict(2.5), strict([1.0, 2.0])
    with count_syncs() as syncs:
        pass
    assert syncs == {}
    with count_syncs() as syncs:
        float(scalar), int(scalar), bool(scalar), scalar.item(), vector.tolist()
        vector.get(), backend.to_numpy(vector), f"{scalar:.2f}", repr(vector), pickle.dumps(vector)
        np.save(io.BytesIO(), vector)  # CuPy's save copies to the host
        vector * 2.0, vector.sum(), MODULE.where(vector > 1.0, vector, 0.0), vector[0]  # none
    assert syncs == {"float": 1, "int": 1, "bool": 1, "item": 1, "tolist": 1, "transfer": 4, "repr": 2}


def test_scatter_add_and_erf_go_through_the_backend() -> None:
    target = MODULE.zeros(3)
    backend.scatter_add(target, MODULE.asarray(np.array([0, 0, 2])), strict([1.0, 2.0, 4.0]))
    np.testing.assert_array_equal(backend.to_numpy(target), [3.0, 0.0, 4.0])
    got = backend.erf(strict([0.5]))
    assert isinstance(got, StrictArray)
    np.testing.assert_allclose(backend.to_numpy(got), [0.5204998778130465], rtol=1e-15)  # A&S 7.1
