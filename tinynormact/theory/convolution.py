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

Functions: ``conv_profile`` (plain CNN: conv, phi, ..., conv), ``conv_residual_profile``
(blocks x + alpha * F(x), F = conv, phi, conv, "same" padding, stride 1) and
``batch_norm_conv_profile`` (conv, BN with batch statistics, lambda * (phi - mu): E30-E33, where
zero padding gives every channel its own mean offsets over positions).
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
    "BatchNormConvProfile",
    "ConvProfile",
    "ConvResidualProfile",
    "batch_norm_conv_profile",
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


# --- batch normalization before the activation (THEORY E30-E33) ------------------------------------
#
# conv -> BN (batch statistics, weight 1, bias 0) -> scale * (phi - shift), every layer. BN pools a
# channel over the batch and every position, so what it divides by is the mean over positions of the
# per-position variance plus the spread over positions of the per-position means (E30). Zero padding
# makes the means differ between positions (a border window misses some of the weights that carry
# the previous layer's mean offset), so every channel o has its own mean map mu_o(p): a Gaussian
# field over channels (E32), whose expectation is evaluated here by sampling channels.

_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_HERMITE_WEIGHTS = _HERMITE_WEIGHTS / math.sqrt(2.0 * math.pi)


def _shifted_moments(
    act: ActivationFunction, mean: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E[phi(x)], Var[phi(x)], E[phi'(x)^2]) for x ~ N(mean, var), elementwise (Gauss-Hermite,
    24 nodes: 1e-5 relative for sigmoid and swish)."""
    x = mean[..., None] + np.sqrt(var)[..., None] * _HERMITE_NODES
    f, df = act.f(x), act.df(x)
    m1 = f @ _HERMITE_WEIGHTS
    return m1, np.maximum((f * f) @ _HERMITE_WEIGHTS - m1 * m1, 0.0), (df * df) @ _HERMITE_WEIGHTS


def _mean_field_covariance(
    means: np.ndarray, kernel: Sequence[int], padding: Sequence[int], weight_var: float
) -> np.ndarray:
    """E32: Sigma(p, p') = (weight_var / K) sum_k E_c[M_c(p + k - padding) M_c(p' + k - padding)]
    over output positions (flattened), from sampled channels ``means`` (channels, *size)."""
    padded = np.pad(means, [(0, 0)] + [(p, p) for p in padding])
    flat = padded.reshape(len(means), -1)
    products = flat.T @ flat / len(means)
    grid = np.arange(flat.shape[1]).reshape(padded.shape[1:])
    out = [n - k + 1 for n, k in zip(padded.shape[1:], kernel, strict=True)]
    sigma = 0.0
    for offset in _offsets(kernel):
        index = grid[tuple(slice(k, k + n) for k, n in zip(offset, out, strict=True))].ravel()
        sigma = sigma + products[np.ix_(index, index)]
    return weight_var / math.prod(kernel) * sigma


@dataclass(frozen=True)
class BatchNormConvProfile:
    """Per-layer maps of a conv -> BN -> scale * (phi - shift) network at initialization (lists over
    layers l = 1..L of arrays over positions): q (E[h_l^2] of BN's output, E30), delta_sq
    (per-example E[(d loss_b / d h_l)^2], E33), and factor[l] = mean(delta_sq[l]) /
    mean(delta_sq[l + 1]), the backward factor per layer. sampling_error[l] bounds the relative
    standard error of factor[l] from the sampled channels (0 where every channel is alike)."""

    q: list[np.ndarray]
    delta_sq: list[np.ndarray]
    factor: np.ndarray
    sampling_error: np.ndarray


def _batch_norm_layer(
    act: ActivationFunction, means: np.ndarray, variances: np.ndarray, kernel: Sequence[int],
    padding: Sequence[int], weight_var: float, eps: float, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One conv + BN per E30 and E32 for sampled channels with per-position input means and
    variances (channels, *size): (m, r, V) of BN's output h ~ N(m, r) per channel and position,
    with V the pooled variance BN divides by, and phi's moments (m1, var, d2) there."""
    samples = len(means)
    ones = (1,) * (means.ndim - 1)
    sigma_sq = weight_var * window_mean(variances.mean(axis=0), kernel, ones, padding)
    values, vectors = np.linalg.eigh(_mean_field_covariance(means, kernel, padding, weight_var))
    channel_means = rng.standard_normal((samples, sigma_sq.size)) @ (
        vectors * np.sqrt(np.clip(values, 0.0, None))
    ).T
    centred = (channel_means - channel_means.mean(axis=1, keepdims=True)).reshape(samples, *sigma_sq.shape)
    axes = tuple(range(1, centred.ndim))
    pooled = sigma_sq.mean() + (centred**2).mean(axis=axes, keepdims=True)
    m, r = centred / np.sqrt(pooled + eps), np.broadcast_to(sigma_sq / (pooled + eps), centred.shape)
    return (m, r, pooled, *_shifted_moments(act, m, r))


def batch_norm_conv_profile(
    act: str | ActivationFunction,
    scale: float,
    shift: float,
    size: Sequence[int],
    depth: int,
    kernel_size: int | Sequence[int] = 3,
    padding: int | Sequence[int] = 1,
    weight_var: float = 1.0,
    eps: float = 1e-5,
    samples: int = 2048,
    seed: int = 0,
) -> BatchNormConvProfile:
    """THEORY E30-E33 for ``depth`` layers conv (stride 1, equal channel counts) -> BN with batch
    statistics -> scale * (phi - shift), inputs N(0, 1) of spatial shape ``size``, per-example
    E[(d loss_b / d x_L)^2] = 1 at the output. With kernel 1 or padding 0 every channel is alike
    and the result is E31 exactly; with zero padding the expectation over channels of E32 is taken
    over ``samples`` sampled channels (seeded: deterministic)."""
    act = activations.get(act)
    if act.kinks:
        raise ValueError(
            f"batch_norm_conv_profile: {act!r} has kinks at {act.kinks}; its Gauss-Hermite quadrature "
            "is accurate only for smooth activations (sigmoid, swish, gelu, softplus, tanh, ...)"
        )
    if depth < 2 or samples < 2:
        raise ValueError(
            f"batch_norm_conv_profile needs depth >= 2 and samples >= 2, got depth={depth}, samples={samples}"
        )
    kernel, padding = _tuple(kernel_size, len(size)), _tuple(padding, len(size))
    rng = np.random.default_rng(seed)
    means, variances = np.zeros((samples, *size)), np.ones((samples, *size))
    layers = []
    for _ in range(depth):
        m, r, pooled, m1, var, d2 = _batch_norm_layer(
            act, means, variances, kernel, padding, weight_var, eps, rng
        )
        layers.append((m * m + r, pooled, d2))
        means, variances = scale * (m1 - shift), scale**2 * var
    delta_sq, errors = _batch_norm_backward(layers, scale, kernel, padding, weight_var, eps, size)
    means_sq = np.array([d.mean() for d in delta_sq])
    q = [q.mean(axis=0) for q, _, _ in layers]
    return BatchNormConvProfile(q, delta_sq, means_sq[:-1] / means_sq[1:], errors)


def _relative_error(per_channel: np.ndarray) -> float:
    """Relative standard error of the mean over sampled channels of per-channel values."""
    return float(per_channel.std() / (abs(per_channel.mean()) * math.sqrt(len(per_channel))))


def _batch_norm_backward(
    layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]], scale: float, kernel: Sequence[int],
    padding: Sequence[int], weight_var: float, eps: float, size: Sequence[int],
) -> tuple[list[np.ndarray], np.ndarray]:
    """E33 from the output down: delta_sq[l] per position, and for each factor delta_sq[l] /
    delta_sq[l + 1] the relative standard error of the three channel averages it rests on."""
    grad_x = np.ones(layers[-1][0].shape[1:])
    delta_sq, error_delta, error_through = [], [], []
    for l in range(len(layers) - 1, -1, -1):
        _, pooled, d2 = layers[l]
        samples = len(d2)
        delta = scale**2 * d2 * grad_x
        through_bn = delta / (pooled + eps)
        delta_sq.insert(0, delta.mean(axis=0))
        error_delta.insert(0, _relative_error(delta.reshape(samples, -1).mean(axis=1)))
        error_through.insert(0, _relative_error(through_bn.reshape(samples, -1).mean(axis=1)))
        input_size = layers[l - 1][0].shape[1:] if l else tuple(size)
        ones = (1,) * len(size)
        grad_x = weight_var * window_spread(through_bn.mean(axis=0), input_size, kernel, ones, padding)
    e_delta, e_through = np.array(error_delta), np.array(error_through)
    return delta_sq, np.sqrt(e_delta[:-1] ** 2 + e_delta[1:] ** 2 + e_through[1:] ** 2)
