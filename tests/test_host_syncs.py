"""Host-synchronisation budgets, counted on the strict test device (tests/strict_device.py).

On a GPU every ``float()``, ``bool()``, ``.item()`` or transfer of a device value stalls the
device until it has caught up, so the training loop is allowed a fixed number per step:

- a training step (no tracking): ONE transfer, carrying the loss (logged every step in
  ``step_losses``) and the gradients' finiteness together; adaptive normalization, gradient
  clipping and the optimizers add none;
- an evaluation of a split: ONE transfer (summed loss and hits of all its batches);
- adaptive normalization in evaluation mode: none.

These tests run on the strict device whatever ``--device`` says (the counts are the point), and
count exactly: a budget raised by one fails. Measured before these budgets (same configurations):
2 float() per step (loss, gradient check), + 1 float() per parameter with gradient clipping, +1
float() per adaptive layer per evaluation forward, 2 syncs per evaluation batch, 34 float() per
tracked step of a 4-Linear relu network.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.strict_device import count_syncs
from tinynormact import backend, optim
from tinynormact.data import load_dataset
from tinynormact.engine import autograd
from tinynormact.train import TrainConfig, Trainer, train, using_device

SPIRALS = dict(dataset="spirals", dataset_options={"n_train": 120, "n_test": 60})
ADAPTIVE = dict(activation="nswish", activation_options={"mode": "adaptive"})


def strict_trainer(**changes: object) -> Trainer:
    settings = {**SPIRALS, "depth": 3, "width": 16, "batch_size": 40, "device": "strict"}
    config = TrainConfig(**{**settings, **changes})
    with using_device("strict"):
        return Trainer(config, load_dataset(config.dataset, **config.dataset_options))


@pytest.mark.parametrize(
    "changes",
    [{}, ADAPTIVE, {**ADAPTIVE, "activation_options": {"mode": "adaptive", "center": True}},
     {"architecture": "resmlp"}, {"grad_clip": 0.5}, {"optimizer": "adam", "weight_decay": 0.01},
     {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "schedule": "cosine"}],
    ids=["relu", "adaptive", "adaptive-centred", "resmlp", "clip", "adam", "sgd-momentum-cosine"],
)  # fmt: skip
def test_a_training_step_transfers_once(changes) -> None:
    trainer = strict_trainer(**changes)
    batches = list(trainer.batches())
    with using_device("strict"), count_syncs() as syncs:
        for x, y in batches:
            trainer.train_step(x, y)
    assert syncs == {"transfer": len(batches)}


def test_evaluation_transfers_once_per_split_and_adaptive_eval_forward_not_at_all() -> None:
    trainer = strict_trainer(**ADAPTIVE)
    with using_device("strict"):
        x, _ = next(iter(trainer.batches()))
        trainer.model.eval()
        with count_syncs() as forward, autograd.no_grad():
            trainer.model(x)
        trainer.model.train()
        with count_syncs() as evaluation:
            trainer.evaluate("train"), trainer.evaluate("test")
    assert forward == {} and evaluation == {"transfer": 2}


def test_clip_grad_norm_and_optimizer_steps_stay_on_the_device() -> None:
    trainer = strict_trainer(**ADAPTIVE)
    with using_device("strict"):
        x, y = next(iter(trainer.batches()))
        trainer.train_step(x, y)
        params = trainer.optimizer.params
        optimizers = [optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
                      optim.Adam(params, lr=1e-3, weight_decay=0.01)]  # fmt: skip
        with count_syncs() as syncs:
            norm = optim.clip_grad_norm(params, max_norm=1e-3)
            for opt in optimizers:
                opt.step()
                opt.step()
    assert syncs == {} and backend.device_of(norm) == "strict"


def test_a_whole_run_transfers_once_per_step_and_once_per_evaluated_split() -> None:
    """2 epochs of 3 steps, evaluated before training and after each epoch on both splits, and
    one check of the final weights (every step's check covers the weights of the update before
    it; the last update's are checked once at the end)."""
    config = TrainConfig(**SPIRALS, depth=2, width=8, epochs=2, batch_size=40, device="strict", **ADAPTIVE)
    with count_syncs() as syncs:
        result = train(config)
    steps, evaluations = len(result.step_losses), 2 * len(result.history["epoch"])
    assert (steps, evaluations) == (6, 6)
    assert syncs == Counter({"transfer": steps + evaluations + 1})
    reference = train(TrainConfig(**{**config.to_dict(), "device": "cpu"}))
    np.testing.assert_array_equal(result.step_losses, reference.step_losses)  # NumPy underneath


@pytest.mark.parametrize("every", [1, 2])
def test_a_tracked_step_moves_its_statistics_to_the_host_in_one_transfer(every: int) -> None:
    """Every statistic of every layer of a recorded step stays on the device until the step is
    complete, then travels as one (statistic, layer) table: one transfer per recorded step, on top
    of the step's own. Measured before (the tracker of the time): 34 float() per recorded step of
    the same network with relu."""
    trainer = strict_trainer(track_every=every, **ADAPTIVE)
    batches = list(trainer.batches())
    with using_device("strict"), count_syncs() as syncs:
        for x, y in batches:
            trainer.train_step(x, y)
        trainer.tracker.flush()
    recorded = len(range(0, len(batches), every))
    assert (len(batches), recorded) == ((3, 3) if every == 1 else (3, 2))
    assert syncs == {"transfer": len(batches) + recorded}
    assert list(trainer.tracker.to_dict()["step"]) == list(range(0, len(batches), every))
