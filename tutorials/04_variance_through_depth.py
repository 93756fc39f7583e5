# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 4: Variance through depth (THEORY E8-E11)
#
# Tutorial 3 measured what one activation does to the second moment of a signal. Now we chain
# layers. Layer $l$ of a fully-connected network computes
#
# $$h_l = W_l x_{l-1} + b_l, \qquad x_l = \phi(h_l),$$
#
# with $W_l$ of shape $n_l \times n_{l-1}$, entries i.i.d. with mean 0 and variance
# $\sigma_w^2 / n_{l-1}$ ("fan-in" scaling), and biases of variance $\sigma_b^2$. We ask how the
# size of the signal $q_l = E[h_l^2]$ and of the gradient $E[\delta_l^2]$, with
# $\delta_l = \partial\,\text{loss} / \partial h_l$, change from layer to layer. These are the
# classic recursions of Glorot and Bengio (2010), He et al. (2015) and the mean-field papers
# (Poole et al. 2016, Schoenholz et al. 2017); docs/THEORY.md derives each one.
#
# **Forward ([E8](../docs/THEORY.md#e8)).** $h_{l+1,i} = \sum_j W_{ij} x_{l,j}$ is a sum of
# $n_l$ independent zero-mean terms, each of second moment $(\sigma_w^2 / n_l) E[x_l^2]$, so
#
# $$q_{l+1} = \sigma_w^2\, m_2(q_l) + \sigma_b^2 = \sigma_w^2\, \rho(q_l)\, q_l + \sigma_b^2 .$$
#
# **Backward ([E9](../docs/THEORY.md#e9)).** The chain rule gives $\delta_l = \phi'(h_l) \odot
# W_{l+1}^\top \delta_{l+1}$. A unit of layer $l$ collects the gradients of the $n_{l+1}$ units
# above it, through weights of variance $\sigma_w^2 / n_l$; treating the backward weights as
# independent of the forward ones (the *gradient independence assumption*),
#
# $$E[\delta_l^2] = \sigma_w^2\, \frac{n_{l+1}}{n_l}\, \rho'(q_l)\, E[\delta_{l+1}^2] .$$
#
# **Weight gradients ([E10](../docs/THEORY.md#e10)).** For one example
# $\partial\,\text{loss}/\partial W_{l,ij} = \delta_{l,i}\, x_{l-1,j}$, so its second moment is
# $E[\delta_l^2]\, E[x_{l-1}^2]$.
#
# **The property ([E11](../docs/THEORY.md#e11)).** With equal widths and no bias, dividing E10
# for two neighbouring layers and using E8 and E9 gives
#
# $$\frac{E[g_{W_l}^2]}{E[g_{W_{l+1}}^2]} = \frac{\rho'(q_l)}{\rho(q_l)} = \kappa(q_l).$$
#
# So the weight gradients have the same size in every layer exactly when $\kappa = 1$,
# *whatever* $\sigma_w^2$ is. Initialization can fix the forward signal ($\sigma_w^2 \rho = 1$)
# or the backward signal ($\sigma_w^2 \rho' = 1$), but it cannot change $\kappa$. Reading
# $\kappa$ as the paper's "property that good activations should satisfy" is our
# reconstruction of arXiv 2208.13315 from its abstract; E8-E10 themselves are standard.
#
# `theory.mlp_profile(act, widths, weight_var, bias_var, q0)` evaluates E8-E10 for a whole
# network. In this tutorial we use it to recover Xavier and He initialization as special cases,
# to see the three regimes of a deep tanh network, and then measure a real network built with
# `tinynormact.nn` and check it against the theory with a tolerance derived from its size.

# %%
import math

import numpy as np
from _common import FAST, plt, show, size

import tinynormact as tn
from tinynormact import nn, theory

