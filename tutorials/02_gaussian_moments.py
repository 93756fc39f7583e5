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
# # Tutorial 2: Gaussian moments and the two gains (THEORY E1-E7)
#
# At initialization, a unit of a wide layer computes $h_i = \sum_j W_{ij} x_j$, a sum of many
# independent zero-mean terms. By the central limit theorem $h_i$ is close to Gaussian, with
# mean 0 and some second moment $q = E[h^2]$. So everything an activation $\phi$ does to the
# *size* of signals at initialization is an average over a Gaussian. With $z \sim N(0, 1)$ and
# $x = \sqrt{q}\, z$, the four averages we need are (docs/THEORY.md, E1-E4):
#
# | | definition | meaning |
# | --- | --- | --- |
# | E1 | $m_1(q) = E[\phi(x)]$ | mean output |
# | E2 | $m_2(q) = E[\phi(x)^2]$ | second moment of the output: what the next layer sees |
# | E3 | $v(q) = m_2 - m_1^2$ | variance of the output |
# | E4 | $d_2(q) = E[\phi'(x)^2]$ | what the activation does to a gradient passing backwards |
#
# From them, two *gains* and their ratio (E5-E7):
#
# - forward gain $\rho(q) = m_2(q) / q$: the factor by which the activation multiplies the
#   second moment of the signal going forward;
# - backward gain $\rho'(q) = d_2(q)$: the factor by which it multiplies the second moment of
#   a gradient going backward (the gradient is multiplied elementwise by $\phi'(h)$);
# - the ratio $\kappa(q) = \rho'(q) / \rho(q)$, which tutorial 3 shows is what decides whether
#   weight gradients have the same size in every layer.
#
# **What is standard and what is reconstruction.** The moments E1-E4 and their use in the
# forward and backward recursions are textbook (Glorot and Bengio 2010, He et al. 2015, the
# mean-field papers of Poole et al. and Schoenholz et al.). Naming $\rho$, $\rho'$ and
# $\kappa$ as the paper's "property" is our reconstruction of arXiv 2208.13315 from its abstract;
# its full text was not available (see docs/THEORY.md, "What is reconstructed and what is
# standard").
#
# In this tutorial you will look at the activations, print the gains table, and check the
# numbers three independent ways: closed forms, adaptive quadrature and Monte Carlo sampling.

# %%
import math

import numpy as np
import scipy.integrate
from _common import plt, show, size
from numpy.polynomial.hermite_e import hermegauss

from tinynormact import activations, theory

ACTS = ["relu", "tanh", "sigmoid", "swish", "gelu", "selu"]

# %% [markdown]
# ## 1. The activations and their derivatives
#
# Each activation in `tinynormact.theory.activations` is a pair $(\phi, \phi')$ defined once, on
# arrays, and used by the network, the autograd engine and the theory alike. Look at two things
# in the plot: where $\phi$ is not centred (sigmoid's outputs are all positive, with mean 1/2),
# and how large $\phi'$ is near 0, where most of a standard Gaussian's mass lies.

# %%
grid = np.linspace(-4, 4, 401)
fig, (ax_f, ax_df) = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
for name in ACTS:
    act = activations.get(name)
    ax_f.plot(grid, act.f(grid), label=name)
    ax_df.plot(grid, act.df(grid), label=name)
ax_f.set_title(r"$\phi(x)$")
ax_df.set_title(r"$\phi'(x)$")
for ax in (ax_f, ax_df):
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlabel("x")
ax_f.set_ylim(-2, 4)
ax_f.legend(fontsize=8)
show(fig, "02_activations.png")

