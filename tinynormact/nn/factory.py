"""``activation(name, **options)``: the one place that reads the ``n<name>`` spelling.

``activation("relu")`` is an ``Activation``; ``activation("nswish", mode="adaptive")`` a
``NormalizedActivation`` of swish with those options; parameters of the base activation
(``beta=2.0``) go to it in both cases. Everything that builds an activation from a name (the
MLP builders, configs, the CLI, experiments) calls this.
"""

from __future__ import annotations

from typing import Any

from tinynormact.nn.layers import Activation
from tinynormact.nn.normalized import (
    NormalizedActivation,
    check_normalization_options,
    normalization_options,
)
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction


def activation(name: str | ActivationFunction, **options: Any) -> Activation:
    """The activation layer called ``name``: "n<name>" for a normalized one (THEORY E12-E16)."""
    base = normalized_base(name) if isinstance(name, str) else None
    if base is not None:
        return NormalizedActivation(base, **options)
    _check_name(name)
    return Activation(name, **options)


def check_activation(name: str, **options: Any) -> None:
    """ValueError naming what is wrong with ``activation(name, **options)``, without building the
    layer: the base activation's parameters and a normalized activation's own options."""
    base = normalized_base(name)
    if base is None:
        _check_name(name)
        activations.get(name, **options)
        return
    own = normalization_options()
    check_normalization_options(**{key: value for key, value in options.items() if key in own})
    activations.get(base, **{key: value for key, value in options.items() if key not in own})


def _check_name(name: str | ActivationFunction) -> None:
    if isinstance(name, str) and name not in activations.names() and not activations.is_alias(name):
        valid = ", ".join(activations.names())
        raise ValueError(
            f"unknown activation {name!r}; valid activations are {valid}, an alias of one, "
            "or 'n' + any of them for a normalized activation (e.g. nswish)"
        )


def normalized_base(name: str) -> str | None:
    """The base activation of a normalized name ("nswish" -> "swish"; "nsilu" -> "silu"), else None."""
    if not name.startswith("n"):
        return None
    base = name[1:]
    return base if base in activations.names() or activations.is_alias(base) else None