# %% [markdown]
# ## 1. He initialization: relu with $\sigma_w^2 = 2$
#
# Relu has $\rho = \rho' = 1/2$ at every $q$ (tutorial 3). E8 with $\sigma_w^2 = 2$ and no bias
# gives $q_{l+1} = 2 \cdot q_l / 2 = q_l$: the forward signal keeps its size *exactly*, at any
# depth. E9 gives a backward factor $2 \cdot 1/2 = 1$ with equal widths, and $\kappa = 1$, so
# every quantity is flat. With LeCun's $\sigma_w^2 = 1$ instead, each relu layer halves both.

# %%
depth, width = 20, 256
widths = [width] * (depth + 1)
he = theory.mlp_profile("relu", widths, weight_var=2.0)
lecun = theory.mlp_profile("relu", widths, weight_var=1.0)
print("He,    q_l for the first layers:", he.q[:4], " last:", he.q[-1])
print("LeCun, q_l for the first layers:", lecun.q[:4], " last:", lecun.q[-1])

np.testing.assert_allclose(he.q, 2.0, rtol=1e-12)  # q_1 = 2 q_0 = 2, then constant
np.testing.assert_allclose(he.delta_sq, 1.0, rtol=1e-12)
np.testing.assert_allclose(he.weight_grad_sq, 1.0, rtol=1e-12)
np.testing.assert_allclose(lecun.q[1:] / lecun.q[:-1], 0.5, rtol=1e-12)
np.testing.assert_allclose(lecun.delta_sq[:-1] / lecun.delta_sq[1:], 0.5, rtol=1e-12)

# %% [markdown]
# The first layer gives $q_1 = \sigma_w^2 E[x_0^2] = 2$, since our input has
# $E[x_0^2] = q_0 = 1$. Every relu output then has $E[x^2] = m_2(2) = 1$, the same as the input,
# so $q$ stays at 2, $E[\delta^2]$ stays at its output value 1, and every weight gradient has
# $E[g_W^2] = E[\delta^2] E[x^2] = 1$.

# %% [markdown]
# ## 2. Xavier initialization: the compromise for unequal widths
#
# Glorot and Bengio analysed a network in its linear regime ($\phi(x) \approx x$, so
# $\rho = \rho' = 1$). Then a weight matrix with $\mathrm{Var}(W) = s / n_{\text{in}}$ multiplies
# the forward second moment by $f = s$ (E8) and the backward one by $b = s\, n_{\text{out}} /
# n_{\text{in}}$ (E9, the width ratio). Both are 1 only if $n_{\text{in}} = n_{\text{out}}$.
# Xavier's $\mathrm{Var}(W) = 2 / (n_{\text{in}} + n_{\text{out}})$, i.e.
# $s = 2 n_{\text{in}} / (n_{\text{in}} + n_{\text{out}})$, gives
#
# $$f = \frac{2 n_{\text{in}}}{n_{\text{in}} + n_{\text{out}}}, \qquad
#   b = \frac{2 n_{\text{out}}}{n_{\text{in}} + n_{\text{out}}}, \qquad f + b = 2:$$
#
# it makes the *average* of the forward and backward factors 1. With equal widths it is
# LeCun's $\sigma_w^2 = 1$. We check $f + b = 2$ on `mlp_profile` for a linear network whose
# widths change a lot; this exercises the width ratio in E9.

# %%
xavier_widths = [64, 256, 128, 512, 32, 100]
fans = zip(xavier_widths[:-1], xavier_widths[1:], strict=True)
weight_var = [2 * n_in / (n_in + n_out) for n_in, n_out in fans]  # Var(W) = weight_var / n_in
linear_net = theory.mlp_profile("identity", xavier_widths, weight_var=weight_var)
f = linear_net.q[1:] / linear_net.q[:-1]  # forward factor of W_2 ... W_L
b = linear_net.delta_sq[:-1] / linear_net.delta_sq[1:]  # backward factor of the same matrices
print("forward factors :", np.round(f, 3))
print("backward factors:", np.round(b, 3))
np.testing.assert_allclose(f + b, 2.0, rtol=1e-12)

