"""Neural-network layers and models built on the autograd engine.

- ``Module``, ``Parameter``, ``Sequential`` (PyTorch's hooks, state_dict, train/eval, to(device));
- ``Linear``, ``Activation``, and the factory ``activation(name, **options)``, the one place
  that reads "n<name>" (a ``NormalizedActivation``);
- ``NormalizedActivation``: static and adaptive normalization (THEORY E12-E16);
- ``ResidualBlock``; the builders ``MLP`` and ``ResidualMLP``;
- ``Conv1d``, ``Conv2d``, ``BatchNorm1d``, ``BatchNorm2d``, pooling and shape layers, the
  convolutional ``ConvResidualBlock`` and the ResNet builders (``resnet20/32/56``, ``resnet50``,
  ``resnet1d``);
- ``init``: weight initializers with gains from the theory;
- beside the modules, on tensors: ``functional`` (activations by name, softmax), ``losses``
  (cross-entropy, MSE) and ``optim`` (SGD, Adam, schedules), reached as ``tn.functional``,
  ``tn.losses`` and ``tn.optim``; ``nn/__init__`` does not import them.
"""

from tinynormact.engine.autograd import HookHandle
from tinynormact.nn import init
from tinynormact.nn.batchnorm import BatchNorm1d, BatchNorm2d
from tinynormact.nn.conv import Conv1d, Conv2d
from tinynormact.nn.factory import activation, check_activation
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.mlp import MLP
from tinynormact.nn.module import LoadResult, Module, Parameter, Sequential, StateDictError
from tinynormact.nn.normalized import NormalizedActivation
from tinynormact.nn.pooling import (
    AvgPool1d,
    AvgPool2d,
    Flatten,
    GlobalAvgPool,
    MaxPool1d,
    MaxPool2d,
    Unflatten,
)
from tinynormact.nn.residual import ResidualBlock, ResidualMLP
from tinynormact.nn.resnet import (
    ConvResidualBlock,
    resnet1d,
    resnet20,
    resnet32,
    resnet50,
    resnet56,
    resnet_cifar,
)

__all__ = [
    "Activation",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "ConvResidualBlock",
    "Flatten",
    "GlobalAvgPool",
    "MaxPool1d",
    "MaxPool2d",
    "Unflatten",
    "resnet1d",
    "resnet20",
    "resnet32",
    "resnet50",
    "resnet56",
    "resnet_cifar",
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
    "check_activation",
    "init",
]
