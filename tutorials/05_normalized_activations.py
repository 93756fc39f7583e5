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
# # Tutorial 5: Normalized activations (THEORY E12-E16)
#
# Tutorial 4 showed that a layer multiplies the forward second moment by $\sigma_w^2 \rho(q)$
# and the backward one by $\sigma_w^2 \rho'(q)$ (equal widths). With LeCun's $\sigma_w^2 = 1$, a
# signal keeps its size when $\rho = 1$ and a gradient keeps its size when $\rho' = 1$. Most
# activations have neither (relu: 1/2 and 1/2; sigmoid: 0.29 and 0.045). The idea of arXiv
# 2208.13315 is to *normalize the activation itself*:
#
# $$\hat\phi(x) = \lambda\, (\phi(x) - \mu),$$
#
# with a per-layer factor $\lambda$ (and optionally a shift $\mu$) chosen so that the gains of
# $\hat\phi$ are 1.
#
# **What we know and what we reconstruct.** Only the paper's abstract is available. It says:
# activations change the gradient variance from layer to layer; a per-layer factor $\lambda$
# normalizes the activation so that the gradient variance stays the same; in the v3 version two
# per-layer quantities $\rho$ and $\rho'$ are kept near 1 and $\lambda$ is updated from
# mini-batch statistics during training. The concrete rules below are *our reconstruction* in
# the standard variance framework (docs/THEORY.md):
#
# - ([E12](../docs/THEORY.md#e12)) forward rule $\lambda = 1/\sqrt{\rho}$, so that $\hat\rho =
#   1$;
# - ([E13](../docs/THEORY.md#e13)) backward rule $\lambda = 1/\sqrt{\rho'}$, so that $\hat\rho'
#   = 1$;
# - ([E14](../docs/THEORY.md#e14)) balanced rule $\lambda^2 = (1/\rho + 1/\rho')/2$, between
#   the two: *this reconstruction's default reading*, not a formula we can attribute to the
#   paper (its abstract does not state it); it is the library's default and is labelled as
#   such everywhere;
# - centring ($\mu = m_1(q)$ or 0), the $q$ at which a static $\lambda$ is computed, and whether
#   gradients flow through an adaptive $\lambda$ are options you pick, none claimed to be the
#   paper's.
#
# This tutorial checks each rule, shows why no choice of $\lambda$ can change $\kappa$ (and what
# can), follows normalized activations through a deep network, and then compares static and
# adaptive normalization in `nn.NormalizedActivation`.

# %%
import math

import numpy as np
from _common import plt, show, size

import tinynormact as tn
from tinynormact import activations, nn, theory

tn.set_default_dtype("float64")  # buffers and new tensors in float64: tight comparisons below
ACTS = ["relu", "tanh", "sigmoid", "swish", "gelu"]


def gains(act, q=1.0):
    """(rho, rho') of an activation at q (E5, E6)."""
    return theory.rho(act, q), theory.rho_prime(act, q)


# %% [markdown]
# ## 1. Scaling multiplies both gains by $\lambda^2$
#
# Replace $\phi$ by $c\,\phi$. Then $m_2 = E[\phi^2]$ and $d_2 = E[\phi'^2]$ are both multiplied
# by $c^2$, so $\rho$ and $\rho'$ are both multiplied by $c^2$ and their ratio
# $\kappa = \rho'/\rho$ **does not change**. That is the whole reason the three rules differ:
# one factor can put *either* gain at 1, both only when $\kappa = 1$ already. We check it with
# `activations.affine(act, lambda_, mu)`, the activation $\lambda (\phi - \mu)$.

# %%
for name in ACTS:
    rho, rho_prime = gains(name)
    for c in (0.3, 1.7, 5.0):
        scaled = activations.affine(name, c)
        np.testing.assert_allclose(gains(scaled), (c * c * rho, c * c * rho_prime), rtol=1e-12)
        np.testing.assert_allclose(theory.kappa(scaled), theory.kappa(name), rtol=1e-12)
print("scaling by c multiplies rho and rho' by c^2 and leaves kappa unchanged, for", ", ".join(ACTS))

