"""The training loop: determinism, resuming, Ctrl-C, NaN/Inf detection and configurations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tinynormact import backend, nn
from tinynormact.train import (
    CheckpointError,
    ConfigError,
    StepInfo,
    TrainConfig,
    TrainingDiverged,
    train,
)
from tinynormact.train.health import locate_nonfinite, loss_and_arrays_finite

# 4 batches per epoch, so step 6 lies in the middle of epoch 2
SMALL = dict(
    dataset="spirals",
    dataset_options={"n_train": 200, "n_test": 100},
    depth=3,
    width=16,
    epochs=3,
    batch_size=50,
)


def small(**changes: object) -> TrainConfig:
    """SMALL on the device under test, with ``changes``."""
    return TrainConfig(**{"device": backend.get_device(), **SMALL, **changes})


def _without_times(history: dict[str, list[float]]) -> dict[str, list[float]]:
    return {key: values for key, values in history.items() if key != "seconds"}


def _stop_at(step: int):
    def callback(info: StepInfo) -> None:
        if info.step == step:
            raise KeyboardInterrupt

    return callback


# ----- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_bit_identical_runs() -> None:
    config = small(activation="nswish", activation_options={"mode": "adaptive"}, optimizer="adam", lr=0.01)
    first, second = train(config, progress=False), train(config, progress=False)
    assert _without_times(first.history) == _without_times(second.history)
    assert first.step_losses == second.step_losses
    other = train(config.replace(seed=1), progress=False)
    assert other.step_losses != first.step_losses  # the comparison above can fail


def test_history_has_one_entry_per_epoch_and_the_untrained_network() -> None:
    result = train(small(target_loss=10.0), progress=False)
    assert result.history["epoch"] == [0, 1, 2, 3]
    assert len(result.step_losses) == 3 * 4
    assert result.epochs_to_target == 0  # every loss is below 10, the untrained one included
    assert all(0.0 <= acc <= 1.0 for acc in result.history["test_acc"])


# ----- checkpoints, resuming, Ctrl-C ------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        dict(activation="ntanh", activation_options={"mode": "adaptive"}, optimizer="adam", lr=0.01),
        dict(activation="relu", optimizer="sgd", momentum=0.9, schedule="cosine", track_every=2),
    ],
    ids=["adaptive-adam", "sgd-cosine-tracked"],
)
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, changes) -> None:
    config = small(**changes)
    whole = train(config, out_dir=tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, out_dir=tmp_path / "split", progress=False, callback=_stop_at(6))
    partial = json.loads((tmp_path / "split" / "result.json").read_text())
    assert partial["status"] == "interrupted" and len(partial["step_losses"]) == 6
    resumed = train(config, out_dir=tmp_path / "split", resume=True, progress=False)

    assert resumed.step_losses == whole.step_losses
    assert _without_times(resumed.history) == _without_times(whole.history)
    if config.track_every:
        assert resumed.tracker["step"].tolist() == whole.tracker["step"].tolist()
        np.testing.assert_array_equal(resumed.tracker["delta_sq"], whole.tracker["delta_sq"])
    with (
        np.load(tmp_path / "whole" / "checkpoint.npz") as a,
        np.load(tmp_path / "split" / "checkpoint.npz") as b,
    ):
        model_keys = [k for k in a.files if k.startswith(("model/", "optimizer/"))]
        assert model_keys and sorted(model_keys) == sorted(
            k for k in b.files if k.startswith(("model/", "optimizer/"))
        )
        for key in model_keys:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_resume_refuses_another_configuration(tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt):
        train(small(), out_dir=tmp_path, progress=False, callback=_stop_at(2))
    with pytest.raises(ConfigError, match="lr: the run has 0.05, now 0.5"):
        train(small(lr=0.5), out_dir=tmp_path, resume=True, progress=False)


def test_existing_run_is_not_overwritten_and_missing_checkpoint_is_reported(tmp_path) -> None:
    train(small(epochs=1), out_dir=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        train(small(epochs=1), out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        train(small(epochs=1), out_dir=tmp_path / "empty", resume=True, progress=False)


def test_corrupt_checkpoint_is_reported_with_its_path(tmp_path) -> None:
    train(small(epochs=1), out_dir=tmp_path, progress=False)
    (tmp_path / "checkpoint.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        train(small(epochs=1), out_dir=tmp_path, resume=True, progress=False)


def _corrupt_checkpoint(folder, change) -> None:
    """Rewrite ``folder``'s checkpoint after ``change(arrays, meta)`` edits its arrays and meta.

    The meta is left out when ``change`` returns "no meta"."""
    path = folder / "checkpoint.npz"
    with np.load(path) as file:
        arrays = {key: file[key] for key in file.files}
    meta = json.loads(str(arrays.pop("meta")))
    result = change(arrays, meta)
    if not (isinstance(result, str) and result == "no meta"):
        arrays["meta"] = np.array(json.dumps(meta))
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def _rename(arrays, old: str, new: str) -> None:
    arrays[new] = arrays.pop(old)


CORRUPTIONS = {
    "no-optimizer-meta": (lambda a, m: m.pop("optimizer"), "no 'optimizer' entry"),
    "no-progress-meta": (lambda a, m: m.pop("progress"), "no 'progress' entry"),
    "progress-without-epoch": (lambda a, m: m["progress"].pop("epoch"), "its progress lacks epoch"),
    "no-scalars": (lambda a, m: m["optimizer"].pop("scalars"), "no 'scalars' entry"),
    "scalars-not-a-list": (lambda a, m: m["optimizer"].update(scalars=3), r"'scalars'\] must be a list"),
    "no-meta": (lambda a, m: "no meta", "no 'meta' entry"),
    "meta-not-json": (lambda a, m: a.update(meta=np.array("{oops")) or "no meta", "meta is not JSON"),
    "extra-array": (lambda a, m: a.update(junk=np.zeros(2)), "unknown entry 'junk'"),
    "unknown-group": (lambda a, m: a.update({"extra/w": np.zeros(2)}), "unknown entry 'extra/w'"),
    "index-too-large": (
        lambda a, m: _rename(a, "optimizer/0/momentum_buffer", "optimizer/99/momentum_buffer"),
        "'optimizer/99/momentum_buffer' has a bad parameter index '99'; valid indices are 0 to",
    ),
    "index-not-a-number": (
        lambda a, m: _rename(a, "optimizer/0/momentum_buffer", "optimizer/first/momentum_buffer"),
        "bad parameter index 'first'",
    ),
    "unknown-hyperparameter": (
        lambda a, m: m["optimizer"]["hyperparameters"].update(warp=9),
        "unknown hyperparameter 'warp'",
    ),
    "missing-model-array": (lambda a, m: a.pop(next(k for k in a if k.startswith("model/"))), "missing keys"),
    # hand edits with a valid zip checksum (issue 17 item 8): each field checked by the config's rules
    "epoch-a-string": (
        lambda a, m: m["progress"].update(epoch="1"),
        "epoch must be an integer in \\[0, 1\\], got '1'",
    ),
    "epoch-beyond-the-run": (
        lambda a, m: m["progress"].update(epoch=99),
        "epoch must be an integer in .* got 99",
    ),
    "huge-batch-index": (lambda a, m: m["progress"].update(batch=10**15), "batch must be an integer in"),
    "step-off-by-one": (lambda a, m: m["progress"].update(step=m["progress"]["step"] + 1), "does not match"),
    "lr-null": (lambda a, m: m["optimizer"]["hyperparameters"].update(lr=None), "lr must be a real number"),
    "lr-negative": (lambda a, m: m["optimizer"]["hyperparameters"].update(lr=-5), "lr must be in"),
    "lr-changed": (lambda a, m: m["optimizer"]["hyperparameters"].update(lr=0.5), "optimizer lr is 0.5 but"),
    "losses-too-short": (lambda a, m: m["progress"]["step_losses"].pop(), "step_losses must be a list of"),
    "config-edited": (lambda a, m: m["progress"]["config"].update(lr="fast"), "invalid configuration.*lr"),
    "nan-weight": (
        lambda a, m: next(v for k, v in a.items() if k.startswith("model/")).fill(np.nan),
        "not finite",
    ),
    "nan-momentum": (
        lambda a, m: a["optimizer/0/momentum_buffer"].fill(np.inf),
        "momentum_buffer.*not finite",
    ),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_checkpoint_contents_raise_checkpoint_error_naming_file_and_key(tmp_path, corruption) -> None:
    config = small(epochs=1, optimizer="sgd", momentum=0.9)
    train(config, out_dir=tmp_path, progress=False)
    change, message = CORRUPTIONS[corruption]
    _corrupt_checkpoint(tmp_path, change)
    with pytest.raises(CheckpointError, match="checkpoint.npz") as info:
        train(config, out_dir=tmp_path, resume=True, progress=False)
    assert info.match(message)


# ----- NaN / Inf ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "finite"),
    [(None, True), (np.nan, False), (np.inf, False), (-np.inf, False), (1e30, True), (-3e38, True)],
)
def test_the_gradient_check_is_exact_even_when_the_fast_sum_of_squares_overflows(bad, finite) -> None:
    """One entry of one float32 gradient set to ``bad``: NaN and +-Inf must be caught; huge finite
    values (whose squares overflow float32, so the fast path alone would call them non-finite)
    must not be."""
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in ((3, 4), (4,), (5, 3))]
    if bad is not None:
        grads[1][2] = bad
    loss = backend.asarray(np.array(0.25, dtype=np.float32))
    assert loss_and_arrays_finite(loss, [backend.asarray(g) for g in grads]) == (0.25, finite)
    assert loss_and_arrays_finite(loss, []) == (0.25, True)


def test_exploding_learning_rate_stops_with_step_and_layer(tmp_path) -> None:
    config = small(activation="relu", optimizer="sgd", lr=1e12, momentum=0.0)
    with pytest.raises(TrainingDiverged) as info:
        train(config, out_dir=tmp_path, progress=False)
    error = info.value
    assert f"step {error.step}" in str(error) and error.step >= 2  # step 1 starts from finite weights
    assert error.step == len(error.result.step_losses) + 1  # the steps before it completed
    model = nn.MLP([2, 16, 16, 16, 3], "relu")
    layer_names = [name for name, _ in model.named_modules() if name]
    assert any(f"layer '{name}'" in str(error) for name in layer_names), str(error)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["status"] == "diverged" and saved["message"] == str(error)


def test_locate_nonfinite_names_the_first_layer_in_forward_order() -> None:
    model = nn.MLP([4, 8, 8, 8, 2], "tanh", rng=0)
    x = np.ones((3, 4), dtype=np.float32)
    assert locate_nonfinite(model, x).startswith("no layer")
    model[4].weight.data[0, 0] = np.inf  # the third Linear
    assert locate_nonfinite(model, x) == "parameter 'weight' of layer '4' (Linear)"
    model[2].bias.data[1] = np.nan  # an earlier Linear now comes first
    assert locate_nonfinite(model, x) == "parameter 'bias' of layer '2' (Linear)"


def test_locate_nonfinite_reports_an_overflowing_output() -> None:
    model = nn.MLP([4, 8, 8, 2], "identity", rng=0)
    x = np.full((3, 4), 1e30, dtype=np.float32)
    model[0].weight.data[:] = 1e30  # finite weights whose products overflow float32
    assert locate_nonfinite(model, x) == "output of layer '0' (Linear)"


# ----- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (dict(lr=-1.0), ["lr", "-1.0"]),
        (dict(depth=0), ["depth", "0"]),
        (dict(optimizer="rmsprop"), ["optimizer", "rmsprop", "sgd"]),
        (dict(activation="nfoo"), ["nfoo"]),
        (dict(activation="nswish", activation_options={"rule": "sideways"}), ["sideways", "balanced"]),
        (dict(init="magic"), ["magic", "lecun_normal"]),
        (dict(momentum=1.0), ["momentum", "1.0"]),
        (dict(dataset="imagenet"), ["imagenet", "mnist1d"]),
    ],
)
def test_bad_values_name_the_field_and_the_value(changes, words) -> None:
    with pytest.raises(ConfigError) as info:
        small(**changes)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_config_files_toml_and_json(tmp_path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('activation = "nswish"\nepochs = 2\n[activation_options]\nmode = "adaptive"\n')
    config = TrainConfig.from_file(toml)
    assert config.activation == "nswish" and config.epochs == 2
    assert config.activation_options == {"mode": "adaptive"}
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps(config.to_dict()))
    assert TrainConfig.from_file(as_json) == config


def test_config_file_rejects_unknown_keys_and_bad_syntax(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("epochs = 2\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="'learning_rate'"):
        TrainConfig.from_file(path)
    path.write_text("epochs = = 2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        TrainConfig.from_file(tmp_path / "missing.toml")


def test_float64_training_keeps_float64_parameters() -> None:
    result = train(small(epochs=1, dtype="float64"), progress=False)
    assert math.isfinite(result.history["train_loss"][-1])
    float32 = train(small(epochs=1), progress=False)
    assert result.step_losses != float32.step_losses  # the dtype reached the computation
