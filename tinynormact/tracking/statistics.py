"""The statistics a ``VarianceTracker`` records, their convention, and the reductions that
compute them: the one place that defines what each column of a tracked record means.

Statistics convention (the one of ``theory`` and docs/THEORY.md, "Statistics convention"):
every quantity is a second moment averaged over examples and units, and backward quantities are
*per example*. The model's loss must be the batch mean (1/B) sum_b loss_b, as the library's
losses are with ``reduction="mean"``; the gradient reaching an activation of example b is then
delta_b / B, so the tracker multiplies the gradients it sees by B. Measured numbers therefore
compare directly with ``theory.mlp_profile`` and ``theory.residual_profile``. The two variances
(``preact_var`` and the ``*_grad_var`` across examples) are population variances (ddof = 0).

The statistics (``STATISTICS``), for layer l with input x, pre-activation h = W x + b and output
y = phi(h) (B examples, n units):

- ``input_sq``       E[x^2] of the layer's input (E10's E[x_{l-1}^2]; E17's E[x_l^2] for the
                     first Linear of a residual branch)
- ``input_grad_sq``  per-example E[(d loss_b / d x)^2], the full gradient of the input (E18's
                     g_l for the first Linear of a residual branch); NaN for a constant input
- ``preact_sq``      q_l = E[h^2] (E8)
- ``preact_var``     the variance of h over examples and units
- ``act_sq``         E[phi(h)^2] (E8's m2(q_l))
- ``rho``            E[phi(h)^2] / E[h^2], the batch forward gain (E5, E16)
- ``rho_prime``      E[phi'(h)^2], the batch backward gain (E6, E16), read from the gradients
                     during backward as (d loss / d h) / (d loss / d y) elementwise (lambda
                     included): a backward statistic (NaN until the step's backward reaches
                     the activation)
- ``lambda``         the lambda a NormalizedActivation applied in this step (E12-E16); NaN for
                     other activations
- ``delta_sq``       per-example E[delta_l^2], delta_l = d loss_b / d h (E9)
- ``grad_act_sq``    per-example E[(d loss_b / d y)^2]
- ``weight_grad_sq`` per-example E[(d loss_b / d W)_ij^2] (E10); ``weight_grad_var`` its
                     variance across the examples of the batch
- ``bias_grad_sq``, ``bias_grad_var``   the same for the bias (NaN without a bias)

Activation statistics are NaN for a Linear without a following activation (the last layer of
an ``MLP``). With a batch norm between the two, rho is measured across the activation alone
(its input is the normalized h), while ``preact_sq`` stays the conv's or Linear's own output.
Batch norm also couples the examples of a batch: then "example b's" gradients are the
contributions of example b's row (B g_b below), which equal the gradients of its own loss only
without such coupling. The per-example weight gradient of example b is g_b = delta_b x_b^T, so
without any loop over examples:

    mean_{b,i,j} g_bij^2 = mean_b( mean_i delta_bi^2 * mean_j x_bj^2 )
    variance across b    = that - mean_ij( (mean_b g_b)_ij^2 )

where mean_b g_b is the gradient the batch-mean loss gives the weight.

Convolutions. Every statistic keeps its meaning, "units" being channels times positions (h of
shape (B, out, *positions)). The per-example gradients of a convolution sum over positions:
example b's bias gradient is sum_p delta_b[:, p], and its weight gradient is
delta_b^T columns_b, with columns_b the im2col matrix of its input (``convolution.im2col``), so
the tracker forms all B of them with one batched matrix product (B x out x in * prod(kernel)
numbers, no loop over examples) when a recorded step's backward reaches the layer. THEORY E10
predicts only the per-position factor of these (docs/THEORY.md, "Convolutional networks").

"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinynormact.engine import backend
from tinynormact.engine.autograd import Tensor
from tinynormact.engine.backend import np
from tinynormact.nn.layers import Activation
from tinynormact.theory import MLPProfile

__all__ = [
    "STATISTICS",
    "COLUMN",
    "mean_square",
    "rho_prime_hook",
    "row_sums_of_squares",
    "theory_record",
]

STATISTICS = (
    "input_sq",
    "input_grad_sq",
    "preact_sq",
    "preact_var",
    "act_sq",
    "rho",
    "rho_prime",
    "lambda",
    "delta_sq",
    "grad_act_sq",
    "weight_grad_sq",
    "weight_grad_var",
    "bias_grad_sq",
    "bias_grad_var",
)
COLUMN = {name: k for k, name in enumerate(STATISTICS)}
(
    INPUT_SQ,
    INPUT_GRAD_SQ,
    PREACT_SQ,
    PREACT_VAR,
    ACT_SQ,
    RHO,
    RHO_PRIME,
    LAMBDA,
    DELTA_SQ,
    GRAD_ACT_SQ,
    WEIGHT_GRAD_SQ,
    WEIGHT_GRAD_VAR,
    BIAS_GRAD_SQ,
    BIAS_GRAD_VAR,
) = range(len(STATISTICS))
# What each group of hooks serves: the activation's forward hook, delta's hook, the input's rows.
ACTIVATION_STATISTICS = frozenset({"act_sq", "rho", "rho_prime", "lambda", "grad_act_sq"})
DELTA_STATISTICS = frozenset(
    {"delta_sq", "bias_grad_sq", "bias_grad_var", "weight_grad_sq", "weight_grad_var"}
)
INPUT_ROW_STATISTICS = frozenset({"input_sq", "weight_grad_sq", "weight_grad_var"})
WEIGHT_STATISTICS = frozenset({"weight_grad_sq", "weight_grad_var"})


def mean_square(array: Any) -> Any:
    """mean(array^2) as a 0-d array of the array's module: one dot product, no temporary."""
    flat = array.ravel()
    return flat.dot(flat) / flat.size


