"""Solutions to the exercises of tutorial 4 (variance through depth), each one checked.

Run it like a tutorial: ``python tutorials/solutions/04_variance_through_depth.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import math  # noqa: E402 (after the path)

import numpy as np  # noqa: E402
from _common import plt, show, size  # noqa: E402

import tinynormact as tn  # noqa: E402
from tinynormact import nn, theory  # noqa: E402

WEIGHT_VAR, DEPTH, BATCH, NETWORKS = 1.5, 6, size(256, 128), size(6, 4)


def measure(widths, bias_var, seed):
    """Per-layer q, E[delta^2] (per example) and E[(sum over the batch of g_W)^2] of one network."""
    model = nn.MLP(
        widths,
        "tanh",
        dtype="float64",
        rng=seed,
        init=lambda w, rng: nn.init.lecun_normal(w, gain=math.sqrt(WEIGHT_VAR), rng=rng),
    )
    draw = np.random.default_rng(500 + seed)
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    for layer in linears:
        layer.bias.data = draw.standard_normal(layer.bias.shape) * math.sqrt(bias_var)
    outputs, grads = [], []
    for layer in linears:
        layer.register_forward_hook(lambda module, args, out: outputs.append(out.numpy()))
        layer.register_full_backward_hook(lambda module, gi, go: grads.append(tn.backend.to_numpy(go[0])))
    out = model(tn.Tensor(draw.standard_normal((BATCH, widths[0]))))
    out.backward(draw.standard_normal(out.shape))
    summed = [np.mean(tn.backend.to_numpy(layer.weight.grad) ** 2) for layer in linears]
    return np.array([[np.mean(o**2) for o in outputs], [np.mean(g**2) for g in reversed(grads)], summed])


def agrees(widths, bias_var):
    """Mean over NETWORKS against mlp_profile, with tutorial 4's tolerance; the measurements."""
    measured = np.array([measure(widths, bias_var, seed) for seed in range(NETWORKS)])
    profile = theory.mlp_profile("tanh", widths, weight_var=WEIGHT_VAR, bias_var=bias_var)
    predicted = np.array([profile.q, profile.delta_sq])
    mean = measured[:, :2].mean(axis=0)
    tolerance = 5 * measured[:, :2].std(axis=0, ddof=1) / math.sqrt(NETWORKS)
    tolerance += 2 * (len(widths) - 2) / min(widths) * np.abs(predicted)
    assert not np.all(np.abs(mean - 1.1 * predicted) <= tolerance)  # the check can fail
    return bool(np.all(np.abs(mean - predicted) <= tolerance)), measured, profile


# Exercise 1: with a bias of variance 0.1 the agreement survives, and q_l approaches the
# fixed point of q -> 1.5 m2(q) + 0.1, which the bias moves up from the bias-free one.
WIDTH = size(512, 256)
ok, _, profile = agrees([WIDTH] * (DEPTH + 1), bias_var=0.1)
q_star = theory.forward_fixed_point("tanh", WEIGHT_VAR, bias_var=0.1)
print(
    f"1. with bias: agrees = {ok}; q* = {q_star:.4f} (no bias: {theory.forward_fixed_point('tanh', 1.5):.4f})"
)
assert ok and q_star > theory.forward_fixed_point("tanh", WEIGHT_VAR)

# Exercise 2: E9's factor n_{l+1}/n_l multiplies the backward second moment, so E[delta_l^2]
# zig-zags by 4 and 1/4 with alternating widths; the forward q_l does not see the widths at all
# (every unit of h_l sums over n_{l-1} inputs with weight variance sigma_w^2 / n_{l-1}).
narrow, wide = size(256, 128), size(1024, 512)
uneven = [narrow if k % 2 == 0 else wide for k in range(DEPTH + 1)]
ok, _, profile = agrees(uneven, bias_var=0.0)
even = theory.mlp_profile("tanh", [narrow] * (DEPTH + 1), weight_var=WEIGHT_VAR)
np.testing.assert_allclose(profile.q, even.q, rtol=1e-12)
assert not np.allclose(profile.delta_sq, even.delta_sq, rtol=0.1)
print(f"2. uneven widths: q unchanged, E[delta^2] changes with the width ratios; measured agrees = {ok}")
assert ok

# Exercise 3: at the critical sigma_w^2 the backward factor at the fixed point is 1 (the edge of
# chaos): E[delta_l^2] is flat deep in the network, shrinks below it and grows above it.
critical = theory.critical_weight_var("tanh", bias_var=0.05)
fig, ax = plt.subplots(figsize=(6, 3.6))
ends = {}
for factor in (0.9, 1.0, 1.1):
    deep = theory.mlp_profile("tanh", [256] * 101, weight_var=factor * critical, bias_var=0.05)
    ax.semilogy(range(1, 101), deep.delta_sq, label=f"$\\sigma_w^2$ = {factor * critical:.3f}")
    ends[factor] = deep.delta_sq[10] / deep.delta_sq[60]  # growth over 50 layers towards the input
ax.set_xlabel("layer l")
ax.set_title(f"tanh, bias variance 0.05: critical $\\sigma_w^2$ = {critical:.3f}")
ax.legend(fontsize=8)
show(fig, "solution_04_edge_of_chaos.png")
print(
    f"3. critical sigma_w^2 = {critical:.4f}; growth over 50 layers:",
    {k: f"{v:.3g}" for k, v in ends.items()},
)
assert ends[0.9] < 0.5 and abs(ends[1.0] - 1) < 0.05 and ends[1.1] > 2

# Exercise 4: .grad is the sum over the batch of the per-example gradients g_b. With independent
# zero-mean u_b the cross terms E[g_b g_b'] vanish, so E[(sum g_b)^2] = B E[g^2]: B times the
# per-example value, up to noise. It differs for a real loss, whose per-example gradients share
# a mean (the signal the batch agrees on): then E[(sum g_b)^2] = B Var(g) + B^2 mean(g)^2.
measured = np.array([measure([WIDTH] * (DEPTH + 1), 0.0, seed) for seed in range(NETWORKS)])
profile = theory.mlp_profile("tanh", [WIDTH] * (DEPTH + 1), weight_var=WEIGHT_VAR)
ratio = measured[:, 2].mean(axis=0) / (BATCH * profile.weight_grad_sq)
print("4. E[.grad^2] / (B x per-example E10) per layer:", np.round(ratio, 3))
np.testing.assert_allclose(ratio, 1.0, atol=0.15)  # 6 networks: a few percent of noise per layer