# %% [markdown]
# ## 3. A deep tanh network: three regimes
#
# Tanh saturates, so its gains depend on $q$ and E8 does not stay put. Iterating
# $q \mapsto \sigma_w^2 m_2(q)$ from $q_0$ converges to a *fixed point* $q^*$
# (`theory.forward_fixed_point`). For tanh without bias, $q^* = 0$ when $\sigma_w^2 \le 1$ (the
# signal slowly dies) and $q^* > 0$ when $\sigma_w^2 > 1$. At a non-zero fixed point
# $\sigma_w^2 = q^* / m_2(q^*)$, so the backward factor of E9 there is
# $\sigma_w^2 \rho'(q^*) = \kappa(q^*)$: in the deep layers, $\kappa$ *is* the per-layer growth
# of the gradient. Since tanh has $\kappa > 1$, gradients grow towards the input: this is the
# "chaotic" phase of the mean-field papers, and $\sigma_w^2 = 1$ is its edge.
#
# A fixed point can be **stable** or **unstable**. Near $q^*$ the map multiplies a small
# deviation $q_l - q^*$ by its slope there, $\chi_q = \sigma_w^2\, dm_2/dq$ at $q^*$
# ([E19](../docs/THEORY.md#e19)): when $\chi_q < 1$ deviations shrink layer by layer and $q_l$
# settles at $q^*$, as below; when $\chi_q > 1$ any deviation, even the random one of a
# finite-width network, grows with depth and carries $q_l$ away
# ([E21](../docs/THEORY.md#e21)-[E22](../docs/THEORY.md#e22) list every fixed point and its
# depth scale). The run folders of tutorial 8 draw the theory of such a case dashed: "theory,
# unstable: deviations grow with depth".

# %%
deep = 60
deep_widths = [256] * (deep + 1)
fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
for column, (act, weight_vars) in enumerate((("relu", (1.0, 2.0, 2.2)), ("tanh", (0.8, 1.0, 1.5, 2.0)))):
    for s in weight_vars:
        profile = theory.mlp_profile(act, deep_widths, weight_var=s)
        layers = np.arange(1, deep + 1)
        axes[0, column].semilogy(layers, profile.q, label=f"$\\sigma_w^2$ = {s}")
        axes[1, column].semilogy(layers, profile.delta_sq, label=f"$\\sigma_w^2$ = {s}")
    axes[0, column].set_title(f"{act}: forward $q_l$ (E8)")
    axes[1, column].set_title(f"{act}: backward $E[\\delta_l^2]$ (E9)")
    axes[1, column].set_xlabel("layer l")
    axes[0, column].legend(fontsize=8)
show(fig, "04_theory_profiles.png")

for s in (1.5, 2.0):
    q_star = theory.forward_fixed_point("tanh", s)
    factor = theory.kappa("tanh", q_star)
    print(f"tanh, sigma_w^2 = {s}: q* = {q_star:.4f}, backward factor = kappa(q*) = {factor:.4f}")

# %% [markdown]
# Reading the figure: relu's curves are straight lines (its gains do not depend on $q$), flat
# only for He's $\sigma_w^2 = 2$. For tanh with $\sigma_w^2 \le 1$ the signal decays (slowly,
# like $1/l$, at $\sigma_w^2 = 1$) while the gradient shrinks towards the input; with
# $\sigma_w^2 > 1$ the signal settles at $q^*$ within a few layers and the gradient then grows
# by the constant factor $\kappa(q^*)$ per layer towards the input. We assert both facts: the
# profile reaches the fixed point, and deep in the network the backward ratio equals
# $\kappa(q^*)$.