# %% [markdown]
# ## 2. The gains table (E5-E7)
#
# `theory.gains_table()` computes E1-E7 for every activation at $q = 1$ (it also holds the
# normalizing factors of tutorial 4; we print only the gains here). Things to look for:
#
# - **relu**: $\rho = \rho' = 1/2$ and $\kappa = 1$. Half the Gaussian is cut off, which halves
#   both the signal and the gradient; He initialization's factor 2 undoes exactly that.
# - **tanh**: $\rho' > \rho$, so $\kappa > 1$: it shrinks gradients less than signals.
# - **sigmoid**: $\rho'$ is tiny (0.045): every sigmoid layer divides the gradient's second
#   moment by about 22. Its $\rho$ (0.29) is much larger than its $\rho_c$ (0.043, the centred
#   gain $v/q$): most of sigmoid's output second moment is its mean of 1/2.
# - **selu**: $\rho = 1$ exactly, by the construction of its constants.

# %%
columns = ["activation", "m1", "rho", "rho_c", "rho_prime", "kappa"]
rows = theory.gains_table()
print(theory.format_gains_table([{key: row[key] for key in columns} for row in rows]))

# %% [markdown]
# The contract of the project (THEORY.md) lists reference values for five activations,
# computed independently; our table must reproduce every printed digit.

# %%
reference = {  # activation: (rho, rho_c, rho', kappa) at q = 1, from the contract's table
    "relu": (0.500000, 0.340845, 0.500000, 1.0000),
    "tanh": (0.394294, 0.394294, 0.464403, 1.1778),
    "sigmoid": (0.293379, 0.043379, 0.044836, 0.1528),
    "swish": (0.355776, 0.313083, 0.379482, 1.0666),
    "elu": (0.644945, 0.619179, 0.668102, 1.0359),
}
by_name = {row["activation"]: row for row in rows}
for name, (rho, rho_c, rho_prime, kappa) in reference.items():
    row = by_name[name]
    computed = [row["rho"], row["rho_c"], row["rho_prime"]]
    np.testing.assert_allclose(computed, [rho, rho_c, rho_prime], atol=5e-7)
    np.testing.assert_allclose(row["kappa"], kappa, atol=5e-5)
print("the five reference rows agree to every printed digit")

# %% [markdown]
# ## 3. How the moments are computed, and three independent checks
#
# ### Why not plain Gauss-Hermite?
#
# The textbook way to compute $E[g(z)]$ for a Gaussian $z$ is Gauss-Hermite quadrature: a
# weighted sum of $g$ at $n$ special nodes, exact for polynomials up to degree $2n - 1$ and
# exponentially accurate for smooth $g$. But relu has a *kink* at 0, and across a kink a
# polynomial fit converges only slowly. The plot shows the error of $n$-point Gauss-Hermite for
# relu's $m_1 = 1/\sqrt{2\pi}$ (at $q = 1$) and for tanh's $m_2$.


# %%
def gauss_hermite(g, n):
    """E[g(z)], z ~ N(0, 1), by n-point Gauss-Hermite (probabilists' weight exp(-z^2 / 2))."""
    nodes, weights = hermegauss(n)
    return float(np.sum(weights * g(nodes)) / math.sqrt(2 * math.pi))


relu, tanh = activations.get("relu"), activations.get("tanh")
tanh_m2 = theory.gaussian_moments(tanh, 1.0).m2
points = np.array([4, 8, 16, 32, 64, 128, 256])
gh_relu = [abs(gauss_hermite(relu.f, n) - 1 / math.sqrt(2 * math.pi)) for n in points]
gh_tanh = [abs(gauss_hermite(lambda z: tanh.f(z) ** 2, n) - tanh_m2) for n in points]

fig, ax = plt.subplots(figsize=(6, 3.8))
ax.loglog(points, gh_relu, "o-", label="relu $m_1$ (kink at 0)")
ax.loglog(points, np.maximum(gh_tanh, 1e-17), "s-", label="tanh $m_2$ (smooth)")
ax.loglog(points, 0.5 / points, "k:", label="slope $1/n$")
ax.set_xlabel("Gauss-Hermite nodes n")
ax.set_ylabel("absolute error")
ax.set_title("Plain Gauss-Hermite: slow across a kink")
ax.legend()
show(fig, "02_gauss_hermite.png")

