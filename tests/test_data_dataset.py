"""Dataset, DataSplits, flatten and standardize."""

from __future__ import annotations

import pytest

from tinynormact.data import Dataset, DataSplits, flatten, standardize
from tinynormact.engine.backend import np


def _dataset(n: int, shape: tuple[int, ...] = (3,), n_classes: int = 4, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(rng.normal(size=(n, *shape)), rng.integers(0, n_classes, n), "toy", n_classes)


def test_labels_are_stored_as_int64():
    data = Dataset(np.zeros((3, 2)), np.array([0, 1, 2], dtype=np.uint8), "toy", 3)
    assert data.y.dtype == np.int64
    assert data.y.tolist() == [0, 1, 2]
    assert len(data) == 3 and data.example_shape == (2,)


def test_mismatched_lengths_name_both_shapes():
    with pytest.raises(ValueError, match=r"x\.shape=\(5, 2\), y\.shape=\(4,\)"):
        Dataset(np.zeros((5, 2)), np.zeros(4, dtype=int), "toy", 2)


def test_float_labels_are_rejected():
    with pytest.raises(ValueError, match="labels must be integers, got dtype float64"):
        Dataset(np.zeros((2, 2)), np.array([0.0, 1.0]), "toy", 2)


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_labels_outside_the_classes_are_rejected(labels):
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        Dataset(np.zeros((2, 2)), np.array(labels), "toy", 3)


def test_split_partitions_the_examples():
    x = np.arange(50.0)[:, None]
    data = Dataset(x, np.zeros(50, dtype=int), "toy", 1)
    splits = data.split(test_fraction=0.2, seed=3)
    train_ids, test_ids = splits.train.x[:, 0], splits.test.x[:, 0]
    assert len(test_ids) == 10 and len(train_ids) == 40
    assert sorted(np.concatenate([train_ids, test_ids]).tolist()) == list(range(50))
    again = data.split(test_fraction=0.2, seed=3)
    assert np.array_equal(again.test.x, splits.test.x)
    assert not np.array_equal(data.split(test_fraction=0.2, seed=4).test.x, splits.test.x)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_split_rejects_fractions_outside_zero_one(fraction):
    with pytest.raises(ValueError, match=f"test_fraction .* got {fraction}"):
        _dataset(10).split(fraction)


def test_splits_must_share_example_shape():
    with pytest.raises(ValueError, match=r"train \(3,\) with 4 classes and test \(2,\)"):
        DataSplits(_dataset(5), _dataset(5, shape=(2,)))


def test_flatten_turns_images_into_rows_in_c_order():
    images = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    splits = DataSplits(Dataset(images, [0, 1], "img", 2), Dataset(images[:1], [1], "img", 2))
    flat = flatten(splits)
    assert flat.train.x.shape == (2, 60) and flat.test.x.shape == (1, 60)
    assert flat.train.x[1].tolist() == list(range(60, 120))
    assert flat.train.y.tolist() == [0, 1]


def test_standardize_uses_train_statistics_for_both_sets():
    train = Dataset(np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]]), [0, 1, 0], "toy", 2)
    test = Dataset(np.array([[7.0, 12.0]]), [1], "toy", 2)
    out = standardize(DataSplits(train, test))
    # By hand: feature 0 has mean 3 and std sqrt(8/3); feature 1 is constant (only shifted).
    s = np.sqrt(8 / 3)
    assert np.allclose(out.train.x, [[-2 / s, 0.0], [0.0, 0.0], [2 / s, 0.0]])
    assert np.allclose(out.test.x, [[4 / s, 2.0]])
    assert out.train.x.dtype == np.float64


def test_standardize_gives_float32_for_uint8_images():
    images = np.random.default_rng(0).integers(0, 256, (20, 6), dtype=np.uint8)
    splits = DataSplits(Dataset(images, np.zeros(20, int), "img", 1), Dataset(images[:5], [0] * 5, "img", 1))
    out = standardize(splits)
    assert out.train.x.dtype == np.float32
    assert np.allclose(out.train.x.mean(axis=0), 0.0, atol=1e-6)
    assert np.allclose(out.train.x.std(axis=0), 1.0, atol=1e-6)