# %% [markdown]
# ## 2. The three rules
#
# `theory.normalization(act, rule, q, center)` returns $(\lambda, \mu)$, and
# `theory.normalized(...)` the normalized activation itself (the static normalization,
# [E15](../docs/THEORY.md#e15)). For each rule we compute the gains of $\hat\phi$ at $q = 1$ and
# assert what the rule promises: $\hat\rho = 1$ (forward), $\hat\rho' = 1$ (backward), and
# $(1/\hat\rho + 1/\hat\rho')/2 = 1$ (balanced: the mean of the forward and backward
# $\lambda^2$, so the mean of the inverse gains is 1).

# %%
print(f"{'activation':10s} {'rule':9s} {'lambda':>8s} {'rho_hat':>8s} {'rho_hat_prime':>14s}")
for name in ACTS:
    for rule in theory.RULES:
        lam, _ = theory.normalization(name, rule)
        rho_hat, rho_hat_prime = gains(theory.normalized(name, rule))
        print(f"{name:10s} {rule:9s} {lam:8.4f} {rho_hat:8.4f} {rho_hat_prime:14.4f}")
        balanced = (1 / rho_hat + 1 / rho_hat_prime) / 2
        promised = {"forward": rho_hat, "backward": rho_hat_prime, "balanced": balanced}
        np.testing.assert_allclose(promised[rule], 1.0, rtol=1e-12)

# %% [markdown]
# Look at sigmoid: the forward rule needs $\lambda = 1.85$, the backward rule $4.72$. Whichever
# you choose, the other gain is far from 1, because sigmoid's $\kappa = 0.15$. For relu all
# three rules agree ($\lambda = \sqrt{2}$, He's gain), because relu's $\kappa = 1$.

# %% [markdown]
# ## 3. Centring is what changes $\kappa$
#
# Subtracting the mean $\mu = m_1(q)$ changes the forward gain from $\rho = m_2/q$ to the
# centred $\rho_c = v/q = (m_2 - m_1^2)/q$, and leaves $\phi'$, hence $\rho'$, alone. So the
# centred activation has $\kappa_c = \rho'/\rho_c \ne \kappa$ whenever $m_1 \ne 0$. For
# odd activations such as tanh, $m_1 = 0$ and centring does nothing.

# %%
print(f"{'activation':10s} {'kappa':>8s} {'kappa centred':>14s}")
for name in ACTS:
    m1 = theory.gaussian_moments(name).m1
    centred = activations.affine(name, 1.0, m1)
    kappa_c = theory.kappa(centred)
    print(f"{name:10s} {theory.kappa(name):8.4f} {kappa_c:14.4f}")
    np.testing.assert_allclose(kappa_c, theory.rho_prime(name) / theory.rho_c(name), rtol=1e-10)
    if abs(m1) > 1e-3:
        assert abs(kappa_c / theory.kappa(name) - 1) > 0.01, f"centring should change kappa of {name}"
    else:
        np.testing.assert_allclose(kappa_c, theory.kappa(name), rtol=1e-10)

# %% [markdown]
# Centring brings sigmoid's $\kappa$ from 0.15 to 1.03, close to 1, because sigmoid's output is
# dominated by its mean of 1/2. For relu it moves $\kappa$ *away* from 1 (1.47). So centring is
# a tool, not a cure.
#
# ### The picture: gains on a log-log plane
#
# Plot each activation as a point $(\rho, \rho')$ on log axes. Scaling by $c$ moves it by
# $(\log c^2, \log c^2)$: along a diagonal line, which is a line of constant $\kappa$. The goal
# $(1, 1)$ lies on the diagonal $\kappa = 1$. The forward rule slides the point along its
# diagonal to $\rho = 1$, the backward rule to $\rho' = 1$, the balanced rule somewhere in
# between. Only centring moves a point *off* its diagonal: sigmoid's centred point (the star)
# lands close to $(1, 1)$, relu's moves away from the $\kappa = 1$ diagonal it started on. Eight
# markers crowd around $(1, 1)$, so the right panel zooms into the box drawn on the left: relu's
# three rules all land exactly on $(1, 1)$, and tanh's balanced and centred points coincide
# (tanh is odd, so centring does nothing).

