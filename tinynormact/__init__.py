"""tinynormact: a readable reference implementation of normalized activation functions.

Public API (see README.md for a tour)::

    import tinynormact as tn
    tn.Tensor, tn.no_grad, tn.gradcheck, tn.set_device, tn.get_device
"""

from tinynormact.backend import (
    get_default_dtype,
    get_device,
    set_default_dtype,
    set_device,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "get_default_dtype",
    "get_device",
    "set_default_dtype",
    "set_device",
]
