"""MLP builder: Linear, activation, ..., Linear (the last layer is linear), optionally with batch
normalization between each hidden Linear and its activation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinynormact.infra.validation import check_bool
from tinynormact.nn import init as nn_init
from tinynormact.nn.batchnorm import BatchNorm1d
from tinynormact.nn.factory import activation as make_activation
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.module import Sequential
from tinynormact.theory.activations import ActivationFunction


def gain_source(init: str | nn_init.Initializer, previous: Activation | None) -> Any:
    """What a builder passes as a Linear's ``gain_from``: the activation that produced the
    layer's input (identity for the data or a residual stream, THEORY E8), only for the schemes
    that compute their gain from one (kaiming); None otherwise (gain 1)."""
    if not nn_init.takes_gain_from_activation(init):
        return None
    return "identity" if previous is None else previous.function


class MLP(Sequential):
    """widths = [n_0, ..., n_L]: L Linear layers with an activation after each but the last.

    This is the network of THEORY E8-E10 that ``theory.mlp_profile(..., final_activation=False)``
    describes. ``activation`` is any name of ``nn.activation``, normalized ones included
    ("nswish"), or an ActivationFunction; ``activation_options`` go to every activation (e.g.
    ``{"mode": "adaptive", "rule": "backward"}`` or ``{"beta": 2.0}``), each layer getting its own.
    ``init`` is an ``nn.init`` scheme: kaiming schemes take the gain of the activation that
    produced each Linear's input (identity for the first, which sees the data); other schemes
    use gain 1. One ``rng`` (seed or Generator) draws all weights in order, so a seed fixes the
    whole network. ``batch_norm=True`` puts a ``BatchNorm1d`` between every hidden Linear and its
    activation (Linear, BN, activation: the order of the ResNets of He et al. 2016), so every
    activation sees each unit at mean 0 and variance 1 over the batch, times BN's learnt scale.
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation: str | ActivationFunction = "relu",
        activation_options: dict[str, Any] | None = None,
        bias: bool = True,
        init: str | nn_init.Initializer = "lecun_normal",
        dtype: Any = None,
        rng: nn_init.Rng = None,
        batch_norm: bool = False,
    ) -> None:
        widths = list(widths)
        check_bool("batch_norm", batch_norm)
        if len(widths) < 2:
            raise ValueError(f"MLP needs widths [n_0, ..., n_L] with at least two entries, got {widths!r}")
        rng = nn_init.as_generator(rng)
        layers: list[Any] = []
        previous: Activation | None = None
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(Linear(n_in, n_out, bias, init, gain_source(init, previous), dtype, rng))
            if i < len(widths) - 2:
                if batch_norm:
                    layers.append(BatchNorm1d(n_out, dtype=dtype))
                previous = make_activation(activation, **(activation_options or {}))
                layers.append(previous)
        super().__init__(*layers)
        self.widths, self.batch_norm = widths, batch_norm