# %%
fig, (ax, zoom) = plt.subplots(1, 2, figsize=(12, 5.6), gridspec_kw={"width_ratios": [1.1, 1]})
line = np.array([1e-2, 1e2])
ax.loglog(line, line, "k--", lw=0.8, label=r"$\kappa = 1$")
zoom.plot(line, line, "k--", lw=0.8)
RULE_MARKERS = (("forward", ">", 13), ("backward", "^", 9), ("balanced", "D", 5))  # nested when equal
for i, name in enumerate(["relu", "tanh", "sigmoid"]):
    color = f"C{i}"
    rho, rho_prime = gains(name)
    ax.loglog(line, line * rho_prime / rho, ":", color=color, lw=1)  # the line of constant kappa
    zoom.plot(line, line * rho_prime / rho, ":", color=color, lw=1)
    ax.loglog(rho, rho_prime, "o", color=color, ms=8, label=f"{name}")
    for rule, marker, ms in RULE_MARKERS:
        for axis in (ax, zoom):
            axis.plot(*gains(theory.normalized(name, rule)), marker, color=color, ms=ms, mfc="none", mew=1.5)
    for axis in (ax, zoom):
        axis.plot(
            *gains(theory.normalized(name, "balanced", center=True)), "*", color=color, ms=12, alpha=0.6
        )
for rule, marker, _ in RULE_MARKERS:
    ax.plot([], [], marker, color="gray", mfc="none", label=f"{rule} rule")
ax.plot([], [], "*", color="gray", label="balanced, centred")
for axis in (ax, zoom):
    axis.axvline(1, color="gray", lw=0.5)
    axis.axhline(1, color="gray", lw=0.5)
    axis.set_xlabel(r"forward gain $\rho$")
ax.set_ylabel(r"backward gain $\rho'$")
ax.set_xlim(0.02, 10)
ax.set_ylim(0.02, 10)
ax.set_title("Scaling slides along a diagonal; centring leaves it")
ax.legend(fontsize=8, loc="upper left")
ZOOM = (0.8, 1.3)
ax.add_patch(plt.Rectangle((ZOOM[0], ZOOM[0]), ZOOM[1] - ZOOM[0], ZOOM[1] - ZOOM[0], fill=False, lw=0.8))
zoom.set_xlim(*ZOOM)
zoom.set_ylim(*ZOOM)
zoom.set_title("The box around (1, 1), linear axes: equal points are nested rings")
zoom.annotate("relu: all three rules", (1, 1), (1.06, 0.86), fontsize=8, arrowprops={"arrowstyle": "->"})
zoom.annotate(
    "tanh: balanced = centred",
    gains(theory.normalized("tanh")),
    (0.81, 1.2),
    fontsize=8,
    arrowprops={"arrowstyle": "->"},
)
show(fig, "05_gain_plane.png")

# %% [markdown]
# ## 4. Normalized activations in a deep network
#
# What do the rules do over 30 layers? `theory.mlp_profile` accepts any activation, so we feed
# it the statically normalized ones (computed at $q = 1$). Two facts are exact and we assert
# them:
#
# - **forward rule**: $\hat\rho(1) = 1$ makes $q = 1$ a fixed point of
#   [E8](../docs/THEORY.md#e8), so with an input of $E[x_0^2] = 1$ every $q_l$ is exactly 1. The
#   backward factor per layer is then $\hat\rho'(1) = \kappa(1)$: the forward signal is perfect,
#   and the gradient still drifts by $\kappa$ per layer, as [E11](../docs/THEORY.md#e11)
#   predicts.
# - **relu, any rule**: $\lambda = \sqrt 2$ turns LeCun into He initialization, and every profile
#   is flat.
#
# With the backward or balanced rule, $\hat\rho(1) \neq 1$, so $q$ drifts away from the value
# $q = 1$ at which $\lambda$ was computed, and the gains drift with it: the static $\lambda$ is
# right only at one $q$.

# %%
depth = 30
widths = [256] * (depth + 1)
fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
for column, name in enumerate(("tanh", "sigmoid")):
    variants = {"vanilla": activations.get(name)}
    variants.update({rule: theory.normalized(name, rule) for rule in theory.RULES})
    for label, act in variants.items():
        profile = theory.mlp_profile(act, widths)
        axes[0, column].semilogy(range(1, depth + 1), profile.q, label=label)
        axes[1, column].semilogy(range(1, depth + 1), profile.delta_sq, label=label)
    axes[0, column].set_title(f"{name}: forward $q_l$")
    axes[1, column].set_title(f"{name}: backward $E[\\delta_l^2]$")
    axes[1, column].set_xlabel("layer l")
