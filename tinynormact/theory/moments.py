"""THEORY E1-E7: the Gaussian moments of an activation and the per-layer gains, on the host.

Everything in ``tinynormact.theory`` is a function of an activation (an
``activations.ActivationFunction`` or its name) and of the second moment q of the
pre-activations; nothing there touches autograd.

- E1-E4 ``gaussian_moments``: m1, m2, v, d2 of phi(sqrt(q) z), z ~ N(0, 1)
- E5-E7 ``rho``, ``rho_c``, ``rho_prime``, ``kappa``: the per-layer gains
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from tinynormact.engine.backend import np
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction

Act = str | ActivationFunction
QLike = float | np.ndarray


class GaussianMoments(NamedTuple):
    """E1-E4 at one q (or arrays of them, one per q)."""

    m1: QLike
    m2: QLike
    v: QLike
    d2: QLike



# --- E1-E4: Gaussian expectations ------------------------------------------------------------------
#
# E[g(sqrt(q) z)] = integral of g(sqrt(q) z) N(z) dz, truncated to |z| <= 10 (the Gaussian mass
# outside is 1.5e-23, negligible even against activations that grow linearly). The range is cut
# into panels, each integrated by Gauss-Legendre. The panel edges are: a uniform grid in z (which
# resolves the Gaussian), a grid of fixed points in x = sqrt(q) z mapped to z (which resolves the
# activation's own features when q is large and they shrink in z), and the kinks of phi (so that
# no panel straddles a kink, where Gauss rules converge slowly). Every q gets the same number of
# panels, so a whole array of q is one vectorized evaluation of phi and phi'.

_Z_MAX = 10.0
_Z_EDGES = np.linspace(-_Z_MAX, _Z_MAX, 21)
_X_EDGES = np.array([-16.0, -8.0, -4.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(24)


def _as_q(q: Any, name: str = "q") -> QLike:
    """q as a float (scalar input) or float64 array, checked to be finite and > 0."""
    arr = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"{name} must be a finite number > 0 (a second moment), got {q!r}")
    return float(arr) if arr.ndim == 0 else arr


def _quadrature(kinks: tuple[float, ...], q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w, shape (len(q), points), with sum(w * g(z)) = E[g(z)], z ~ N(0,1)."""
    root_q = np.sqrt(q)[:, None]
    edges = np.concatenate(
        [
            np.broadcast_to(_Z_EDGES, (len(q), len(_Z_EDGES))),
            _X_EDGES / root_q,
            np.asarray(kinks, dtype=np.float64).reshape(1, -1) / root_q,
        ],
        axis=1,
    )
    edges = np.sort(np.clip(edges, -_Z_MAX, _Z_MAX), axis=1)
    half = 0.5 * (edges[:, 1:] - edges[:, :-1])[..., None]
    middle = 0.5 * (edges[:, 1:] + edges[:, :-1])[..., None]
    z = middle + half * _GL_NODES
    w = half * _GL_WEIGHTS * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z.reshape(len(q), -1), w.reshape(len(q), -1)


def _nodes(act: ActivationFunction, q: QLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points x ~ N(0, q) and weights w, shape (q.size, points): E[g(x)] = sum(w * g(x), axis=1)."""
    flat_q = np.atleast_1d(q).ravel()
    z, w = _quadrature(act.kinks, flat_q)
    return flat_q, np.sqrt(flat_q)[:, None] * z, w


def _shaped(values: np.ndarray, q: QLike) -> QLike:
    """One value per q, as a float for a scalar q and in q's shape otherwise."""
    return float(values[0]) if np.ndim(q) == 0 else values.reshape(np.shape(q))


def gaussian_moments(act: Act, q: Any = 1.0) -> GaussianMoments:
    """THEORY E1-E4: m1 = E[phi(x)], m2 = E[phi(x)^2], v = m2 - m1^2, d2 = E[phi'(x)^2].

    x = sqrt(q) z with z ~ N(0, 1), i.e. x ~ N(0, q). ``q`` may be an array: the results then
    have its shape. Accurate to about 1e-12 for every registered activation (kinks included).
    """
    act = activations.get(act)
    q = _as_q(q)
    _, x, w = _nodes(act, q)
    phi, dphi = act.f(x), act.df(x)
    m1 = np.sum(w * phi, axis=1)
    m2 = np.sum(w * phi * phi, axis=1)
    v = np.sum(w * (phi - m1[:, None]) ** 2, axis=1)  # two-pass: no cancellation in m2 - m1^2
    d2 = np.sum(w * dphi * dphi, axis=1)
    return GaussianMoments(*(_shaped(values, q) for values in (m1, m2, v, d2)))


# --- E5-E7: the two gains and their ratio ----------------------------------------------------------


def rho(act: Act, q: Any = 1.0) -> QLike:
    """THEORY E5: forward gain rho(q) = m2(q) / q."""
    q = _as_q(q)
    return gaussian_moments(act, q).m2 / q


def rho_c(act: Act, q: Any = 1.0) -> QLike:
    """THEORY E5 (centred): rho_c(q) = v(q) / q."""
    q = _as_q(q)
    return gaussian_moments(act, q).v / q


def rho_prime(act: Act, q: Any = 1.0) -> QLike:
    """THEORY E6: backward gain rho'(q) = d2(q)."""
    return gaussian_moments(act, q).d2


def kappa(act: Act, q: Any = 1.0) -> QLike:
    """THEORY E7: kappa(q) = rho'(q) / rho(q)."""
    q = _as_q(q)
    m = gaussian_moments(act, q)
    return m.d2 * q / m.m2