# %%
tanh_profile = theory.mlp_profile("tanh", deep_widths, weight_var=1.5)
q_star = theory.forward_fixed_point("tanh", 1.5)
late = deep - 10  # far past the transient (it shrinks by about 0.7 per layer), before the output
np.testing.assert_allclose(tanh_profile.q[late], q_star, rtol=1e-6)
ratio = tanh_profile.delta_sq[late - 1] / tanh_profile.delta_sq[late]
np.testing.assert_allclose(ratio, theory.kappa("tanh", q_star), rtol=1e-6)
slope = theory.q_map_slope("tanh", q_star, weight_var=1.5)  # E19 at the fixed point
print(f"slope of the q-map at q* = {q_star:.4f}: {slope:.3f} (below 1: stable)")
assert 0.65 < slope < 0.75  # "about 0.7": below 1, stable

# %% [markdown]
# And E11 exactly: with equal widths and no bias, the ratio of the weight-gradient second
# moments of neighbouring layers is $\kappa(q_l)$, for every activation and every $\sigma_w^2$.

# %%
for act in ("tanh", "swish", "sigmoid"):
    profile = theory.mlp_profile(act, widths, weight_var=1.5)
    ratios = profile.weight_grad_sq[:-1] / profile.weight_grad_sq[1:]
    np.testing.assert_allclose(ratios, theory.kappa(act, profile.q[:-1]), rtol=1e-10)
    print(f"{act:8s} E[gW_l^2] / E[gW_(l+1)^2] = kappa(q_l): first layers {np.round(ratios[:3], 4)}")

# %% [markdown]
# ## 4. A real network against the theory
#
# The recursions are statements about expectations over random weights at infinite width. Let
# us measure a real finite network: the tanh MLP of the contract's own check, with
# $\sigma_w^2 = 1.5$, built with `nn.MLP` (Linear, tanh, ..., Linear). We need, per layer,
#
# - $q_l$ = mean of $h_l^2$ over units and examples: a **forward hook** on each `Linear` sees its
#   output $h_l$;
# - $E[\delta_l^2]$: a **full backward hook** on each `Linear` receives, during `backward()`,
#   `grad_output`, whose one entry is $\partial\,\text{objective} / \partial h_l$;
# - the per-example weight-gradient second moment: for one example the gradient is the outer
#   product $\delta_l x_{l-1}^\top$, whose mean square is exactly
#   $\mathrm{mean}(\delta_l^2) \cdot \mathrm{mean}(x_{l-1}^2)$; we average that over examples.
#
# To get *per-example* gradients (the convention of THEORY.md), we seed the backward pass with
# an independent standard normal vector $u_b$ for each example: `out.backward(u)`. Then the
# gradient at the output has second moment 1, as `mlp_profile` assumes by default.
#
# The weights are drawn with a custom initializer: `nn.MLP(..., init=...)` accepts any function
# `init(weight, rng=rng)`; ours is LeCun's normal with gain $\sqrt{1.5}$.

# %%
WEIGHT_VAR = 1.5
WIDTH, DEPTH, BATCH, NETWORKS = size((1024, 12, 256, 8), (512, 6, 128, 4))
mlp_widths = [WIDTH] * (DEPTH + 1)


def init(weight, rng):
    nn.init.lecun_normal(weight, gain=math.sqrt(WEIGHT_VAR), rng=rng)


def measure(seed):
    """Per-layer q, E[delta^2] and per-example E[gW^2] of one freshly drawn network."""
    model = nn.MLP(mlp_widths, "tanh", init=init, dtype="float64", rng=seed)
    inputs, outputs, grads = {}, {}, {}

    def record_forward(layer, args, output):
        inputs[layer], outputs[layer] = args[0].numpy(), output.numpy()  # host copies

    def record_backward(layer, grad_input, grad_output):
        grads[layer] = tn.backend.to_numpy(grad_output[0])

    for layer in model:
        if isinstance(layer, nn.Linear):
            layer.register_forward_hook(record_forward)
            layer.register_full_backward_hook(record_backward)
    rng = np.random.default_rng(10_000 + seed)
    out = model(tn.Tensor(rng.standard_normal((BATCH, WIDTH))))  # E[x_0^2] = 1
    out.backward(rng.standard_normal(out.shape))  # per-example output gradients u_b
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    return np.array(
        [
            [np.mean(outputs[layer] ** 2) for layer in linears],
            [np.mean(grads[layer] ** 2) for layer in linears],
            [np.mean(np.mean(grads[k] ** 2, axis=1) * np.mean(inputs[k] ** 2, axis=1)) for k in linears],
        ]
    )


