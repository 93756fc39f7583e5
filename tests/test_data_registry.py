"""load_dataset: names, options, and the flatten + standardize it applies."""

from __future__ import annotations

import gzip
import re
import struct

import pytest

from tinynormact.data import DATASETS, DataError, load_dataset, spirals
from tinynormact.engine.backend import np


def test_all_issue_names_are_registered():
    assert set(DATASETS) == {
        "mnist1d",
        "spirals",
        "gaussian_mixture",
        "teacher",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "cifar100",
    }


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'mnist2d'; valid names are mnist1d, .*cifar100"):
        load_dataset("mnist2d")


def test_unknown_option_lists_the_valid_options():
    with pytest.raises(
        ValueError, match="'spirals' has no option 'n_features'; valid options are n_train, .*seed"
    ):
        load_dataset("spirals", n_features=3)


@pytest.mark.parametrize(
    ("name", "option", "value", "valid"),
    [
        ("spirals", "n_train", "abc", "an integer"),
        ("spirals", "n_train", 2.5, "an integer"),
        ("spirals", "n_test", True, "an integer"),
        ("spirals", "noise", "abc", "a finite number"),
        ("gaussian_mixture", "separation", float("nan"), "a finite number"),
        ("teacher", "hidden", "abc", "a list of integers"),
        ("teacher", "hidden", [8, 2.5], "a list of integers"),
        ("mnist1d", "regenerate", "yes", "true or false"),
        ("cifar100", "labels", 3, "a string"),
        ("mnist", "path", 3, "a file or folder path"),
    ],
)
def test_option_of_the_wrong_type_names_dataset_option_value_and_valid_type(name, option, value, valid):
    options = {"path": "/nonexistent"} if name in ("mnist", "cifar100") else {}
    options[option] = value
    expected = f"dataset {name!r}: option {option} must be {valid}" + ".*" + re.escape(f", got {value!r}")
    with pytest.raises(ValueError, match=expected):
        load_dataset(name, **options)


def test_options_of_the_right_type_are_accepted():
    # a whole number for a float option (JSON reads noise=0 as an int) and a list for hidden
    assert load_dataset("spirals", n_train=20, n_test=10, noise=0).train.x.shape == (20, 2)
    teacher = load_dataset("teacher", n_train=20, n_test=10, n_features=3, hidden=[4, 4], label_noise=1)
    assert teacher.train.x.shape == (20, 3)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_file_datasets_ask_for_a_path(name):
    with pytest.raises(ValueError, match=f"dataset '{name}' needs path="):
        load_dataset(name)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_without_a_path_looks_in_the_data_root(tmp_path, monkeypatch, name):
    monkeypatch.setenv("TINYNORMACT_DATA", str(tmp_path))
    with pytest.raises(DataError, match=re.escape(f"tinynormact data download {name} --root {tmp_path}")):
        load_dataset(name)


def test_options_reach_the_generator_and_train_statistics_are_standardized():
    splits = load_dataset("spirals", n_train=500, n_test=100, seed=4)
    raw = spirals(n_train=500, n_test=100, seed=4)
    mean, std = raw.train.x.mean(axis=0), raw.train.x.std(axis=0)
    assert np.allclose(splits.train.x, (raw.train.x - mean) / std)
    assert np.allclose(splits.test.x, (raw.test.x - mean) / std)
    assert np.array_equal(splits.test.y, raw.test.y)
    unscaled = load_dataset("spirals", standardize_features=False, n_train=500, n_test=100, seed=4)
    assert np.array_equal(unscaled.train.x, raw.train.x)


def test_images_come_out_as_standardized_vectors(tmp_path):
    rng = np.random.default_rng(0)
    images = {
        "train": rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
        "t10k": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
    }
    for part, array in images.items():
        labels = np.arange(len(array), dtype=np.uint8) % 10
        (tmp_path / f"{part}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 2051, len(array), 28, 28) + array.tobytes())
        )
        (tmp_path / f"{part}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 2049, len(array)) + labels.tobytes())
        )
    splits = load_dataset("fashion_mnist", path=tmp_path)
    assert splits.train.x.shape == (8, 784) and splits.test.x.shape == (3, 784)
    assert splits.train.x.dtype == np.float32
    flat = images["train"].reshape(8, -1).astype(np.float64)
    expected = (flat - flat.mean(axis=0)) / flat.std(axis=0)
    assert np.allclose(splits.train.x, expected, atol=1e-5)


def test_mnist1d_by_name(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYNORMACT_CACHE", str(tmp_path))
    splits = load_dataset("mnist1d", num_samples=50)
    assert splits.train.x.shape == (40, 40) and splits.test.x.shape == (10, 40)
