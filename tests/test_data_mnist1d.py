"""MNIST-1D: generated offline by the mnist1d package, cached atomically, corrupt caches redone."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from tinynormact.data import cache_dir, load_mnist1d, mnist1d_cache_path
from tinynormact.engine.backend import np

SMALL = 100  # examples; the default 5000 take about a second to generate


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the cache of every test in its own temporary folder."""
    monkeypatch.setenv("TINYNORMACT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYNORMACT_CACHE", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "own"
    monkeypatch.delenv("TINYNORMACT_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "tinynormact"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "tinynormact"


def test_matches_the_package_generator_and_is_cached(cache):
    from mnist1d.data import get_dataset_args, make_dataset

    splits = load_mnist1d(num_samples=SMALL, seed=7)
    args = get_dataset_args()
    args.num_samples, args.seed = SMALL, 7
    reference = make_dataset(args)
    assert splits.train.x.shape == (80, 40) and splits.test.x.shape == (20, 40)
    assert np.array_equal(splits.train.x, reference["x"])
    assert np.array_equal(splits.test.y, reference["y_test"])
    assert splits.train.n_classes == 10 and splits.train.name == "mnist1d"
    assert mnist1d_cache_path(SMALL, 7) == cache / "mnist1d_n100_seed7.npz"
    assert (cache / "mnist1d_n100_seed7.npz").is_file()
    assert [p.name for p in cache.iterdir()] == ["mnist1d_n100_seed7.npz"]  # no temporary left


def test_second_call_reads_the_cache_without_generating(monkeypatch):
    first = load_mnist1d(num_samples=SMALL)
    import mnist1d.data

    def fail(*args, **kwargs):
        raise AssertionError("the generator ran although the cache exists")

    monkeypatch.setattr(mnist1d.data, "make_dataset", fail)
    second = load_mnist1d(num_samples=SMALL)
    assert np.array_equal(first.train.x, second.train.x)
    assert np.array_equal(first.test.y, second.test.y)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04truncated"])
def test_corrupt_cache_is_regenerated_with_a_warning(cache, content):
    expected = load_mnist1d(num_samples=SMALL)
    path = cache / "mnist1d_n100_seed42.npz"
    path.write_bytes(content)
    with pytest.warns(UserWarning, match=f"MNIST-1D cache {path} .*regenerating"):
        again = load_mnist1d(num_samples=SMALL)
    assert np.array_equal(again.train.x, expected.train.x)
    with np.load(path) as repaired:
        assert np.array_equal(repaired["x_test"], expected.test.x)


def test_cache_with_missing_arrays_is_regenerated(cache):
    expected = load_mnist1d(num_samples=SMALL)
    path = cache / "mnist1d_n100_seed42.npz"
    with path.open("wb") as file:
        np.savez(file, x_train=np.zeros((3, 40)))
    with pytest.warns(UserWarning, match="regenerating"):
        assert np.array_equal(load_mnist1d(num_samples=SMALL).test.x, expected.test.x)


def test_generation_leaves_global_random_states_alone():
    np.random.seed(123)
    random.seed(123)
    load_mnist1d(num_samples=SMALL, regenerate=True)
    after = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    assert after == (np.random.random(), random.random())


@pytest.mark.parametrize("num_samples", [0, 5, 105])
def test_num_samples_must_be_a_multiple_of_ten(num_samples):
    with pytest.raises(ValueError, match=f"multiple of 10, got {num_samples}"):
        load_mnist1d(num_samples=num_samples)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    # mnist1d is a base dependency (it generates the default dataset): the hint names it alone
    with pytest.raises(ImportError, match=r"a dependency of tinynormact: pip install mnist1d$"):
        load_mnist1d(num_samples=SMALL)