measured = np.array([measure(seed) for seed in range(NETWORKS)])  # (networks, 3, layers)
profile = theory.mlp_profile("tanh", mlp_widths, weight_var=WEIGHT_VAR)
predicted = np.array([profile.q, profile.delta_sq, profile.weight_grad_sq])

# %% [markdown]
# ### The tolerance, derived
#
# Each network gives one measurement per layer and quantity; the networks are independent, so
# the mean over $R$ networks has standard error $\mathrm{SE} = \mathrm{std} / \sqrt{R}$
# (measured from the $R$ values). Within one network the measurement is itself an average over
# many units and examples; its relative spread is of the order of $\sqrt{2 / (\text{number of
# values averaged})}$, the formula of tutorial 3, and the spread over networks captures it.
#
# There is also a *bias*: the theory is exact only at infinite width. A finite layer's mean
# square $\hat q$ fluctuates around $q$ with relative variance of order $2/n$, and a curved
# function $m_2$ of a fluctuating argument is biased by about $\frac12 m_2'' \mathrm{Var}(\hat
# q)$, an $O(1/n)$ relative error per layer that compounds over depth; backward, the gradient
# independence assumption errs by $O(1/n)$ too. The project's tests (docs/THEORY.md, "How the
# tests choose their tolerances") bound this by an allowance of $2L/n$ for $L$ nonlinear
# layers of width $n$. So we accept when
#
# $$|\text{mean} - \text{prediction}| \le 5\,\mathrm{SE} + \frac{2L}{n}\,|\text{prediction}|,$$
#
# and, so that the check can fail, we also show that it rejects a prediction 10% too large.

# %%
mean = measured.mean(axis=0)
standard_error = measured.std(axis=0, ddof=1) / math.sqrt(NETWORKS)
allowance = 2 * (DEPTH - 1) / WIDTH
tolerance = 5 * standard_error + allowance * np.abs(predicted)

names = ["q_l", "E[delta_l^2]", "E[gW_l^2]"]
for k, name in enumerate(names):
    print(f"{name:13s} measured / theory:", np.round(mean[k] / predicted[k], 4))
print(f"relative tolerance per layer: {np.round(tolerance[0] / predicted[0], 3)} (q_l)")

assert np.all(np.abs(mean - predicted) <= tolerance), "the network disagrees with E8-E10"
rejects = np.abs(mean - 1.1 * predicted) > tolerance
assert not np.all(np.abs(mean - 1.1 * predicted) <= tolerance), "the check cannot fail"
print(f"a prediction 10% too large is rejected in {rejects.sum()} of {rejects.size} (quantity, layer) cells")

# %% [markdown]
# The measured values agree with the theory to about one percent or better, and the tolerance
# is tight enough to reject a 10% error (the printout counts in how many cells; the assertion
# only needs one, since a check fails when any of its cells does). The figure shows the three
# profiles, measured (dots with 5-SE error bars) and predicted (lines).

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
layers = np.arange(1, DEPTH + 1)
titles = [r"$q_l$", r"$E[\delta_l^2]$", r"$E[g_{W_l}^2]$ per example"]
for k, (ax, name) in enumerate(zip(axes, titles, strict=True)):
    ax.plot(layers, predicted[k], "-", color="C0", label="theory (E8-E10)")
    ax.errorbar(layers, mean[k], yerr=5 * standard_error[k], fmt="o", color="C1", ms=4, label="measured")
    ax.set_title(name)
    ax.set_xlabel("layer l")
axes[0].legend()
fig.suptitle(f"tanh MLP, width {WIDTH}, $\\sigma_w^2$ = {WEIGHT_VAR}, mean of {NETWORKS} networks")
show(fig, "04_measured_vs_theory.png")

