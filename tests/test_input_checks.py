"""Bad input stopped where it enters (issue 17 items 11 and 13): non-finite data by split and
index, and the Python API's constructors, losses and optimizers."""

from __future__ import annotations

import numpy as np
import pytest

import tinynormact as tn
from tests.test_cli import assert_one_line_error
from tinynormact import cli, data
from tinynormact.data import Dataset, DataSplits
from tinynormact.train import TrainConfig, train

# ----- item 11: NaN or Inf in the data ---------------------------------------------------------------


def _splits(bad_split: str, index: int, value: float) -> DataSplits:
    rng = np.random.default_rng(0)
    x = {name: rng.standard_normal((n, 3)) for name, n in (("train", 40), ("test", 20))}
    y = {name: rng.integers(0, 2, len(x[name])) for name in x}
    x[bad_split][index, 1] = value
    return DataSplits(*(Dataset(x[name], y[name], "toy", 2) for name in ("train", "test")))


CONFIG = TrainConfig(dataset="spirals", depth=1, width=4, epochs=1, batch_size=20)


def test_nan_only_in_the_test_split_is_refused_before_training() -> None:
    """Before: the run completed with test loss NaN and no warning."""
    with pytest.raises(ValueError, match=r"the test split holds nan in example 13 \(the first of 1 "):
        train(CONFIG, splits=_splits("test", 13, np.nan), progress=False)


def test_inf_in_the_train_split_is_named_by_index_not_reported_as_a_divergence() -> None:
    """Before: "training diverged at step 1 ... layer 0"."""
    with pytest.raises(ValueError, match=r"the train split holds -inf in example 3 "):
        train(CONFIG, splits=_splits("train", 3, -np.inf), progress=False)


def test_load_dataset_and_the_cli_check_the_data_they_load(monkeypatch, capsys) -> None:
    def broken(n_train: int = 40, seed: int = 0) -> DataSplits:
        return _splits("test", 5, np.inf)

    monkeypatch.setitem(data.DATASETS, "broken", broken)
    with pytest.raises(ValueError, match="test split holds inf in example 5"):
        data.load_dataset("broken")
    code = cli.main(["train", "--dataset", "broken", "--depth", "1", "--width", "4", "--epochs", "1"])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "'toy'", "test split", "example 5")


def test_finite_data_passes() -> None:
    _splits("train", 0, 1e300).check_finite()  # huge but finite is data, not an error


# ----- item 13: the Python API ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("abc", ["got str 'abc'"]),
        (None, ["got NoneType None"]),
        ({"a": 1}, ["got dict"]),
        (np.array([object(), 1.0], dtype=object), ["dtype object"]),
        ([["a", "b"]], ["got list"]),
    ],
)
def test_tensor_refuses_what_is_not_numbers_when_made(value, words) -> None:
    """Before: accepted, then failed later inside NumPy with an unrelated message."""
    with pytest.raises(TypeError, match="a Tensor holds numbers") as info:
        tn.Tensor(value)
    assert all(word in str(info.value) for word in words), info.value


def test_tensor_still_takes_numbers_of_every_kind() -> None:
    for value in (1, 2.5, True, [1, 2], np.arange(3, dtype=np.int8), np.array([1 + 2j])):
        assert tn.Tensor(value).shape == np.shape(value)


def test_cross_entropy_of_an_empty_batch_says_so() -> None:
    """Before: ZeroDivisionError."""
    with pytest.raises(ValueError, match=r"batch is empty \(logits of shape \(0, 3\)\)"):
        tn.losses.softmax_cross_entropy(tn.Tensor(np.zeros((0, 3))), np.zeros(0, dtype=np.int64))
    total = tn.losses.softmax_cross_entropy(tn.Tensor(np.zeros((0, 3))), np.zeros(0, dtype=np.int64), "sum")
    assert float(total.data) == 0.0  # a sum over no examples is 0


def test_mse_with_a_string_target_names_the_target() -> None:
    """Before: "prediction shape (4,) differs from target shape ()"."""
    with pytest.raises(TypeError, match="got str 'abcd'"):
        tn.losses.mse_loss(tn.Tensor([1.0, 2.0, 3.0, 4.0]), "abcd")


@pytest.mark.parametrize("lr", [-5, None, float("nan"), "0.1"])
def test_optimizer_lr_is_checked_when_set_and_when_loaded(lr) -> None:
    """Before: ``opt.lr = -5`` after construction and a negative rate in a loaded state passed."""
    p = tn.Tensor([1.0, 2.0], requires_grad=True)
    optimizer = tn.optim.SGD([p], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="lr must be"):
        optimizer.lr = lr
    state = optimizer.state_dict()
    state["hyperparameters"]["lr"] = lr
    with pytest.raises(ValueError, match="lr must be"):
        optimizer.load_state_dict(state)
    assert optimizer.lr == 0.1
    optimizer.lr = 0.0  # a schedule may end at 0
    assert optimizer.lr == 0.0
