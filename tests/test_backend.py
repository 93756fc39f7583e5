"""The backend: device flag, errors when CUDA is asked for without it, the import rule."""

from __future__ import annotations

import ast
import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tinynormact as tn
from tinynormact import backend

PACKAGE = pathlib.Path(tn.__file__).parent


def test_only_backend_imports_numpy_or_cupy() -> None:
    """Array providers are reached through tinynormact.engine.backend alone (its ``np`` is host NumPy)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "backend.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("numpy", "cupy", "cupyx")]
    assert offenders == []


def test_set_device_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="'tpu'.*cpu, cuda"):
        tn.set_device("tpu")


@pytest.mark.skipif(backend.cuda_available(), reason="this machine has CuPy and a GPU")
def test_cuda_without_cupy_or_gpu_says_how_to_install() -> None:
    with pytest.raises(backend.DeviceError, match=r"tinynormact\[gpu\]|no usable GPU|no GPU"):
        tn.set_device("cuda")
    assert tn.get_device() in backend.devices()


def _python(code: str, device: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TINYNORMACT_DEVICE": device}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


@pytest.mark.skipif(backend.cuda_available(), reason="this machine has CuPy and a GPU")
def test_environment_variable_cuda_without_gpu_raises_one_exception_when_arrays_are_made() -> None:
    """Importing works (so --help and theory do); the first tensor raises one DeviceError that
    names the variable and says how to install CuPy, with no chained traceback."""
    assert _python("import tinynormact, tinynormact.cli", "cuda").returncode == 0
    failed = _python("import tinynormact as tn; tn.Tensor([1.0])", "cuda")
    assert failed.returncode != 0
    assert failed.stderr.count("Traceback") == 1 and "During handling" not in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("tinynormact.engine.backend.DeviceError: TINYNORMACT_DEVICE='cuda'")
    assert "cupy-cuda12x" in last and "cupy-cuda13x" in last


def test_environment_variable_with_an_unknown_device_names_the_valid_ones() -> None:
    failed = _python("import tinynormact as tn; tn.get_device()", "tpu")
    assert "TINYNORMACT_DEVICE='tpu'" in failed.stderr and "cpu, cuda" in failed.stderr


def test_environment_variable_cpu() -> None:
    env = {**os.environ, "TINYNORMACT_DEVICE": "cpu"}
    code = "import tinynormact as tn; print(tn.get_device())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "cpu"


def test_asarray_moves_between_devices_and_keeps_values(device: str) -> None:
    values = np.arange(6.0).reshape(2, 3)
    on_device = backend.asarray(values)
    assert backend.device_of(on_device) == device
    np.testing.assert_array_equal(backend.to_numpy(backend.to_device(on_device, "cpu")), values)


def test_scatter_add_accumulates_repeats(device: str) -> None:
    target = backend.xp().zeros(4)
    backend.scatter_add(
        target, backend.asarray(np.array([0, 3, 0])), backend.asarray(np.array([1.0, 2.0, 5.0]))
    )
    np.testing.assert_array_equal(backend.to_numpy(target), [6.0, 0.0, 0.0, 2.0])


def test_erf_matches_published_values() -> None:
    """erf(0.5) = 0.5204998778130465, erf(1) = 0.8427007929497149 (Abramowitz & Stegun 7.1)."""
    out = backend.to_numpy(backend.erf(backend.asarray(np.array([0.5, 1.0]))))
    np.testing.assert_allclose(out, [0.5204998778130465, 0.8427007929497149], rtol=1e-14)


def test_a_registered_device_is_reached_through_the_backend_alone() -> None:
    """The strict test device plugs in through register_device: the backend owns its arrays'
    module, transfers, scatter-add and erf, and device_of tells its arrays from NumPy's."""
    from tests import strict_device

    assert "strict" in backend.devices()
    on_strict = backend.asarray(np.arange(3.0), device="strict")
    assert backend.device_of(on_strict) == "strict"
    assert backend.get_array_module(on_strict) is strict_device.MODULE
    assert backend.device_of(np.arange(3.0)) == "cpu" and backend.device_of(2.0) == "cpu"
    with strict_device.count_syncs() as syncs:
        host = backend.to_numpy(backend.to_device(on_strict, "cpu"))
    assert syncs == {"transfer": 1} and isinstance(host, np.ndarray)
    with pytest.raises(ValueError, match="'cpu' device is NumPy"):
        backend.register_device(dataclasses.replace(strict_device.DEVICE, name="cpu"))