# %% [markdown]
# Reading the profiles (of the full-size run, 12 layers): $q_l$ falls towards the fixed point
# $q^* \approx 0.287$. Going backward from the output, $E[\delta_l^2]$ first grows, by about
# $\kappa(q^*) \approx 1.04$ per layer: the mild chaos of $\sigma_w^2 = 1.5$. Near the input $q_l$
# is larger, tanh saturates more, $\rho'(q_l)$ is smaller, and the gradient shrinks again. The
# weight gradients grow towards the input all the way, since their ratio is $\kappa(q_l)$ (E11)
# and tanh has $\kappa(q) > 1$ at every $q$. We assert these readings on the theory's profile,
# and, for the full-size run, the "one percent".

# %%
q_star = theory.forward_fixed_point("tanh", WEIGHT_VAR)
np.testing.assert_allclose(q_star, 0.287, atol=5e-4)
np.testing.assert_allclose(theory.kappa("tanh", q_star), 1.04, atol=5e-3)
assert np.all(np.diff(profile.q) < 0) and np.all(profile.q > q_star)  # q_l falls towards q*
peak = int(np.argmax(profile.delta_sq))
assert FAST or 0 < peak < DEPTH - 1  # 12 layers: E[delta^2] grows backward, then shrinks near the input
assert np.all(np.diff(profile.weight_grad_sq) < 0)  # weight gradients grow towards the input
worst = np.max(np.abs(mean / predicted - 1))
print(f"E[delta_l^2] peaks at layer {peak + 1}; largest |measured / theory - 1| = {worst:.3f}")
assert FAST or worst < 0.015, "about one percent"  # the full-size run

# %% [markdown]
# ## 5. Residual networks (E17-E18)
#
# Tutorials 8 and 9 also train *residual* networks, whose layers are blocks
# $x_{l+1} = x_l + \alpha F_l(x_l)$: the block adds a *branch* $F_l$ (here Linear, activation,
# Linear) to its input instead of replacing it (`nn.ResidualBlock(width, act, alpha=...)`;
# `nn.ResidualMLP` stacks them between an input and an output `Linear`). The same two
# recursions hold with one change each:
#
# - **forward ([E17](../docs/THEORY.md#e17))**: the branch's last weights have mean zero and are
#   independent of $x_l$, so the cross term vanishes and second moments *add*: $E[x_{l+1}^2] =
#   E[x_l^2] + \alpha^2 E[F_l^2]$, where $E[F_l^2]$ comes from E8 through the branch. The signal
#   grows with depth (linearly when $E[F_l^2]$ stays put) instead of being multiplied by a gain;
# - **backward ([E18](../docs/THEORY.md#e18))**: the gradient reaches $x_l$ both directly and
#   through the branch, so $E[g_l^2] = E[g_{l+1}^2]\,(1 + \alpha^2 \chi_l)$ with $\chi_l$ the
#   product of E9's backward factors through the branch. The factor is at least 1: a residual
#   network cannot make its gradient vanish the way a deep sigmoid MLP does, whatever the
#   activation's gains.
#
# We measure a stack of tanh blocks as in section 4, with forward hooks on the blocks and the
# input's own `.grad`, against `theory.residual_profile`, with the same tolerance (the
# allowance counts one nonlinear layer per block).

# %%
ALPHA, BLOCKS = 0.7, size(8, 4)


def measure_residual(seed):
    """E[x_l^2] and E[g_l^2] (per example) for l = 0..BLOCKS of one random stack of blocks."""
    rng_w = np.random.default_rng(seed)
    blocks = [nn.ResidualBlock(WIDTH, "tanh", alpha=ALPHA, dtype="float64", rng=rng_w) for _ in range(BLOCKS)]
    model = nn.Sequential(*blocks)
    streams = []
    for block in blocks:
        block.register_forward_hook(lambda module, args, out: (streams.append(out), out.retain_grad()))
    rng = np.random.default_rng(20_000 + seed)
    x0 = tn.Tensor(rng.standard_normal((BATCH, WIDTH)), requires_grad=True)
    out = model(x0)
    out.backward(rng.standard_normal(out.shape))
    stream = [x0, *streams]
    return np.array(
        [
            [np.mean(x.numpy() ** 2) for x in stream],
            [np.mean(tn.backend.to_numpy(x.grad) ** 2) for x in stream],
        ]
    )