axes[0, 0].legend(fontsize=8)
show(fig, "05_normalized_profiles.png")

for name in ("tanh", "sigmoid", "swish"):
    forward = theory.mlp_profile(theory.normalized(name, "forward"), widths)
    np.testing.assert_allclose(forward.q, 1.0, rtol=1e-10)
    ratios = forward.delta_sq[:-1] / forward.delta_sq[1:]
    np.testing.assert_allclose(ratios, theory.kappa(name, 1.0), rtol=1e-10)
    print(f"n{name}, forward rule: q_l = 1 in every layer; E[delta^2] ratio per layer = {ratios[0]:.4f}")
for rule in theory.RULES:
    relu_profile = theory.mlp_profile(theory.normalized("relu", rule), widths)
    np.testing.assert_allclose(relu_profile.delta_sq, 1.0, rtol=1e-10)

vanilla = theory.mlp_profile("sigmoid", widths)
per_layer = vanilla.delta_sq[:-1] / vanilla.delta_sq[1:]  # E9: layer l's factor is rho'(q_l)
total = vanilla.delta_sq[0] / vanilla.delta_sq[-1]
print(
    f"vanilla sigmoid: q settles at {vanilla.q[-1]:.3f}; gradient factor per layer there {per_layer[-1]:.4f}"
)
print(f"  first layer's factor {per_layer[0]:.4f}; over {depth} layers {total:.1e}")
np.testing.assert_allclose(vanilla.q[4:], 0.2647, rtol=1e-3)  # q* within four layers
np.testing.assert_allclose(1 / per_layer[0], 22.30, rtol=1e-3)  # the layer at q = 1
np.testing.assert_allclose(per_layer[4:], 0.0557, rtol=1e-3)  # about 1/18 per layer
assert 3.3e-37 < total < 3.5e-37
for rule, settles in (("backward", 8.54), ("balanced", 4.56)):
    np.testing.assert_allclose(
        theory.mlp_profile(theory.normalized("sigmoid", rule), widths).q[-1], settles, rtol=1e-3
    )
tanh_forward = theory.mlp_profile(theory.normalized("tanh", "forward"), widths)
assert 110 < tanh_forward.delta_sq[0] / tanh_forward.delta_sq[-1] < 120  # kappa(1)^29