# %% [markdown]
# The relu error falls only like $1/n$: 256 nodes still leave an error of about
# $5 \times 10^{-4}$, while tanh's reaches rounding error with about 150 nodes.
# `theory.gaussian_moments` therefore cuts the range $|z| \le 10$ into panels whose edges
# include every kink of $\phi$ (listed in `activation.kinks`), so each panel's integrand is
# smooth, and integrates each panel with Gauss-Legendre. Now the three checks.
#
# ### Check 1: closed forms
#
# A few activations have exact Gaussian moments (THEORY.md, "Exact oracles"):
#
# - relu: $m_1 = \sqrt{q / 2\pi}$, $m_2 = q/2$, $d_2 = 1/2$;
# - erf: $m_2 = \frac{2}{\pi}\arcsin\frac{2q}{1 + 2q}$, $d_2 = \frac{4}{\pi} (1 + 4q)^{-1/2}$
#   (Williams 1997).
#
# We compare over four decades of $q$ and assert agreement to $10^{-10}$ relative.

# %%
qs = np.logspace(-2, 2, 9)
relu_m = theory.gaussian_moments("relu", qs)
erf_m = theory.gaussian_moments("erf", qs)
closed = {
    "relu m1": (relu_m.m1, np.sqrt(qs / (2 * np.pi))),
    "relu m2": (relu_m.m2, qs / 2),
    "relu d2": (relu_m.d2, np.full_like(qs, 0.5)),
    "erf m2": (erf_m.m2, 2 / np.pi * np.arcsin(2 * qs / (1 + 2 * qs))),
    "erf d2": (erf_m.d2, 4 / np.pi / np.sqrt(1 + 4 * qs)),
}
for what, (computed, exact) in closed.items():
    print(f"{what}: largest relative error {np.max(np.abs(computed / exact - 1)):.1e}")
    np.testing.assert_allclose(computed, exact, rtol=1e-10)

# %% [markdown]
# ### Check 2: adaptive quadrature
#
# Most activations (tanh, swish, gelu, ...) have no closed form. SciPy's `quad` is an adaptive
# method, entirely independent of the library's fixed panels; we tell it where the kinks are.


# %%
def by_quad(act, q):
    """(m2, d2) of ``act`` at ``q`` with scipy.integrate.quad."""
    density = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    kinks = [k / math.sqrt(q) for k in act.kinks]

    def expect(g):
        return scipy.integrate.quad(lambda z: g(z) * density(z), -12, 12, points=kinks or None, limit=200)[0]

    phi = lambda z: float(act.f(np.array([math.sqrt(q) * z]))[0])  # noqa: E731
    dphi = lambda z: float(act.df(np.array([math.sqrt(q) * z]))[0])  # noqa: E731
    return expect(lambda z: phi(z) ** 2), expect(lambda z: dphi(z) ** 2)


for name in ACTS:
    for q in (0.25, 1.0, 4.0):
        m = theory.gaussian_moments(name, q)
        np.testing.assert_allclose((m.m2, m.d2), by_quad(activations.get(name), q), rtol=1e-9)
print("m2 and d2 agree with adaptive quadrature to 1e-9 for", ", ".join(ACTS))

# %% [markdown]
# ### Check 3: Monte Carlo, with a tolerance derived from the sample size
#
# Draw $N$ samples $x_k = \sqrt{q} z_k$ and average $y_k = \phi(x_k)^2$. The average is
# random, so "agrees" needs a tolerance, and the tolerance must come from $N$, not from
# trial and error. The standard error (SE) of a mean of $N$ independent samples is
# $\mathrm{std}(y) / \sqrt{N}$.
#
# For the identity, $y = x^2$ with $x$ Gaussian, and $\mathrm{Var}(x^2) = E[x^4] - q^2 =
# 3q^2 - q^2 = 2q^2$. So the *relative* standard error of $\mathrm{mean}(x^2)$ is
# $\sqrt{2/N}$: with a million samples, 0.14%. For other activations $y$ is not the square of a
# Gaussian, so we measure $\mathrm{std}(y)$ from the same samples.
#
# We accept when $|\text{mean} - \text{prediction}| \le 5\,\mathrm{SE}$. A correct prediction
# fails this with probability about $6 \times 10^{-7}$ (the mean is close to Gaussian by the
# central limit theorem). And a check that cannot fail is worthless, so we also assert that a
# prediction 10% off *is* rejected, which needs $5\,\mathrm{SE} < 10\%$ of the value, hence a
# large enough $N$.

