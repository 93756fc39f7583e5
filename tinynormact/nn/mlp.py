"""MLP builder: Linear, activation, ..., Linear (the last layer is linear)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinynormact.activations import ActivationFunction
from tinynormact.nn import init as nn_init
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.module import Sequential


class MLP(Sequential):
    """widths = [n_0, ..., n_L]: L Linear layers with an activation after each but the last.

    This is the network of THEORY E8-E10 that ``theory.mlp_profile(..., final_activation=False)``
    describes. ``activation`` is any activation name, normalized ones included ("nswish"), or an
    ActivationFunction; ``activation_options`` go to every ``Activation`` (e.g.
    ``{"mode": "adaptive", "rule": "backward"}`` or ``{"beta": 2.0}``), each layer getting its own.
    ``init`` is an ``nn.init`` scheme: kaiming schemes take their gain from the theory for the
    activation that follows each Linear (identity for the last); other schemes use gain 1. One
    ``rng`` (seed or Generator) draws all weights in order, so a seed fixes the whole network.
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
    ) -> None:
        widths = list(widths)
        if len(widths) < 2:
            raise ValueError(f"MLP needs widths [n_0, ..., n_L] with at least two entries, got {widths!r}")
        rng = nn_init.as_generator(rng)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            last = i == len(widths) - 2
            act = None if last else Activation(activation, **(activation_options or {}))
            gain_from = (act.function if act else "identity") if nn_init.uses_activation(init) else None
            layers.append(Linear(n_in, n_out, bias, init, activation=gain_from, dtype=dtype, rng=rng))
            if act is not None:
                layers.append(act)
        super().__init__(*layers)
        self.widths = widths