def row_sums_of_squares(array: Any) -> Any:
    """sum_j array_bj^2 for every example b (all other axes flattened)."""
    rows = array.reshape(array.shape[0], -1)
    return backend.row_dots(rows, rows)


def gradient_ratio_is_phi_prime(module: Activation, h: Any) -> bool:
    """Whether (d loss / d h) / (d loss / d y) is phi'(h): h is in the graph, and lambda is not
    differentiated (then the gradient also flows through the batch statistics)."""
    if not (isinstance(h, Tensor) and h.requires_grad):
        return False
    return not (getattr(module, "differentiate_lambda", False) and module.training)


def theory_record(profile: MLPProfile) -> dict[str, np.ndarray]:
    """``theory.mlp_profile``'s prediction (E8-E10) under the tracker's statistic names:
    preact_sq (q), input_sq, delta_sq, weight_grad_sq, bias_grad_sq, all per layer."""
    return {
        "preact_sq": profile.q,
        "input_sq": profile.weight_grad_sq / profile.delta_sq,  # E10: E[gW^2] = E[delta^2] E[x^2]
        "delta_sq": profile.delta_sq,
        "weight_grad_sq": profile.weight_grad_sq,
        "bias_grad_sq": profile.bias_grad_sq,
    }


def rho_prime_hook(l: int, step: Any, grad_output: list[Any]) -> Callable[[Any], None]:
    """The hook on h (d loss / d h) for rho' = mean(phi'(h)^2) (E6) of layer ``l`` in ``step``'s
    table, with phi'(h) = (d loss / d h) / (d loss / d y) over the entries where d loss / d y
    (``grad_output``, filled by the hook on y) is not 0."""

    def hook(grad_input: Any) -> None:
        if not (step.open and grad_output):
            return
        go = grad_output.pop()
        xp = backend.get_array_module(go)
        nonzero = go != 0
        ratio = (grad_input / xp.where(nonzero, go, xp.ones((), dtype=go.dtype))).ravel()
        step.table[RHO_PRIME, l] = ratio.dot(ratio) / xp.count_nonzero(nonzero)

    return hook
