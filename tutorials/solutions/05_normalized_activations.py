"""Solutions to the exercises of tutorial 5 (normalized activations), each one checked.

Run it like a tutorial: ``python tutorials/solutions/05_normalized_activations.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import math  # noqa: E402 (after the path)

import numpy as np  # noqa: E402

import tinynormact as tn  # noqa: E402
from tinynormact import activations, nn, theory  # noqa: E402

tn.set_default_dtype("float64")  # gradcheck and tight comparisons

# Exercise 1: centring replaces kappa = rho'/rho by kappa_c = rho'/rho_c. Apart from the
# identity (and the odd or zero-mean activations, which it leaves alone), sigmoid comes closest
# to 1 (0.15 -> 1.03); relu is hurt most (1 -> 1.47), then leaky relu.
rows = {}
for name in activations.names():
    kappa_c = theory.rho_prime(name) / theory.rho_c(name)
    rows[name] = (theory.kappa(name), kappa_c)
changed = {name: k for name, k in rows.items() if abs(k[0] - k[1]) > 1e-6}
closest = min(changed, key=lambda name: abs(math.log(changed[name][1])))
hurt = max(changed, key=lambda name: abs(math.log(changed[name][1])) - abs(math.log(changed[name][0])))
print(f"1. closest to 1 after centring: {closest} {rows[closest]}; hurt most: {hurt} {rows[hurt]}")
assert (closest, hurt) == ("sigmoid", "relu")

# Exercise 2: the centred forward rule gives E[phi_hat^2] = lambda^2 v(1) = 1, so q_l = 1 in
# every layer, and the gradient then changes by rho_hat' = rho'/rho_c = kappa_c(1) = 1.034 per
# layer: as much help as kappa_c suggests (the uncentred forward rule: kappa(1) = 0.153).
widths = [256] * 31
centred = theory.mlp_profile(theory.normalized("sigmoid", "forward", center=True), widths)
np.testing.assert_allclose(centred.q, 1.0, rtol=1e-9)
ratios = centred.delta_sq[:-1] / centred.delta_sq[1:]
np.testing.assert_allclose(ratios, rows["sigmoid"][1], rtol=1e-9)
for rule in ("backward", "balanced"):
    profile = theory.mlp_profile(theory.normalized("sigmoid", rule, center=True), widths)
    print(
        f"2. centred {rule} rule: q settles at {profile.q[-1]:.3f}, gradient over 30 layers "
        f"{profile.delta_sq[0] / profile.delta_sq[-1]:.3g}"
    )
print(f"2. centred forward rule: q = 1 everywhere, gradient factor {ratios[0]:.4f} per layer")

# Exercise 3: with sigma_w^2 = 1 the backward rule at q has lambda^2 = 1/d2(q), and q is its own
# fixed point when q = lambda^2 m2(q) = m2(q)/d2(q), i.e. when rho(q) = rho'(q): kappa(q) = 1.
# tanh has kappa(q) > 1 at every q > 0 (it tends to 1 only as q -> 0), so there is no such q:
# every static backward-rule lambda sends q_l away from the q it was computed for.
qs = np.logspace(-3, 2, 200)
assert np.all(theory.kappa("tanh", qs) > 1)
gap = [q - theory.gaussian_moments("tanh", q).m2 / theory.gaussian_moments("tanh", q).d2 for q in qs]
assert np.all(np.array(gap) > 0)  # q > m2/d2 everywhere: q_l falls, no crossing for brentq
print("3. no q is its own fixed point under tanh's backward rule: kappa(q) > 1 for every q > 0")

# Exercise 4: with differentiate_lambda=True the layer's backward includes the dependence of
# the batch lambda on h, and gradcheck passes: it is the true derivative of the output. The
# default (a stop-gradient) is not, and gradcheck says so.
h = tn.Tensor(np.random.default_rng(0).standard_normal((16, 4)) * 2, dtype="float64", requires_grad=True)
exact = nn.NormalizedActivation("tanh", mode="adaptive", differentiate_lambda=True)
stopped = nn.NormalizedActivation("tanh", mode="adaptive")
assert tn.gradcheck(lambda t: exact(t), h)
try:
    tn.gradcheck(lambda t: stopped(t), h)
    raise AssertionError("the stop-gradient layer should fail gradcheck")
except tn.GradcheckError:
    print("4. differentiate_lambda=True passes gradcheck; the stop-gradient default does not")

# Exercise 5: lambda_eff = lambda + 0.3 tanh(alpha) stays within lambda +- 0.3, so training can
# fine-tune lambda but never drive it to 0 or far from the theory's value. For sigmoid's
# balanced rule (lambda = 3.59) that is [3.29, 3.89].
layer = nn.NormalizedActivation("sigmoid", learnable_correction=True)
base = theory.normalization("sigmoid").lambda_
for alpha, expected in ((50.0, base + 0.3), (-50.0, base - 0.3), (0.0, base)):
    layer.correction.data = layer.correction.data * 0 + alpha
    np.testing.assert_allclose(layer.lambda_, expected, rtol=1e-9)
print(f"5. sigmoid: lambda = {base:.3f}, reachable [{base - 0.3:.3f}, {base + 0.3:.3f}]")