# %% [markdown]
# Reading the plot. Vanilla sigmoid's gradient collapses: by $1/\rho'(1) \approx 22$ in the
# layer that sees $q = 1$, then, once $q_l$ has settled at sigmoid's fixed point
# $q^* \approx 0.265$ (within four layers), by $1/\rho'(q^*) \approx 1/0.0557 \approx 18$ per
# layer: by a factor of $3.4 \times 10^{-37}$ over the 30 layers (asserted above). The
# normalized versions collapse far less, but none is flat:
#
# - with the forward rule, $q$ stays at 1, and the gradient shrinks by exactly
#   $\kappa(1) = 0.15$ per layer;
# - with the backward or balanced rule, $\hat\rho(1) > 1$ drives $q$ up to about 8.5 or 4.6 within a
#   few layers, and there sigmoid's $\rho'$ is much smaller than at the $q = 1$ for which
#   $\lambda$ was computed.
#
# For tanh, normalization turns a gradient that shrinks towards the input into one that grows,
# with the forward rule by exactly $\kappa(1) = 1.18$ per layer (a factor of about 115 over the
# 29 steps between layer 30 and layer 1). Two lessons: a static $\lambda$ is right only at
# one $q$, which motivates the adaptive version below; and no $\lambda$ can remove the drift
# that $\kappa \neq 1$ causes.
#
# ## 5. Static and adaptive normalization (E15, E16)
#
# The layer `nn.NormalizedActivation` (or the factory `nn.activation("n<name>", ...)`, and
# `nn.MLP(widths, "ntanh", activation_options={...})`) implements both:
#
# - **static** (E15, the default): $\lambda$ and $\mu$ are computed once from the Gaussian
#   moments at $q$ (default 1). Cheap, and exact only while the pre-activations really have
#   second moment $q$;
# - **adaptive** ([E16](../docs/THEORY.md#e16), our reading of the paper's v3 "ANAct"): in
#   training mode, every batch $h$ gives its own gains, the rule turns them into $\lambda_b$,
#   and the layer outputs $\lambda_b \phi(h)$, like batch normalization. It also updates running
#   estimates, `running = momentum * running + (1 - momentum) * batch` with momentum 0.9. In
#   evaluation mode it uses $\lambda$ from the running estimates and updates nothing. The
#   running estimates start at the Gaussian values at $q$, so an untrained adaptive layer in
#   evaluation mode *is* the static one. By default $\lambda_b$ is a constant in backward (a
#   stop-gradient); `differentiate_lambda=True` lets gradients flow through the statistics.
#
# *Which* batch gains? The first reading, and the plainest, is the option `estimate="batch"`:
# the raw statistics over all elements of the batch, $\rho_b =
# \mathrm{mean}(\phi(h)^2)/\mathrm{mean}(h^2)$ and $\rho'_b = \mathrm{mean}(\phi'(h)^2)$ (and
# $\mu_b = \mathrm{mean}(\phi(h))$ when centring). Tutorial 7 shows why deep networks trained
# with it collapse, and the library's default is therefore another reading, `estimate="output"`
# ([E25](../docs/THEORY.md#e25)): it keeps the Gaussian gains at the layer's $q$ and scales both
# by $s_b / m_2(q)$ with $s_b = \mathrm{mean}(\phi(h)^2)$. Every rule's $\lambda$ scales as one
# over the square root of a factor common to both gains, so $\lambda_b = \lambda_s
# \sqrt{m_2(q)/s_b}$ with the static $\lambda_s$: the output's second moment is
# $\lambda_b^2 s_b = \lambda_s^2 m_2(q)$, the static form's, for every batch. The adaptive form
# centres by default (the reading the study in docs/anact.md chose): then $s_b$ is the batch
# variance of $\phi$, $m_2(q)$ becomes $v(q)$, and $\mu_b$ is removed. We use the plain reading
# for the checks below, where the formulas are easiest to follow, and check the default at the
# end.
#
# We check each of these statements on a batch whose pre-activations have $q = 4$, i.e. twice
# the standard deviation the static $\lambda$ was computed for.

# %%
rng = np.random.default_rng(0)
BATCH, UNITS, Q = 256, 64, 4.0
static = nn.NormalizedActivation("tanh")  # mode="static", rule="balanced", q=1
adaptive = nn.NormalizedActivation("tanh", mode="adaptive", estimate="batch", center=False)  # plain
tanh = activations.get("tanh")


def batch_of_h(q=Q):
    return rng.standard_normal((BATCH, UNITS)) * math.sqrt(q)


# (a) untrained, evaluation mode: adaptive == static
h = batch_of_h()
adaptive.eval()
np.testing.assert_allclose(adaptive(tn.Tensor(h)).numpy(), static(tn.Tensor(h)).numpy(), rtol=1e-12)
print(f"untrained adaptive layer in eval mode = static layer, lambda = {adaptive.lambda_:.4f}")

# (b) training mode: the output uses the batch's own lambda, and the running estimates move
adaptive.train()
rho_before = float(adaptive.running_rho.data)
rho_b = np.mean(tanh.f(h) ** 2) / np.mean(h**2)
rho_prime_b = np.mean(tanh.df(h) ** 2)
lambda_b = math.sqrt((1 / rho_b + 1 / rho_prime_b) / 2)  # the balanced rule, E14
output = adaptive(tn.Tensor(h)).numpy()
np.testing.assert_allclose(output, lambda_b * tanh.f(h), rtol=1e-12)
np.testing.assert_allclose(float(adaptive.running_rho.data), 0.9 * rho_before + 0.1 * rho_b, rtol=1e-12)
print(f"training mode: batch lambda = {lambda_b:.4f} (static lambda at q = 1: {static.lambda_:.4f})")