# %%
N = size(1_000_000, 200_000)
samples = np.random.default_rng(2).standard_normal(N)


def agrees(values, predicted):
    """Whether mean(values) is within 5 standard errors of ``predicted``."""
    standard_error = values.std(ddof=1) / math.sqrt(len(values))
    return abs(values.mean() - predicted) <= 5 * standard_error


print(f"N = {N}: relative SE of mean(x^2) for the identity is sqrt(2/N) = {math.sqrt(2 / N):.2e}")
print(f"{'activation':10s} {'q':>4s} {'m2 MC/theory':>13s} {'d2 MC/theory':>13s}")
for name in ["identity", *ACTS]:
    act = activations.get(name)
    for q in (0.5, 2.0):
        x = math.sqrt(q) * samples
        phi_sq, dphi_sq = act.f(x) ** 2, act.df(x) ** 2
        m = theory.gaussian_moments(act, q)
        print(f"{name:10s} {q:4.1f} {phi_sq.mean() / m.m2:13.5f} {dphi_sq.mean() / m.d2:13.5f}")
        for values, predicted in ((phi_sq, m.m2), (dphi_sq, m.d2)):
            assert agrees(values, predicted)
            assert not agrees(values, 1.1 * predicted)  # the check has the power to fail

# %% [markdown]
# Every ratio is 1 to within a few parts in a thousand, as the standard error predicts. To see
# the $1/\sqrt{N}$ law itself, here is the relative error of the Monte Carlo estimate of $m_2$
# as $N$ grows, for the identity (with its exact standard error $\sqrt{2/N}$) and for tanh
# (with its measured standard error).

# %%
ns = np.unique(np.logspace(2, math.log10(N), 12).astype(int))
fig, ax = plt.subplots(figsize=(6, 3.8))
for name, color in (("identity", "C0"), ("tanh", "C1")):
    act = activations.get(name)
    predicted = theory.gaussian_moments(act, 1.0).m2
    y = act.f(samples) ** 2
    errors = [abs(y[:n].mean() / predicted - 1) for n in ns]
    ax.loglog(ns, errors, "o", color=color, label=f"{name}: |MC / theory - 1|")
    relative_sd = math.sqrt(2) if name == "identity" else y.std() / predicted
    label = r"identity: 1 SE $= \sqrt{2/N}$" if name == "identity" else f"{name}: 1 SE (measured)"
    ax.loglog(ns, relative_sd / np.sqrt(ns), "--", color=color, label=label)
ax.set_xlabel("samples N")
ax.set_ylabel("relative error of mean($\\phi^2$)")
ax.set_ylim(1e-5, 1)
ax.legend(fontsize=8)
ax.set_title("Monte Carlo error shrinks like $1/\\sqrt{N}$")
show(fig, "02_monte_carlo.png")

# %% [markdown]
# Most points lie below their dashed one-SE line and some a little above it (about a third
# should: a Gaussian exceeds one standard deviation in absolute value with probability 0.32).
# tanh's line is lower than the identity's: $\tanh^2$ is bounded by 1, so it fluctuates less,
# relative to its mean, than $x^2$ does.
#
# ## 4. The gains as functions of q
#
# The gains depend on the size $q$ of the pre-activations. Three regimes show in the plots:
#
# - small $q$: a smooth activation with $\phi(0) = 0$ looks like the line $\phi'(0)\,x$, so
#   $\rho$ and $\rho'$ both tend to $\phi'(0)^2$ (1 for tanh, 1/4 for swish and gelu) and
#   $\kappa \to 1$. Sigmoid has $\phi(0) = 1/2$: its $m_2 \to 1/4$, so $\rho = m_2/q$ blows up
#   and $\kappa \to 0$;
# - large $q$: saturating activations (tanh, sigmoid) have $\phi' \approx 0$ almost everywhere,
#   so $\rho'$ collapses, while swish and gelu approach relu;
# - relu, being homogeneous ($\phi(cx) = c\,\phi(x)$ for $c > 0$), has gains that do not depend
#   on $q$ at all.