residual = np.array([measure_residual(seed) for seed in range(NETWORKS)])
theory_residual = theory.residual_profile("tanh", WIDTH, BLOCKS, alpha=ALPHA)
predicted_residual = np.array([theory_residual.x_sq, theory_residual.grad_sq])
mean_residual = residual.mean(axis=0)
se_residual = residual.std(axis=0, ddof=1) / math.sqrt(NETWORKS)
tolerance_residual = 5 * se_residual + 2 * BLOCKS / WIDTH * np.abs(predicted_residual)
print("E[x_l^2] measured / theory:", np.round(mean_residual[0] / predicted_residual[0], 4))
print("E[g_l^2] measured / theory:", np.round(mean_residual[1] / predicted_residual[1], 4))
assert np.all(np.abs(mean_residual - predicted_residual) <= tolerance_residual), "disagrees with E17-E18"
assert not np.all(np.abs(mean_residual - 1.1 * predicted_residual) <= tolerance_residual)
assert np.all(np.diff(theory_residual.x_sq) > 0) and np.all(np.diff(theory_residual.grad_sq) < 0)
print(
    f"signal grows from 1 to {theory_residual.x_sq[-1]:.2f}; gradient grows towards the input to "
    f"{theory_residual.grad_sq[0]:.2f}"
)

# %% [markdown]
# Both profiles are monotone, as E17 and E18 say they must be: the signal's second moment grows
# block by block, and the gradient's grows towards the input, by $1 + \alpha^2 \chi_l > 1$ per
# block. Try changing `ALPHA`: with $\alpha = 1$ both grow faster; with small $\alpha$ the
# network is close to the identity and both profiles flatten.
#
# ## Summary
#
# - E8 and E9 multiply the forward and backward second moments by $\sigma_w^2 \rho(q)$ and by
#   $\sigma_w^2 (n_{l+1}/n_l) \rho'(q)$ per layer; E10 multiplies the two for weight gradients.
# - He initialization is E8 and E9 with relu's $\rho = \rho' = 1/2$; Xavier's is the average of
#   the forward and backward requirements for unequal widths.
# - E11: the ratio of neighbouring weight-gradient second moments is $\kappa(q)$, which no
#   choice of $\sigma_w^2$ can change. Tutorial 5 asks what *can* change it.
# - A real network measured with hooks agrees with E8-E10 within a tolerance derived from the
#   number of networks, the width and the depth.
# - Residual blocks add second moments forward (E17) and multiply the gradient by at least 1 per
#   block backward (E18).
#
# ## Exercises
#
# 1. Give the tanh network of section 4 a bias: `mlp_profile(..., bias_var=0.1)`, and in the
#    network, initialise the biases with variance 0.1 (set `layer.bias.data` after building).
#    Does the agreement survive? Which fixed point does $q_l$ approach now?
# 2. Make the widths uneven, e.g. alternating 256 and 1024. Which quantities does E9's width
#    ratio change, and does the measured network follow?
# 3. Find, with `theory.critical_weight_var("tanh", bias_var=0.05)`, the $\sigma_w^2$ at the edge
#    of chaos for a small bias, and plot $E[\delta_l^2]$ over 100 layers just below, at and above
#    it.
# 4. Measure the weight gradients of section 4 from `layer.weight.grad` instead of the
#    per-example formula: with `out.backward(u)`, `.grad` is the *sum* over the batch of the
#    per-example gradients. What second moment do you expect, given that the $u_b$ are
#    independent with mean zero? When would it differ from $B$ times the per-example value?
#    (Hint: THEORY.md, statistics convention.)