# (c) evaluation mode uses the running values and changes nothing
adaptive.eval()
running = float(adaptive.running_rho.data)
h_eval = batch_of_h(q=9.0)
np.testing.assert_allclose(adaptive(tn.Tensor(h_eval)).numpy(), adaptive.lambda_ * tanh.f(h_eval), rtol=1e-12)
assert float(adaptive.running_rho.data) == running
print(f"eval mode: lambda from the running estimates = {adaptive.lambda_:.4f}, running values unchanged")

# (d) the default reading (estimate="output", E25, centred): lambda_b = lambda_c sqrt(v(q) / var_b)
# with lambda_c the centred static lambda and var_b the batch variance of phi, so the output
# lambda_b (phi - mu_b) has the centred static form's variance at q = 1, whatever the batch's q
default = nn.NormalizedActivation("tanh", mode="adaptive")
assert default.estimate == "output" and default.center
phi = tanh.f(h)
lambda_c = theory.normalization(tanh, "balanced", 1.0, True).lambda_
v_at_1 = theory.gaussian_moments(tanh, 1.0).v
lambda_output = lambda_c * math.sqrt(v_at_1 / np.var(phi))
output = default(tn.Tensor(h)).numpy()
np.testing.assert_allclose(output, lambda_output * (phi - phi.mean()), rtol=1e-12)
np.testing.assert_allclose(np.mean(output**2), lambda_c**2 * v_at_1, rtol=1e-12)  # at q = 4
print(f"default reading: batch lambda = {lambda_output:.4f}, output second moment {np.mean(output**2):.4f}")

# %% [markdown]
# ### The running estimate converges, and how closely
#
# Feed many batches at $q = 4$ in training mode. The running $\rho$ and $\rho'$ are
# exponential moving averages, so they forget their starting values (the Gaussian values at
# $q = 1$) like $0.9^{\text{steps}}$ and approach the population values at $q = 4$; the
# evaluation-mode $\lambda$ then approaches `theory.normalization("tanh", q=4)`.
#
# How close should it get? Each batch's $\lambda_b$ is noisy, with some standard deviation $s$
# that we measure over the batches. An exponential moving average with momentum $m$ of
# independent values has standard deviation $s \sqrt{(1 - m)/(1 + m)}$ (the sum of the
# geometric series of squared weights $(1-m)^2 \sum_k m^{2k}$): with $m = 0.9$, about $0.23\,s$.
# We allow 5 of those plus what remains of the start, $0.9^{\text{steps}}$ times the initial
# distance.

# %%
steps = size(200, 80)
adaptive = nn.NormalizedActivation("tanh", mode="adaptive", estimate="batch")
batch_lambdas, running_lambdas = [], []
for _ in range(steps):
    h = batch_of_h()
    adaptive.train()
    batch_lambdas.append(float(np.mean(adaptive(tn.Tensor(h)).numpy() / tanh.f(h))))
    running_lambdas.append(adaptive.lambda_)

