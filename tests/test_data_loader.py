"""DataLoader: batch sizes, coverage, seeded reproducible shuffles, placement, validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynormact import backend
from tinynormact.data import DataLoader, Dataset
from tinynormact.engine.backend import np


def _ids(n: int) -> Dataset:
    """A dataset whose single feature is the example's index, with label index % 3."""
    return Dataset(np.arange(n, dtype=np.float64)[:, None], np.arange(n) % 3, "ids", 3)


def _epoch(loader: DataLoader) -> list[list[int]]:
    """The example indices of each batch of one pass, read back on the host."""
    return [backend.to_numpy(x)[:, 0].astype(int).tolist() for x, _ in loader]


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last", "sizes"),
    [
        (10, 3, False, [3, 3, 3, 1]),
        (10, 3, True, [3, 3, 3]),
        (9, 3, False, [3, 3, 3]),
        (9, 3, True, [3, 3, 3]),
        (5, 8, False, [5]),
        (4, 1, True, [1, 1, 1, 1]),
    ],
)
def test_batch_sizes_and_len(n, batch_size, drop_last, sizes):
    loader = DataLoader(_ids(n), batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [len(batch) for batch in _epoch(loader)] == sizes


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 70), seed=st.integers(0, 2**32))
def test_every_example_appears_exactly_once_per_epoch(n, batch_size, seed):
    loader = DataLoader(_ids(n), batch_size, seed=seed)
    for _ in range(2):
        seen = [i for batch in _epoch(loader) for i in batch]
        assert sorted(seen) == list(range(n))


def test_labels_travel_with_their_examples():
    for x, y in DataLoader(_ids(23), 4, seed=5):
        ids = backend.to_numpy(x)[:, 0].astype(int)
        assert backend.to_numpy(y).tolist() == (ids % 3).tolist()


def test_same_seed_gives_the_same_orders_and_epochs_differ():
    first, second = DataLoader(_ids(30), 7, seed=11), DataLoader(_ids(30), 7, seed=11)
    orders = [_epoch(first) for _ in range(3)]
    assert orders == [_epoch(second) for _ in range(3)]
    assert orders[0] != orders[1] != orders[2]
    assert _epoch(DataLoader(_ids(30), 7, seed=12)) != orders[0]


def test_set_epoch_reproduces_a_later_epoch():
    reference = DataLoader(_ids(30), 4, seed=2)
    orders = [_epoch(reference) for _ in range(4)]
    resumed = DataLoader(_ids(30), 4, seed=2)
    resumed.set_epoch(2)
    assert _epoch(resumed) == orders[2]
    assert _epoch(resumed) == orders[3]
    assert resumed.epoch == 4


def test_an_interrupted_pass_still_advances_the_epoch():
    loader = DataLoader(_ids(30), 4, seed=2)
    full = DataLoader(_ids(30), 4, seed=2)
    next(iter(loader))
    _epoch(full)
    assert _epoch(loader) == _epoch(full)


def test_without_shuffle_the_order_is_the_stored_order():
    loader = DataLoader(_ids(7), 3, shuffle=False)
    assert _epoch(loader) == [[0, 1, 2], [3, 4, 5], [6]]
    assert _epoch(loader) == [[0, 1, 2], [3, 4, 5], [6]]


def test_batches_are_on_the_current_device_with_the_requested_dtypes(device):
    x, y = next(iter(DataLoader(_ids(10), 4)))
    assert backend.device_of(x) == device and backend.device_of(y) == device
    assert x.dtype == backend.get_default_dtype() and y.dtype == np.int64
    x64, _ = next(iter(DataLoader(_ids(10), 4, dtype="float64")))
    assert x64.dtype == np.float64


def test_uint8_images_become_floats():
    images = np.full((4, 2, 2), 255, dtype=np.uint8)
    x, _ = next(iter(DataLoader(Dataset(images, [0, 1, 0, 1], "img", 2), 4)))
    assert x.dtype == np.float32 and float(backend.to_numpy(x).max()) == 255.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"batch_size": True}, "batch_size must be an integer >= 1, got True"),
        ({"batch_size": 4, "seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"batch_size": 11, "drop_last": True}, "batch_size 11 is larger than .* 10 examples"),
        ({"batch_size": 2, "device": "tpu"}, "unknown device 'tpu'"),
    ],
)
def test_bad_arguments_raise_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(_ids(10), **options)


def test_bad_dataset_and_epoch_raise_clear_errors():
    with pytest.raises(ValueError, match="dataset must be a tinynormact Dataset, got tuple"):
        DataLoader((np.zeros((2, 1)), np.zeros(2)), 1)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got -3"):
        DataLoader(_ids(4), 2).set_epoch(-3)
