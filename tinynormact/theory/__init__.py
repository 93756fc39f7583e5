"""The variance theory of docs/THEORY.md, on the host with NumPy (and SciPy's root finder).

Everything here is a function of an activation (an ``activations.ActivationFunction`` or its name)
and of the second moment q of the pre-activations; nothing here touches autograd.

- ``activations``: the activation zoo, each (phi, phi') defined once on arrays, by name
- ``moments``: E1-E4 ``gaussian_moments``; E5-E7 ``rho``, ``rho_c``, ``rho_prime``, ``kappa``
- ``normalization``: E12-E15 ``normalization``, ``normalized``, ``init_gain``
- ``depth``: E8-E11 ``mlp_profile``, E17-E18 ``residual_profile``; ``solve_selu``,
  ``forward_fixed_point``, ``critical_weight_var``
- ``stability``: E19-E22 ``q_map_slope``, ``backward_factor``, ``depth_scale``, ``fixed_points``
- ``convolution``: the per-position theory of convolutional layers (``tn.theory.convolution``)
- ``tables``: ``gains_table``, ``stability_table`` and their text formatters

Statistics convention (shared by ``tracking`` and ``plots``)
-------------------------------------------------------------
All quantities are second moments E[y^2] (not variances about the mean; ddof plays no role),
averaged over units and over examples, and backward quantities are *per example*: delta_l is
d loss_b / d h_l for one example's loss loss_b. The training loss is the batch *mean*
loss = (1/B) sum_b loss_b, so its gradient with respect to an activation is delta_l / B, and its
weight gradient is the mean over the batch of the per-example weight gradients. For B independent
examples with zero-mean per-example gradients, the second moment of that batch-mean weight
gradient is the per-example value divided by B (E10). Per-example values are what this package
returns; divide by B to compare with ``.grad`` of a mean-loss batch.
"""

from tinynormact.theory import activations, convolution
from tinynormact.theory.depth import (
    MLPProfile,
    ResidualProfile,
    critical_weight_var,
    forward_fixed_point,
    mlp_profile,
    residual_profile,
    solve_selu,
)
from tinynormact.theory.moments import GaussianMoments, gaussian_moments, kappa, rho, rho_c, rho_prime
from tinynormact.theory.normalization import (
    RULES,
    Normalization,
    init_gain,
    lambda_from_gains,
    normalization,
    normalized,
)
from tinynormact.theory.stability import (
    FixedPoint,
    backward_factor,
    depth_scale,
    fixed_points,
    large_q_growth,
    q_map_slope,
)
from tinynormact.theory.tables import (
    activation_stability,
    format_fixed_points,
    format_gains_table,
    format_stability_table,
    gains_table,
    stability_table,
)

__all__ = [
    "activations",
    "convolution",
    "RULES",
    "GaussianMoments",
    "Normalization",
    "MLPProfile",
    "ResidualProfile",
    "gaussian_moments",
    "rho",
    "rho_c",
    "rho_prime",
    "kappa",
    "lambda_from_gains",
    "normalization",
    "normalized",
    "init_gain",
    "mlp_profile",
    "residual_profile",
    "solve_selu",
    "forward_fixed_point",
    "critical_weight_var",
    "q_map_slope",
    "backward_factor",
    "depth_scale",
    "FixedPoint",
    "fixed_points",
    "large_q_growth",
    "stability_table",
    "activation_stability",
    "format_fixed_points",
    "format_stability_table",
    "gains_table",
    "format_gains_table",
]