target = theory.normalization("tanh", "balanced", q=Q).lambda_
start = theory.normalization("tanh", "balanced", q=1.0).lambda_
m = adaptive.momentum
spread = np.std(batch_lambdas[steps // 2 :], ddof=1)
tolerance = 5 * spread * math.sqrt((1 - m) / (1 + m)) + m**steps * abs(start - target)
print(f"after {steps} batches: eval lambda {running_lambdas[-1]:.4f}, theory at q = {Q}: {target:.4f}")
print(f"batch-to-batch spread of lambda_b: {spread:.4f}; tolerance {tolerance:.4f}")
assert abs(running_lambdas[-1] - target) <= tolerance
assert abs(start - target) > tolerance  # the check could fail: the q = 1 value is rejected

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(batch_lambdas, ".", ms=3, color="C0", alpha=0.5, label=r"batch $\lambda_b$ (training output)")
ax.plot(running_lambdas, "-", color="C1", label=r"running $\lambda$ (evaluation mode)")
ax.axhline(target, color="k", ls="--", lw=1, label=f"theory at q = {Q:g}")
ax.axhline(start, color="gray", ls=":", lw=1, label="static (q = 1)")
ax.set_xlabel("training step")
ax.set_ylabel(r"$\lambda$")
ax.set_title("Adaptive normalization of tanh, pre-activations with q = 4")
ax.legend(fontsize=8)
show(fig, "05_adaptive_lambda.png")

# %% [markdown]
# The batch values scatter narrowly around the $q = 4$ value; try changing `Q` to 0.25 or 16 and
# watch both $\lambda$ lines move, the batch values with them; the running value starts at the
# static one and reaches it after a few tens of steps, with the $1/(1-m) = 10$-step memory of
# the moving average.
#
# Here $q$ was held at 4 from outside. Inside a deep network the adaptive $\lambda$ also
# *changes* the $q$ of the next layer, which changes the next $\lambda$: the form can feed on
# itself and collapse during training. [Tutorial 7](07_adaptive_form.py) tracks such a failure
# and shows what trains instead.
#
# ## 6. Batch normalization: normalizing the pre-activation instead
#
# Standard convolutional networks, such as the library's CIFAR ResNets (`nn.resnet20`,
# `nn.resnet50`, ...), put **batch normalization** (BN, tutorial 2) before each activation:
# `nn.BatchNorm1d(features)` takes each feature (column) of its input $u = W x$, subtracts its
# mean over the batch and divides by its standard deviation over the batch (plus a small
# `eps`), then applies a learnable per-feature scale and shift that start at 1 and 0. Like the
# adaptive activation it has two modes: training mode uses the batch's own statistics and
# updates running estimates, evaluation mode (`model.eval()`) uses the running estimates.
# (Tutorial 9's small 1-D ResNet leaves BN out, so that the activation's own scale is what
# keeps the signal in range; its exercise 2 puts it back.)
#
# Where normalized activations fix the *activation's* gains, BN fixes the *pre-activation*: at
# initialization every feature of $h = \mathrm{BN}(u)$ has mean 0 and second moment 1, so $q_l =
# 1$ in every layer, whatever came before; the drift of $q$ that limits a static $\lambda$
# (section 4) cannot happen. And because BN removes any scale and any constant from its input,
# $\lambda$ and $\mu$ of the activation before it stop mattering: the network computes the same
# $h$ in every layer, and, by the chain rule, the same gradients with respect to every $h$, up
# to one overall factor $\lambda^2$ in their second moment, from the last activation (no BN
# follows it, so its $\lambda$ scales the output). What is left of the activation is its centred
# $\kappa_c = \rho'/\rho_c$ (section 3): per layer, BN divides the gradient by the standard
# deviation of $u$, which is set by the activation's variance $v$, not its second moment, so the
# gradient changes by $\kappa_c(1)$ per layer (THEORY, "Convolutional networks": a derivation
# for this architecture, not a claim of the paper). We check all three on the same weights, for
# swish (whose $\kappa_c(1) = 1.21$) and for two statically normalized swishes with different
# $(\lambda, \mu)$.

# %%
BN_WIDTH, BN_DEPTH, BN_BATCH = size((512, 6, 512), (256, 5, 256))


def bn_network(act, seed):
    """BN_DEPTH blocks of Linear (no bias), BatchNorm1d and ``act``, then a Linear."""
    layers, rng_w = [], np.random.default_rng(seed)
    for _ in range(BN_DEPTH):
        layers += [
            nn.Linear(BN_WIDTH, BN_WIDTH, bias=False, rng=rng_w),
            nn.BatchNorm1d(BN_WIDTH),
            nn.activation(act),
        ]
    return nn.Sequential(*layers, nn.Linear(BN_WIDTH, BN_WIDTH, bias=False, rng=rng_w))


def bn_profile(act, seed):
    """(E[h_l^2], E[(dL/dh_l)^2] per example) at every BN output, one random network."""
    model = bn_network(act, seed)
    seen_h, grads = [], []
    for layer in model:
        if isinstance(layer, nn.BatchNorm1d):
            layer.register_forward_hook(
                lambda module, inputs, out: (seen_h.append(out), out.register_hook(grads.append))
            )
    x = tn.Tensor(np.random.default_rng(1000 + seed).standard_normal((BN_BATCH, BN_WIDTH)))
    out = model(x)
    out.backward(np.random.default_rng(2000 + seed).standard_normal(out.shape))  # E[g^2] = 1 at the output
    q = np.array([np.mean(h.numpy() ** 2) for h in seen_h])
    delta_sq = np.array([np.mean(tn.backend.to_numpy(g) ** 2) for g in reversed(grads)])
    return q, delta_sq


swish_variants = {  # label: (activation, its lambda)
    "swish": ("swish", 1.0),
    "nswish balanced": ("nswish", theory.normalization("swish").lambda_),
    "nswish forward, centred": (
        theory.normalized("swish", "forward", center=True),
        theory.normalization("swish", "forward", center=True).lambda_,
    ),
}
profiles = {label: [bn_profile(act, seed) for seed in range(4)] for label, (act, _) in swish_variants.items()}
for label, runs in profiles.items():
    np.testing.assert_allclose([q for q, _ in runs], 1.0, atol=1e-4)  # q_l = 1 in every layer
    lam = swish_variants[label][1]
    for (_, delta_sq), (_, reference) in zip(runs, profiles["swish"], strict=True):
        np.testing.assert_allclose(delta_sq, lam**2 * reference, rtol=1e-3)  # only the last lambda shows
print(f"q_l = 1 in all {BN_DEPTH} layers, and the same gradients up to lambda^2, for", ", ".join(profiles))

kappa_c = theory.rho_prime("swish") / theory.rho_c("swish")
factors = np.array([d[:-1] / d[1:] for _, d in profiles["swish"]])  # per layer, per network
mean_factor = factors.mean()
standard_error = factors.mean(axis=1).std(ddof=1) / math.sqrt(len(factors))
tolerance = 5 * standard_error + 2 / BN_WIDTH * BN_DEPTH * kappa_c  # noise + finite width
print(
    f"gradient factor per layer: measured {mean_factor:.3f}, kappa_c(1) = {kappa_c:.3f}",
    f"(tolerance {tolerance:.3f})",
)
assert abs(mean_factor - kappa_c) <= tolerance
assert abs(mean_factor - 1.1 * kappa_c) > tolerance  # a 10% error would be caught
assert abs(mean_factor - theory.kappa("swish")) > tolerance  # and so would the uncentred kappa

# %% [markdown]
# So BN makes the forward pass exact and leaves a gradient drift of $\kappa_c(1)$ per layer
# that no $\lambda$ can touch: with BN in front, a normalized activation can matter only
# through training, not through signal propagation at initialization.
#
# ## Summary
#
# - $\hat\phi = \lambda(\phi - \mu)$. Scaling multiplies both gains by $\lambda^2$ and leaves
#   $\kappa$ unchanged; only centring (or changing $\phi$) changes $\kappa$.
# - The forward rule (E12) makes $\hat\rho = 1$, the backward rule (E13) $\hat\rho' = 1$; both
#   at once is possible only when $\kappa = 1$. The balanced rule (E14, this reconstruction's
#   default reading, not attributed to the paper) averages the two $\lambda^2$.
# - A static $\lambda$ (E15) is exact at one $q$; an adaptive one (E16) follows the batch
#   statistics in training and uses running estimates in evaluation.
#
# Tutorial 6 follows these quantities during training.
#
# ## Exercises
#
# 1. Which activation in `activations.names()` comes closest to $\kappa = 1$ after centring?
#    And which one does centring hurt the most?
# 2. Repeat section 4 with the centred rules (`theory.normalized(name, rule, center=True)`).
#    Does centring help sigmoid's deep profile as much as its $\kappa_c$ suggests?
# 3. Compute the static $\lambda$ at the $q$ that the network actually sees: is there a $q$
#    that is its own fixed point, i.e. where `theory.normalized("tanh", "backward", q=q)` keeps
#    $q_l = q$ (with $\sigma_w^2 = 1$)? Write the condition with $m_2$ and $d_2$ first; it
#    says something about $\kappa(q)$.
# 4. Build `nn.NormalizedActivation("tanh", mode="adaptive", differentiate_lambda=True)` and
#    compare the gradient with respect to $h$ with the default stop-gradient version. Check both
#    with `tn.gradcheck`: which one is the true derivative of the layer's output?
# 5. With `learnable_correction=True` the layer uses $\lambda + 0.3 \tanh(\alpha)$ with a
#    trainable $\alpha$ starting at 0. Why bound the correction, and what range of $\lambda$ can
#    it reach for sigmoid?
