"""THEORY E8-E10 and E17-E18 for convolutional networks at initialization, per position.

A convolution is a Linear layer applied at every output position p to the window of its input
that p reads: h[o, p] = sum_{c, k} W[o, c, k] x[c, p * stride + k - padding] + b[o], with
fan_in = in_channels * prod(kernel). With Var(W) = weight_var / fan_in, zero-mean weights
independent of x and the mean-field assumptions of ``theory`` (large fan_in, Gaussian
pre-activations, gradient independence backward), each output position is an E8 sum over its
own window, so the second moments are per-position maps (docs/THEORY.md, "Convolutional
networks"):

    E8 (forward):  q_l(p) = weight_var * window_mean(m2(q_{l-1}))(p) + bias_var
    E9 (backward): E[delta_l^2](p) = d2(q_l(p)) * weight_var * (C_{l+1} / C_l)
                                     * window_spread(E[delta_{l+1}^2])(p)
    E10 (per position): E[(delta_l(p) x_{l-1}(p * stride + k - padding))^2]
                        = E[delta_l^2](p) * E[x_{l-1}^2](p * stride + k - padding)

``window_mean(a)(p)`` averages a over the prod(kernel) inputs of output p (zero padding counts as
a = 0); ``window_spread`` is its transpose, (1/prod(kernel)) sum over the (p, k) that read an
input position. Cross-position correlations never enter E8 and E9, because every term of the
sum over a window has its own independent weight. Away from the border (or for kernel 1) the
maps are constant and E8-E9 are the MLP's with n = channels * positions. E10 per example sums
the per-position terms over p; its second moment depends on how delta and x correlate across
positions, which second moments alone do not determine (see docs/THEORY.md).

Functions: ``conv_profile`` (plain CNN: conv, phi, ..., conv) and ``conv_residual_profile``
(blocks x + alpha * F(x), F = conv, phi, conv, "same" padding, stride 1).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tinynormact.engine.backend import np
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction
from tinynormact.theory.moments import gaussian_moments

__all__ = [
    "ConvProfile",
    "ConvResidualProfile",
    "conv_profile",
    "conv_residual_profile",
    "window_mean",
    "window_spread",
]


def _offsets(kernel: Sequence[int]) -> list[tuple[int, ...]]:
    """Every offset k of a window."""
    return list(itertools.product(*(range(k) for k in kernel)))


def window_mean(
    a: np.ndarray, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> np.ndarray:
    """out(p) = mean over the window of output p of a(p * stride + k - padding), 0 off the map."""
    padded = np.pad(a, [(p, p) for p in padding])
    out = [(n - k) // s + 1 for n, k, s in zip(padded.shape, kernel, stride, strict=True)]
    total = np.zeros(out)
    for offset in _offsets(kernel):
        total += padded[
            tuple(slice(k, k + s * (n - 1) + 1, s) for k, s, n in zip(offset, stride, out, strict=True))
        ]
    return total / math.prod(kernel)


def window_spread(
    a: np.ndarray, size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> np.ndarray:
    """The transpose of ``window_mean``: out(q) = (1 / prod(kernel)) * sum of a(p) over the
    (p, k) with p * stride + k - padding = q, for an input map of shape ``size``."""
    padded = np.zeros([n + 2 * p for n, p in zip(size, padding, strict=True)])
    for offset in _offsets(kernel):
        index = tuple(
            slice(k, k + s * (n - 1) + 1, s) for k, s, n in zip(offset, stride, a.shape, strict=True)
        )
        padded[index] += a
    inner = tuple(slice(p, p + n) for n, p in zip(size, padding, strict=True))
    return padded[inner] / math.prod(kernel)


def _tuple(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return (int(value),) * dims if isinstance(value, int) else tuple(int(v) for v in value)


@dataclass(frozen=True)
class ConvProfile:
    """Per-layer, per-position second moments of a plain CNN (lists over layers l = 1..L of
    arrays over that layer's output positions): q (E8), x_sq (E[x_l^2], phi(h) or h for the last
    layer), delta_sq (E9, per example), weight_grad_sq (E10 per position, averaged over output
    positions and kernel offsets: one number per layer)."""

    q: list[np.ndarray]
    x_sq: list[np.ndarray]
    delta_sq: list[np.ndarray]
    weight_grad_sq: np.ndarray


def conv_profile(
    act: str | ActivationFunction,
    channels: Sequence[int],
    size: Sequence[int],
    kernel_size: int | Sequence[int] = 3,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 1,
    weight_var: float = 1.0,
    bias_var: float = 0.0,
    q0: Any = 1.0,
    grad_out_sq: Any = 1.0,
) -> ConvProfile:
    """THEORY E8-E10 per position for conv layers channels[0] -> channels[1] -> ... with phi after
    every conv but the last, on inputs of spatial shape ``size`` with E[x_0^2] = ``q0`` (a number
    or a per-position map) and per-example E[(d loss_b / d out)^2] = ``grad_out_sq`` at the output.
    Every layer has the same kernel, stride and padding; Var(W) = weight_var / fan_in."""
    act = activations.get(act)
    dims = len(size)
    kernel, stride, padding = _tuple(kernel_size, dims), _tuple(stride, dims), _tuple(padding, dims)
    layers = len(channels) - 1
    if layers < 1:
        raise ValueError(f"conv_profile needs channels [c_0, ..., c_L] with L >= 1, got {list(channels)!r}")
    x_sq_in = [np.broadcast_to(np.asarray(q0, dtype=float), tuple(size))]
    qs, moments = [], []
    for l in range(layers):
        q = weight_var * window_mean(x_sq_in[l], kernel, stride, padding) + bias_var
        qs.append(q)
        last = l == layers - 1
        m = None if last else gaussian_moments(act, np.maximum(q, 1e-300))
        moments.append(m)
        x_sq_in.append(q if last else np.asarray(m.m2))
    deltas: list[np.ndarray] = [np.broadcast_to(np.asarray(grad_out_sq, dtype=float), qs[-1].shape)]
    for l in range(layers - 2, -1, -1):
        spread = window_spread(deltas[0], qs[l].shape, kernel, stride, padding)
        deltas.insert(0, np.asarray(moments[l].d2) * weight_var * channels[l + 2] / channels[l + 1] * spread)
    weight_grad = np.array(
        [(window_mean(x_sq_in[l], kernel, stride, padding) * deltas[l]).mean() for l in range(layers)]
    )
    return ConvProfile(qs, x_sq_in[1:], deltas, weight_grad)


@dataclass(frozen=True)
class ConvResidualProfile:
    """Per-position maps of a residual CNN: x_sq[l] = E[x_l^2] entering block l (l = 0..depth),
    grad_sq[l] = per-example E[(d loss_b / d x_l)^2], branch_q[l] = q of the branch's first conv
    (E8 inside the branch)."""

    x_sq: list[np.ndarray]
    grad_sq: list[np.ndarray]
    branch_q: list[np.ndarray]


def conv_residual_profile(
    act: str | ActivationFunction,
    size: Sequence[int],
    depth: int,
    kernel_size: int | Sequence[int] = 3,
    alpha: float = 1.0,
    weight_var: float = 1.0,
    bias_var: float = 0.0,
    q0: Any = 1.0,
    grad_out_sq: Any = 1.0,
) -> ConvResidualProfile:
    """THEORY E17-E18 per position for ``depth`` blocks x + alpha * F(x), F = conv, phi, conv, all
    of the same channels, odd kernels, stride 1 and "same" padding (kernel // 2):

        E17: E[x_{l+1}^2] = E[x_l^2] + alpha^2 * (weight_var * W(m2(q_l)) + bias_var),
             q_l = weight_var * W(E[x_l^2]) + bias_var
        E18: E[g_l^2] = E[g_{l+1}^2] + alpha^2 * weight_var * S(d2(q_l) * weight_var * S(E[g_{l+1}^2]))

    with W = ``window_mean`` and S = ``window_spread`` (equal to W's transpose here)."""
    act = activations.get(act)
    dims = len(size)
    kernel = _tuple(kernel_size, dims)
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"conv_residual_profile needs odd kernels ('same' padding), got {kernel}")
    stride, padding = (1,) * dims, tuple(k // 2 for k in kernel)
    x_sq = [np.broadcast_to(np.asarray(q0, dtype=float), tuple(size)).copy()]
    branch_q, d2 = [], []
    for _ in range(depth):
        q = weight_var * window_mean(x_sq[-1], kernel, stride, padding) + bias_var
        m = gaussian_moments(act, np.maximum(q, 1e-300))
        branch_q.append(q)
        d2.append(np.asarray(m.d2))
        branch_sq = weight_var * window_mean(np.asarray(m.m2), kernel, stride, padding) + bias_var
        x_sq.append(x_sq[-1] + alpha**2 * branch_sq)
    grad_sq = [np.broadcast_to(np.asarray(grad_out_sq, dtype=float), tuple(size)).copy()]
    for l in range(depth - 1, -1, -1):
        inner = d2[l] * weight_var * window_spread(grad_sq[0], size, kernel, stride, padding)
        grad_sq.insert(
            0, grad_sq[0] + alpha**2 * weight_var * window_spread(inner, size, kernel, stride, padding)
        )
    return ConvResidualProfile(x_sq, grad_sq, branch_q)