# %%
qs = np.logspace(-2, 2, 81)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=True)
for name in ["relu", "tanh", "sigmoid", "swish", "gelu"]:
    m = theory.gaussian_moments(name, qs)
    axes[0].loglog(qs, m.m2 / qs, label=name)
    axes[1].loglog(qs, m.d2, label=name)
    axes[2].loglog(qs, m.d2 * qs / m.m2, label=name)
titles = [r"forward gain $\rho(q)$", r"backward gain $\rho'(q)$", r"$\kappa(q) = \rho'/\rho$"]
for ax, title in zip(axes, titles, strict=True):
    ax.set_title(title)
    ax.set_xlabel("q")
    ax.axhline(1, color="gray", lw=0.5)
axes[0].legend(fontsize=8)
show(fig, "02_gains_vs_q.png")

# %% [markdown]
# We assert the two limits stated above: relu's $\kappa$ is 1 at every $q$, and tanh's tends
# to 1 as $q \to 0$ (its Taylor series $\tanh x = x - x^3/3 + \dots$ gives
# $\kappa = 1 + O(q^2)$).

# %%
np.testing.assert_allclose(theory.kappa("relu", qs), 1.0, rtol=1e-12)
assert abs(theory.kappa("tanh", 1e-3) - 1) < 1e-5
assert theory.kappa("tanh", 1.0) > 1.1
print("relu: kappa = 1 at every q; tanh: kappa(1e-3) - 1 =", f"{theory.kappa('tanh', 1e-3) - 1:.1e}")

# %% [markdown]
# ## Summary
#
# - At initialization, pre-activations are Gaussian, so an activation's effect on signal and
#   gradient sizes is captured by four Gaussian averages, E1-E4.
# - The forward gain $\rho = m_2/q$ and the backward gain $\rho' = d_2$ (E5, E6) multiply
#   second moments layer by layer; $\kappa = \rho'/\rho$ (E7) compares them.
# - The library's quadrature agrees with closed forms to $10^{-10}$, with adaptive quadrature
#   to $10^{-9}$, and with Monte Carlo within 5 standard errors, where the standard error is
#   derived from $N$ ($\sqrt{2/N}$ relative for the square of a Gaussian).
#
# Tutorial 3 puts these gains into a deep network.
#
# ## Exercises
#
# 1. Leaky relu with slope $a$ has $m_2 = q(1 + a^2)/2$ and $d_2 = (1 + a^2)/2$. Check both
#    against `theory.gaussian_moments(activations.get("leaky_relu", slope=a), q)` for a few $a$.
#    What is its $\kappa$?
# 2. Redo the Gauss-Hermite plot for relu's $m_2$ instead of $m_1$. The error is zero for every
#    $n$. Why? (Hint: the nodes are symmetric about 0.)
# 3. How many Monte Carlo samples would you need so that a prediction off by 1% is rejected
#    by the 5-SE check for relu's $m_2$? Compute the per-sample relative standard deviation
#    exactly ($E[x^4 1_{x>0}] = 3q^2/2$) and then confirm by experiment.
# 4. Swish has a parameter $\beta$ (`activations.get("swish", beta=...)`). Plot $\kappa(1)$ as
#    a function of $\beta$ from 0.1 to 10. Which activations does swish approach at each end?
# 5. `theory.solve_selu()` re-derives SELU's constants from $E[\phi(z)] = 0$ and
#    $E[\phi(z)^2] = 1$. Which rows of the gains table show these conditions, and what are
#    SELU's $\rho'$ and $\kappa$ at $q = 1$?
