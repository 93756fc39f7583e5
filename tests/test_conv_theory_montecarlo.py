"""Monte Carlo checks of the per-position conv theory (THEORY E8-E9, E17-E18 for conv layers,
``conv_theory``) against deep random CNNs built from the library's conv op, and of what batch
normalization before an activation does to q.

Tolerances as in ``test_theory_montecarlo.py``: the mean over R independent networks (fresh
weights and inputs) must lie within 5 SE + allowance * |prediction|, with SE the measured
standard error over networks and allowance = 2 L / n for L nonlinear layers of fan_in n (here
n = channels * kernel = 768: the O(1/fan_in) finite-width corrections compounded over depth).
Every check also asserts that a prediction 10% off is rejected by the same tolerance
(``assert_agrees``), and the border positions, where zero padding lowers q by up to a third,
are checked too: a position-free E8 would fail there.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinynormact as tn
import tinynormact.engine.batch_norm
from tests.helpers import host
from tests.test_theory_montecarlo import PHI, assert_agrees
from tinynormact import theory
from tinynormact.engine.convolution import conv
from tinynormact.theory import convolution as conv_theory

pytestmark = pytest.mark.theory

# A batch of 128 keeps one network's per-position mean squares within about 1% of their mean
# (measured: relative std 0.8-1.4% over networks at batch 128, 1.1-2.8% at batch 32), so with 6
# networks 5 SE is about 2.5%, and with the allowance well under the 10% that must be rejected.
CHANNELS, LENGTH, KERNEL, BATCH = 256, 12, 3, 128


def _weight(rng: np.random.Generator, weight_var: float) -> tn.Tensor:
    fan_in = CHANNELS * KERNEL
    return tn.Tensor(rng.standard_normal((CHANNELS, CHANNELS, KERNEL)) * math.sqrt(weight_var / fan_in))


def _activation(name: str, h: tn.Tensor) -> tn.Tensor:
    """phi(h) with the test's own (phi, phi') as a graph node."""
    phi, dphi = PHI[name]
    return tn.Tensor.from_op(phi(h.data), (h,), lambda g: (g * dphi(h.data),), name)


def _per_position(a: np.ndarray) -> np.ndarray:
    """mean over examples and channels: one value per position."""
    return (host(a) ** 2).mean(axis=(0, 1))


def _seed_backward(out: tn.Tensor, rng: np.random.Generator) -> None:
    """loss = sum(out * r), r ~ N(0, 1): per-example E[(d loss_b / d out)^2] = 1."""
    out.backward(rng.standard_normal(out.shape))


@pytest.mark.parametrize("name, depth, weight_var, networks", [("tanh", 7, 1.5, 6)])
def test_plain_cnn_follows_per_position_e8_e9(
    name: str, depth: int, weight_var: float, networks: int
) -> None:
    predicted = conv_theory.conv_profile(name, [CHANNELS] * (depth + 1), (LENGTH,), KERNEL, 1, 1, weight_var)
    q, delta = [], []
    for seed in range(networks):
        rng = np.random.default_rng(seed)
        weights = [_weight(rng, weight_var) for _ in range(depth)]
        for w in weights:
            w.requires_grad = True
        x = tn.Tensor(rng.standard_normal((BATCH, CHANNELS, LENGTH)))
        hs = []
        for l, w in enumerate(weights):
            h = conv(x, w, padding=KERNEL // 2)
            h.retain_grad()
            hs.append(h)
            x = h if l == depth - 1 else _activation(name, h)
        _seed_backward(x, rng)
        q.append([_per_position(h.data) for h in hs])
        delta.append([_per_position(h.grad) for h in hs])
    allowance = 2 * (depth - 1) / (CHANNELS * KERNEL)
    for l in range(depth):
        assert_agrees([net[l] for net in q], predicted.q[l], allowance, what=f"q of layer {l + 1}")
        assert_agrees(
            [net[l] for net in delta], predicted.delta_sq[l], allowance, what=f"delta^2 of layer {l + 1}"
        )
    # the border matters: the first position's q is far from the interior's, as predicted
    assert predicted.q[-1][0] < 0.8 * predicted.q[-1][LENGTH // 2]


@pytest.mark.parametrize("name, depth, alpha, networks", [("tanh", 4, 0.7, 6)])
def test_residual_cnn_follows_per_position_e17_e18(
    name: str, depth: int, alpha: float, networks: int
) -> None:
    predicted = conv_theory.conv_residual_profile(name, (LENGTH,), depth, KERNEL, alpha)
    xs, gs = [], []
    for seed in range(networks):
        rng = np.random.default_rng(100 + seed)
        x = tn.Tensor(rng.standard_normal((BATCH, CHANNELS, LENGTH)), requires_grad=True)
        stream = [x]
        for _ in range(depth):
            w1, w2 = _weight(rng, 1.0), _weight(rng, 1.0)
            branch = conv(_activation(name, conv(x, w1, padding=1)), w2, padding=1)
            x = x + branch * alpha
            x.retain_grad()
            stream.append(x)
        _seed_backward(x, rng)
        xs.append([_per_position(s.data) for s in stream])
        gs.append([_per_position(s.grad) for s in stream])
    allowance = 2 * depth / (CHANNELS * KERNEL)
    for l in range(depth + 1):
        assert_agrees(
            [net[l] for net in xs], predicted.x_sq[l], allowance, power=l > 0, what=f"x^2 entering block {l}"
        )
        assert_agrees(
            [net[l] for net in gs], predicted.grad_sq[l], allowance, power=l < depth, what=f"g^2 at block {l}"
        )


def test_batch_norm_before_a_static_normalized_activation_pins_q_to_one() -> None:
    """BN (batch statistics, weight 1, bias 0) makes every channel's mean square over the batch
    and positions var / (var + eps) = 1 - O(eps) exactly, whatever the weights; a static lambda
    computed at q = 1 is then exact: E[phi_hat(h)^2] = 1 under the forward rule in every layer
    (E12), up to Monte Carlo error. Without BN the same weights (Var(W) = 2 / fan_in) let q grow
    layer by layer and E[phi_hat(h)^2] with it."""
    rng = np.random.default_rng(7)
    act = tn.nn.activation("nswish", rule="forward")
    depth, with_bn, without = 6, [], []
    x_bn = x_plain = tn.Tensor(rng.standard_normal((BATCH, CHANNELS, LENGTH)))
    for _ in range(depth):
        w = _weight(rng, 2.0)
        h_bn = tn.batch_norm.batch_norm(conv(x_bn, w, padding=1), None, None, 1e-5)[0]
        h_plain = conv(x_plain, w, padding=1)
        # BN pins q = 1 per channel
        np.testing.assert_allclose((host(h_bn.data) ** 2).mean(axis=(0, 2)), 1.0, atol=1e-4)
        x_bn, x_plain = act(h_bn), act(h_plain)
        with_bn.append(float((x_bn.data**2).mean()))
        without.append(float((x_plain.data**2).mean()))
    # 6 layers of B * C * L = 131072 values per layer; their mean of phi_hat^2 fluctuates by far
    # less than the 3% allowed here (channels share weights: the spread over networks is ~1%)
    np.testing.assert_allclose(with_bn, 1.0, rtol=0.03)
    assert without[-1] > 1.5 * without[0] > 1.5


def test_batch_norm_makes_the_backward_factor_per_layer_kappa_c_whatever_the_scale() -> None:
    """Through conv (kernel 1: no border), BN and phi_hat the gradient's second moment changes by
    weight_var d2(1) / (weight_var v(1)) = kappa_c(1) = rho'/rho_c per layer (E31 with
    weight_var lambda^2 v(1) far above eps): BN divides by the standard deviation of W x, whose
    per-channel mean it removes, so lambda, mu and weight_var all cancel. Measured end to end
    over 4 layers (3 factors) in 4 networks: the per-network ratio scatters by about 0.7%, so
    5 SE is about 2%, plus the
    allowance 2 L / n = 6 / 256 = 2.3% for fan-in 256; the uncentred kappa(1)^3 (1.21 for swish,
    against 1.78) and a 10% error are both rejected. (Over 6 layers the measured ratio is 4%
    above kappa_c^5, the O(L / n) finite-width excess that the allowance is for.)"""
    depth, networks = 4, 4
    ratios = {"static": [], "scaled": []}
    for seed in range(networks):
        for form, act in (
            ("static", tn.nn.activation("nswish", rule="forward")),
            ("scaled", tn.nn.activation("nswish", rule="backward", center=True)),  # other lambda and mu
        ):
            rng = np.random.default_rng([seed, 5])
            x = tn.Tensor(rng.standard_normal((BATCH, CHANNELS, LENGTH)), requires_grad=True)
            hs = []
            for _ in range(depth):
                w = tn.Tensor(rng.standard_normal((CHANNELS, CHANNELS, 1)) * math.sqrt(2.0 / CHANNELS))
                h = tn.batch_norm.batch_norm(conv(x, w), None, None, 1e-5)[0]
                h.retain_grad()
                hs.append(h)
                x = act(h)
            _seed_backward(x, rng)
            ratios[form].append(float((hs[0].grad ** 2).mean() / (hs[-1].grad ** 2).mean()))
    kappa_c = theory.rho_prime("swish") / theory.rho_c("swish")
    allowance = 2 * (depth - 1) / CHANNELS
    for form, values in ratios.items():
        assert_agrees(
            values, kappa_c ** (depth - 1), allowance, what=f"E[delta_1^2] / E[delta_{depth}^2], {form}"
        )
        with pytest.raises(AssertionError):
            assert_agrees(values, theory.kappa("swish") ** (depth - 1), allowance, power=False)


# --- conv -> BN -> scale * (phi - shift) with zero padding (THEORY E30-E33) ----------------------
#
# The simulation below is the test's own: a convolution by explicit window offsets, BN with batch
# statistics and its textbook backward, in float32. Each network has 64 channels and about 1024
# values per channel (batch * positions), so BN's own O(1/m) terms are 0.1%. What scatters is the
# channels: every channel of a zero-padded layer has its own border offsets (E32), and the
# per-network factor scatters by 3-5% over 30 networks, so 5 SE is 3-4.5%; the mean-field side
# samples 2048 channels and reports its own standard error (sampling_error, 0.6-1%), counted 5
# times too; the finite-width allowance is 2 * 2 / fan_in = 0.7% (a factor rests on two layers).
# The sum stays below 8%, so a factor 10% off and the clean kappa_c(1) are both rejected.

BN_CHANNELS, BN_VALUES, BN_DEPTH, BN_EPS = 64, 1024, 4, 1e-5


def _sigmoid(h: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * h))


BN_PHI = {
    "sigmoid": (_sigmoid, lambda h: _sigmoid(h) * (1.0 - _sigmoid(h))),
    "swish": (lambda h: h * _sigmoid(h), lambda h: _sigmoid(h) * (1.0 + h * (1.0 - _sigmoid(h)))),
}


def _windows(shape: tuple[int, ...], kernel: int, padding: int) -> list[tuple[slice, ...]]:
    """The slice of the zero-padded input that each kernel offset reads, for every output position."""
    out = [n + 2 * padding - kernel + 1 for n in shape]
    offsets = np.ndindex(*(kernel,) * len(shape))
    return [tuple(slice(k, k + n) for k, n in zip(offset, out, strict=True)) for offset in offsets]


def _conv_forward(x: np.ndarray, w: np.ndarray, padding: int) -> np.ndarray:
    """u[b, o, p] = sum over offsets k and channels c of w[o, c, k] x[b, c, p + k - padding]."""
    padded = np.pad(x, [(0, 0), (0, 0)] + [(padding, padding)] * (x.ndim - 2))
    windows = _windows(x.shape[2:], w.shape[2], padding)
    flat = w.reshape(w.shape[0], w.shape[1], -1)
    return sum(
        np.einsum("oc,bc...->bo...", flat[:, :, i], padded[(slice(None), slice(None), *window)])
        for i, window in enumerate(windows)
    )


def _conv_backward(g: np.ndarray, w: np.ndarray, input_shape: tuple[int, ...], padding: int) -> np.ndarray:
    """d loss / d x from d loss / d u: each offset's contribution added back where it was read."""
    spatial = input_shape[2:]
    padded = np.zeros((*input_shape[:2], *(n + 2 * padding for n in spatial)), dtype=g.dtype)
    flat = w.reshape(w.shape[0], w.shape[1], -1)
    for i, window in enumerate(_windows(spatial, w.shape[2], padding)):
        padded[(slice(None), slice(None), *window)] += np.einsum("oc,bo...->bc...", flat[:, :, i], g)
    return padded[(slice(None), slice(None), *(slice(padding, padding + n) for n in spatial))]


