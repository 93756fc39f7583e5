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
    weight_var d2(1) / (weight_var v(1)) = kappa_c(1) = rho'/rho_c per layer (docs/THEORY.md,
    BN section): BN divides by the standard deviation of W x, whose per-channel mean it removes,
    so lambda, mu and weight_var all cancel. Measured end to end over 4 layers (3 factors) in 4
    networks: the per-network ratio scatters by about 0.7%, so 5 SE is about 2%, plus the
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
