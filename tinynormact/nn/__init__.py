"""Neural-network layers and models built on the autograd engine.

- ``Module``, ``Parameter``, ``Sequential`` (PyTorch's hooks, state_dict, train/eval, to(device));
- ``Linear``, ``Activation``, and the factory ``activation(name, **options)``, the one place
  that reads "n<name>" (a ``NormalizedActivation``);
- ``NormalizedActivation``: static and adaptive normalization (THEORY E12-E16);
- ``ResidualBlock``; the builders ``MLP`` and ``ResidualMLP``;
- ``init``: weight initializers with gains from the theory.
"""

from tinynormact.autograd import HookHandle
from tinynormact.nn import init
from tinynormact.nn.factory import activation
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.mlp import MLP
from tinynormact.nn.module import LoadResult, Module, Parameter, Sequential, StateDictError
from tinynormact.nn.normalized import NormalizedActivation
from tinynormact.nn.residual import ResidualBlock, ResidualMLP

__all__ = [
    "Activation",
    "HookHandle",
    "Linear",
    "LoadResult",
    "MLP",
    "Module",
    "NormalizedActivation",
    "Parameter",
    "ResidualBlock",
    "ResidualMLP",
    "Sequential",
    "StateDictError",
    "activation",
    "init",
]
