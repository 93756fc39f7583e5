"""Solutions to the exercises of tutorial 3 (Gaussian moments and the two gains), each checked.

Run it like a tutorial: ``python tutorials/solutions/03_gaussian_moments.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import math  # noqa: E402 (after the path)

import numpy as np  # noqa: E402
from _common import plt, show  # noqa: E402
from numpy.polynomial.hermite_e import hermegauss  # noqa: E402

from tinynormact import activations, theory  # noqa: E402

# Exercise 1: leaky relu with slope a has m2 = q (1 + a^2) / 2 and d2 = (1 + a^2) / 2, so
# rho = rho' = (1 + a^2) / 2 and kappa = 1 for every a and q: it is homogeneous, like relu.
for a in (0.01, 0.2, 0.5):
    for q in (0.5, 2.0):
        m = theory.gaussian_moments(activations.get("leaky_relu", slope=a), q)
        np.testing.assert_allclose((m.m2, m.d2), (q * (1 + a * a) / 2, (1 + a * a) / 2), rtol=1e-9)
        np.testing.assert_allclose(theory.kappa(activations.get("leaky_relu", slope=a), q), 1.0, rtol=1e-9)
print("1. leaky relu: m2 = q(1 + a^2)/2, d2 = (1 + a^2)/2, kappa = 1")

# Exercise 2: relu(x)^2 = x^2 for x > 0 and 0 otherwise. The Gauss-Hermite nodes come in pairs
# +-x_i with equal weights, so sum w_i relu(x_i)^2 = (1/2) sum w_i x_i^2 exactly, and the rule is
# exact for the polynomial x^2 once n >= 2: the kink does no harm to this one moment. (For n = 1
# the only node is 0 and the rule gives 0.)
for n in range(2, 30):
    nodes, weights = hermegauss(n)
    estimate = np.sum(weights * np.maximum(nodes, 0) ** 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(estimate, 0.5, rtol=1e-12)
print("2. Gauss-Hermite gives relu's m2(1) = 1/2 exactly for every n >= 2")

# Exercise 3: y = relu(x)^2 with x ~ N(0, q): E[y] = q/2, E[y^2] = E[x^4 1_{x>0}] = 3q^2/2, so
# Var(y) = 5q^2/4 and the per-sample relative standard deviation is sqrt(5/4) / (1/2) = sqrt(5).
# Rejecting a 1% error needs 5 SE < 1%: 5 sqrt(5) / sqrt(N) < 0.01, N > 1.25 million. With
# N = 4 million, 5 SE is 0.56%, and a 1% error is rejected unless the noise exceeds 3.9 SE.
relative_sd = math.sqrt(5)
needed = (5 * relative_sd / 0.01) ** 2
N = 4_000_000
y = np.maximum(np.random.default_rng(3).standard_normal(N), 0) ** 2
standard_error = y.std(ddof=1) / math.sqrt(N)
np.testing.assert_allclose(y.std() / y.mean(), relative_sd, rtol=0.01)
assert abs(y.mean() - 0.5) <= 5 * standard_error  # the right value is accepted
assert abs(y.mean() - 1.01 * 0.5) > 5 * standard_error  # a 1% error is rejected
print(f"3. relu m2: {needed:.3g} samples needed; with {N} a 1% error is rejected")

# Exercise 4: swish_beta(x) = x sigmoid(beta x). As beta -> 0 it tends to x / 2 (a line:
# rho = rho' = 1/4, kappa = 1); as beta -> infinity it tends to relu (rho = rho' = 1/2).
betas = np.logspace(-1, 1, 21)
kappas = [theory.kappa(activations.get("swish", beta=beta), 1.0) for beta in betas]
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.semilogx(betas, kappas, "o-")
ax.set_xlabel(r"$\beta$")
ax.set_ylabel(r"$\kappa(1)$")
ax.set_title("swish: kappa at q = 1 against beta")
show(fig, "solution_03_swish_beta.png")
small, large = activations.get("swish", beta=0.1), activations.get("swish", beta=10.0)
np.testing.assert_allclose((theory.rho(small), theory.rho_prime(small)), (0.25, 0.25), rtol=0.05)
np.testing.assert_allclose((theory.rho(large), theory.rho_prime(large)), (0.5, 0.5), rtol=0.05)
assert max(kappas) > 1.05  # in between, swish's kappa rises above 1
print(f"4. swish: x/2 at small beta, relu at large beta; largest kappa(1) {max(kappas):.3f}")

# Exercise 5: the conditions E[phi(z)] = 0 (the m1 column) and E[phi(z)^2] = 1 (rho = m2 / q = 1
# at q = 1) fix SELU's alpha and scale; its rho' and kappa come out at about 1.07.
alpha, scale = theory.solve_selu()
moments = theory.gaussian_moments("selu", 1.0)
np.testing.assert_allclose((alpha, scale), (1.6732632, 1.0507010), rtol=1e-6)
np.testing.assert_allclose((moments.m1, theory.rho("selu")), (0.0, 1.0), atol=1e-9)
print(f"5. SELU: rho' = {theory.rho_prime('selu'):.4f}, kappa = {theory.kappa('selu'):.4f}")
assert 1.07 < theory.kappa("selu") < 1.075
