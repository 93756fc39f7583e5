"""Shared test setup: the --device option runs the whole suite on NumPy (cpu), CuPy (cuda) or
the strict CuPy-like test device (strict, tests/strict_device.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests import strict_device
from tinynormact import backend

# Property-based tests draw the same examples on every run, so a red CI is reproducible.
settings.register_profile("tinynormact", derandomize=True, deadline=None)
settings.load_profile("tinynormact")

strict_device.register()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        action="store",
        default="cpu",
        choices=backend.devices(),
        help="run the suite with tensors on this device (cuda needs CuPy and a GPU; strict is the "
        "CuPy-like test device of tests/strict_device.py)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--device") == "cuda" and not backend.cuda_available():
        skip = pytest.mark.skip(reason="--device cuda: CuPy or a GPU is missing on this machine")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def device(request: pytest.FixtureRequest) -> Iterator[str]:
    """The device under test; every test runs with it as the current device."""
    name = request.config.getoption("--device")
    if name == "cuda" and not backend.cuda_available():
        pytest.skip("--device cuda: CuPy or a GPU is missing on this machine")
    previous_device, previous_dtype = backend.get_device(), backend.get_default_dtype()
    backend.set_device(name)
    yield name
    backend.set_device(previous_device)
    backend.set_default_dtype(previous_dtype)


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's Ctrl-C handler for a test that sends SIGINT to its own process: a shell that
    starts the suite in the background (``nohup make test &``) sets SIGINT to "ignore", Python
    then installs no handler, and the signal would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
