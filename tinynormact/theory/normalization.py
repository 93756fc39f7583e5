"""THEORY E12-E15: the normalizing factor lambda and the shift mu of a normalized activation."""

from __future__ import annotations

from typing import Any, NamedTuple

from tinynormact.engine.backend import np
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction
from tinynormact.theory.moments import Act, GaussianMoments, QLike, _as_q, gaussian_moments

RULES = ("forward", "backward", "balanced")


class Normalization(NamedTuple):
    """phi_hat(x) = lambda * (phi(x) - mu) (THEORY E12-E15); ``lambda_`` because ``lambda`` is a
    Python keyword."""

    lambda_: QLike
    mu: QLike


def _check_rule(rule: str, what: str = "rule") -> str:
    if rule not in RULES:
        raise ValueError(f"unknown normalization {what} {rule!r}; valid: {', '.join(RULES)}")
    return rule


def lambda_from_gains(rule: str, rho: Any, rho_prime: Any) -> Any:
    """THEORY E12-E14: lambda from the two gains (centred: pass rho_c as ``rho``).

    E12 forward 1/sqrt(rho), E13 backward 1/sqrt(rho'), E14 balanced sqrt((1/rho + 1/rho') / 2).
    Only ``/``, ``+``, ``*`` and ``** 0.5`` are used, so the gains may be floats, arrays or
    Tensors (the adaptive layer in ``nn`` differentiates through this same function).
    """
    _check_rule(rule)
    if rule == "forward":
        lambda_squared = 1.0 / rho
    elif rule == "backward":
        lambda_squared = 1.0 / rho_prime
    else:
        lambda_squared = 0.5 * (1.0 / rho + 1.0 / rho_prime)
    return lambda_squared**0.5


def _lambda(m: GaussianMoments, q: QLike, rule: str, center: bool) -> QLike:
    """lambda from the Gaussian moments at q (rho_c when centred)."""
    return lambda_from_gains(rule, (m.v if center else m.m2) / q, m.d2)


def normalization(act: Act, rule: str = "balanced", q: Any = 1.0, center: bool = False) -> Normalization:
    """THEORY E12-E15: the scale lambda and shift mu of phi_hat = lambda * (phi - mu).

    shift = m1(q) when ``center`` else 0. Rules (weights of variance 1/fan_in):
    "forward" (E12) lambda = 1/sqrt(rho), with rho_c when centred, so that rho(phi_hat) = 1;
    "backward" (E13) lambda = 1/sqrt(rho'), so that rho'(phi_hat) = 1;
    "balanced" (E14) lambda^2 = (1/rho + 1/rho') / 2 (rho_c when centred), so that the mean of
    1/rho(phi_hat) and 1/rho'(phi_hat) is 1. E14 is the reading of the paper by its only public
    re-implementation, not a formula from the paper itself.
    """
    _check_rule(rule)
    q = _as_q(q)
    m = gaussian_moments(act, q)
    lam = _lambda(m, q, rule, center)
    return Normalization(float(lam) if np.ndim(lam) == 0 else lam, m.m1 if center else 0.0)


def normalized(act: Act, rule: str = "balanced", q: Any = 1.0, center: bool = False) -> ActivationFunction:
    """THEORY E15 (static normalization): the activation lambda * (phi - mu) fixed at ``q``."""
    if np.ndim(q) != 0:
        raise ValueError(f"normalized() needs one q, got an array of shape {np.shape(q)}")
    lam, mu = normalization(act, rule, q, center)
    return activations.affine(act, lam, mu)


def init_gain(act: Act, convention: str = "forward", q: Any = 1.0) -> QLike:
    """The gain g for weights of standard deviation g / sqrt(fan_in) that keep one signal critical.

    "forward": g = 1/sqrt(rho(q)) keeps E[h^2] = q layer after layer (E8 with weight_var = g^2);
    "backward": g = 1/sqrt(rho'(q)) keeps E[delta^2] (E9); "balanced" is E14's compromise.
    It is the uncentred lambda of ``normalization`` with the same rule: multiplying the next
    layer's weights by g and multiplying phi by g change every second moment identically.
    Examples at q = 1: relu sqrt(2) (He), identity 1, tanh forward 1.5925 (PyTorch's heuristic
    gain for tanh, 5/3, is a different convention).
    """
    _check_rule(convention, "convention")
    return normalization(act, convention, q).lambda_