def _bn_network_factors(name, scale, shift, size, kernel, padding, rng, channels=BN_CHANNELS) -> np.ndarray:
    """One random network conv -> BN -> scale * (phi - shift) of BN_DEPTH layers and one batch:
    the backward factors mean(delta_l^2) / mean(delta_{l+1}^2), delta = d loss / d (BN output)."""
    phi, dphi = BN_PHI[name]
    axes = (0, *range(2, 2 + len(size)))
    x = rng.standard_normal((max(BN_VALUES // math.prod(size), 1), channels, *size)).astype(np.float32)
    fan_in = channels * kernel ** len(size)
    layers = []
    for _ in range(BN_DEPTH):
        w = rng.standard_normal((channels, channels) + (kernel,) * len(size)) / math.sqrt(fan_in)
        w = w.astype(np.float32)
        u = _conv_forward(x, w, padding)
        centred = u - u.mean(axis=axes, keepdims=True)
        inv_std = 1.0 / np.sqrt((centred**2).mean(axis=axes, keepdims=True) + BN_EPS)
        h = centred * inv_std
        layers.append((w, x.shape, h, inv_std))
        x = scale * (phi(h) - shift)
    g = rng.standard_normal(x.shape).astype(np.float32)
    delta_sq = []
    for w, input_shape, h, inv_std in reversed(layers):
        delta = scale * dphi(h) * g
        delta_sq.insert(0, float((delta.astype(float) ** 2).mean()))
        mean_g, mean_gh = delta.mean(axis=axes, keepdims=True), (delta * h).mean(axis=axes, keepdims=True)
        g = _conv_backward(inv_std * (delta - mean_g - h * mean_gh), w, input_shape, padding)
    return np.array(delta_sq[:-1]) / np.array(delta_sq[1:])


NSIGMOID = theory.normalization("sigmoid", "balanced", 1.0, center=False)  # the default static form


@pytest.mark.parametrize(
    "name, scale, shift, size, networks, samples",
    [
        ("sigmoid", NSIGMOID.lambda_, NSIGMOID.mu, (8, 8), 30, 4096),  # the default uncentred nsigmoid
        ("sigmoid", NSIGMOID.lambda_, NSIGMOID.mu, (16, 16), 20, 2048),
        ("swish", 1.0, -3.0, (16,), 60, 16384),  # a large offset, 1-D maps of two lengths
        ("swish", 1.0, -3.0, (64,), 40, 4096),
        ("swish", 0.003, 0.0, (8, 8), 30, 4096),  # scale^2 weight_var v(1) = 2.8e-6, below BN's eps
    ],
)
def test_batch_norm_backward_factor_with_zero_padding_follows_e30_e33(
    name, scale, shift, size, networks, samples
) -> None:
    """3x3 (or 3) convolutions with zero padding: BN pools each channel over positions whose means
    differ (the border windows lack part of the mean offset scale * (m1 - shift)), so the factor per
    layer is E33's, below kappa_c(1) by more at smaller maps; a tiny scale puts BN's eps in charge."""
    predicted = conv_theory.batch_norm_conv_profile(
        name, scale, shift, size, BN_DEPTH, 3, 1, eps=BN_EPS, samples=samples
    )
    factors = [
        _bn_network_factors(name, scale, shift, size, 3, 1, np.random.default_rng([seed, 31]))
        for seed in range(networks)
    ]
    allowance = 4 / (BN_CHANNELS * 3 ** len(size))
    what = f"backward factors, {name} {scale:.4g} {shift:+.4g} {size}"
    assert_agrees(factors, predicted.factor, allowance, what=what, predicted_error=predicted.sampling_error)
    kappa_c = theory.rho_prime(name) / theory.rho_c(name)
    with pytest.raises(AssertionError):
        assert_agrees(factors, np.full(BN_DEPTH - 1, kappa_c), allowance, power=False)


def _e31_factors(name: str, scale: float, size: tuple[int, ...], kernel: int, eps: float) -> np.ndarray:
    """E31 by hand from E1-E4: with every position reading a whole window, BN's output has
    q_l = V_l / (V_l + eps) with V_1 = 1, V_{l+1} = scale^2 v(q_l) (weight_var 1), and the factor
    mean(delta_l^2) / mean(delta_{l+1}^2) = (n_{l+1} / n_l) scale^2 d2(q_l) / (V_{l+1} + eps)."""
    positions = [math.prod(n - l * (kernel - 1) for n in size) for l in range(1, BN_DEPTH + 1)]
    pooled, factors = 1.0, []
    for l in range(BN_DEPTH - 1):
        moments = theory.gaussian_moments(name, pooled / (pooled + eps))
        pooled = scale**2 * moments.v
        factors.append(positions[l + 1] / positions[l] * scale**2 * moments.d2 / (pooled + eps))
    return np.array(factors)


@pytest.mark.parametrize(
    "name, scale, shift, size, kernel, channels",
    [
        ("swish", 1.0, -3.0, (16, 16), 3, 64),  # valid padding: BN maps 14, 12, 10, 8; a large offset
        ("sigmoid", NSIGMOID.lambda_, NSIGMOID.mu, (12,), 3, 64),
        ("swish", 0.003, 0.0, (8, 8), 1, 256),  # kernel 1; scale^2 v(1) = 2.8e-6 < eps: q = 0.22, not 1
    ],
)
def test_batch_norm_backward_factor_without_border_is_e31(name, scale, shift, size, kernel, channels) -> None:
    """Kernel 1 or no padding: every position of a channel reads the same weights, so BN removes
    the whole mean offset and the factor is E31, (n_{l+1} / n_l) kappa_c(1) whatever the shift when
    scale^2 v(1) >> eps, and smaller when it is not. The mean-field code gives E31 to 1e-6 (every
    sampled channel alike); 20 networks scatter by about 1% (no per-channel offsets here), so the
    tolerance 5 SE + 4 / fan_in is 2-3%, and a 10% error is rejected."""
    predicted = _e31_factors(name, scale, size, kernel, BN_EPS)
    profile = conv_theory.batch_norm_conv_profile(
        name, scale, shift, size, BN_DEPTH, kernel, 0, eps=BN_EPS, samples=64
    )
    np.testing.assert_allclose(profile.factor, predicted, rtol=1e-6)  # two quadratures of E1-E4
    factors = [
        _bn_network_factors(name, scale, shift, size, kernel, 0, np.random.default_rng([seed, 37]), channels)
        for seed in range(20)
    ]
    allowance = 4 / (channels * kernel ** len(size))
    assert_agrees(factors, predicted, allowance, what=f"E31, {name} {scale:.4g} {size}")
    if scale > 0.1:  # far above eps the factor is kappa_c(1) times the ratio of map sizes
        kappa_c = theory.rho_prime(name) / theory.rho_c(name)
        ratios = predicted / kappa_c
        positions = [math.prod(n - l * (kernel - 1) for n in size) for l in range(1, BN_DEPTH + 1)]
        np.testing.assert_allclose(ratios, np.array(positions[1:]) / positions[:-1], rtol=1e-4)


def test_batch_norm_conv_profile_names_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match=r"relu.*kinks at \(0\.0,\).*smooth activations"):
        conv_theory.batch_norm_conv_profile("relu", 1.0, 0.0, (8,), 3)
    with pytest.raises(ValueError, match="depth >= 2 and samples >= 2, got depth=1, samples=2048"):
        conv_theory.batch_norm_conv_profile("swish", 1.0, 0.0, (8,), 1)
