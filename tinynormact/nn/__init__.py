"""Neural-network layers and models built on the autograd engine.

- ``Module``, ``Parameter``, ``Sequential`` (hooks, state_dict, train/eval, to(device));
- ``Linear``, ``Activation`` (any activation name; "n<name>" builds a ``NormalizedActivation``),
  with hooks on what their backward computes (``LinearGradients``, phi') for variance tracking;
- ``NormalizedActivation``: static and adaptive normalization (THEORY E12-E16);
- ``ResidualBlock``; the builders ``MLP`` and ``ResidualMLP``;
- ``init``: weight initializers with gains from the theory.
"""

from tinynormact.nn import init
from tinynormact.nn.layers import Activation, Linear, LinearGradients
from tinynormact.nn.mlp import MLP
from tinynormact.nn.module import HookHandle, LoadResult, Module, Parameter, Sequential, StateDictError
from tinynormact.nn.normalized import NormalizedActivation
from tinynormact.nn.residual import ResidualBlock, ResidualMLP

__all__ = [
    "Activation",
    "HookHandle",
    "Linear",
    "LinearGradients",
    "LoadResult",
    "MLP",
    "Module",
    "NormalizedActivation",
    "Parameter",
    "ResidualBlock",
    "ResidualMLP",
    "Sequential",
    "StateDictError",
    "init",
]
