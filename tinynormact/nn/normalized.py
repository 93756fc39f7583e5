"""NormalizedActivation: phi_hat(h) = lambda * (phi(h) - mu), static or adaptive (THEORY E12-E16).

This is a reconstruction of arXiv 2208.13315 (see docs/THEORY.md); the rule, centring and the
stop-gradient are options the user picks.

Static (E15): lambda and mu are computed once from the Gaussian moments at q (default 1) with
``theory.normalization``: forward rule E12, backward rule E13, balanced rule E14 (the default);
with centring mu = m1(q), else 0.

Adaptive (E16, the paper's v3 "ANAct"). Over all elements of a batch h (one lambda per layer):

    rho_b  = mean(phi(h)^2) / mean(h^2)      (centred: var(phi(h)) / mean(h^2))
    rho'_b = mean(phi'(h)^2)
    mu_b   = mean(phi(h))                    (used only when centring)
    lambda_b = the rule (E12-E14) applied to (rho_b, rho'_b)

- Training mode updates the running estimates ``running = momentum * running + (1 - momentum) *
  batch`` of rho, rho' (and mu when centring), then, with ``train_statistics="batch"`` (the
  default, like batch normalization), applies the batch values lambda_b and mu_b; with
  ``train_statistics="running"`` it applies lambda and mu from the just-updated running
  estimates. THEORY.md's E16 ("running estimates with momentum used for lambda") reads either
  way; the choice is the user's (docs/THEORY.md, E16 in practice).
- Evaluation mode uses lambda and mu computed from the running estimates, and updates nothing.
- The running estimates start at the Gaussian values at q (rho(q) or rho_c(q), rho'(q), m1(q)),
  so an untrained model in evaluation mode equals the static normalization at q.
- By default lambda_b and mu_b are constants in backward (computed from the data, outside the
  graph). ``differentiate_lambda=True`` builds them from differentiable ops, so gradients also
  flow through the batch statistics; phi'' (needed for rho'_b) is taken by central differences
  of phi', and is 0 at kinks.
- ``learnable_correction=True`` (either mode) adds a bounded learnable term:
  lambda_eff = lambda + correction_scale * tanh(alpha), with the Parameter alpha starting at 0.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from tinynormact import theory
from tinynormact.engine import backend, ops
from tinynormact.engine.autograd import Tensor
from tinynormact.nn.layers import Activation
from tinynormact.nn.module import Parameter
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction

MODES = ("static", "adaptive")
TRAIN_STATISTICS = ("batch", "running")
_TANH = activations.get("tanh")


class NormalizedActivation(Activation):
    """phi_hat(h) = lambda * (phi(h) - mu) with lambda from a normalization rule (THEORY E12-E16).

    ``base`` is an activation name ("swish") or an ActivationFunction; ``params`` are the base
    activation's parameters (e.g. beta=2.0). See the module docstring for the modes.
    ``lambda_`` and ``mu`` are the values evaluation mode uses.
    """

    def __init__(
        self,
        base: str | ActivationFunction,
        mode: str = "static",
        rule: str = "balanced",
        center: bool = False,
        q: float = 1.0,
        momentum: float = 0.9,
        differentiate_lambda: bool = False,
        train_statistics: str = "batch",
        learnable_correction: bool = False,
        correction_scale: float = 0.3,
        eps: float = 1e-8,
        **params: Any,
    ) -> None:
        super().__init__(base, **params)
        _check_options(mode, rule, q, momentum, differentiate_lambda, train_statistics, correction_scale, eps)
        self.train_statistics = train_statistics
        self.base = self.function
        self.mode, self.rule, self.center = mode, rule, bool(center)
        self.q, self.momentum, self.eps = float(q), float(momentum), float(eps)
        self.differentiate_lambda = bool(differentiate_lambda)
        self.correction_scale = float(correction_scale)
        lam, mu = theory.normalization(self.base, rule, q, center)
        self.static_lambda, self.static_mu = float(lam), float(mu)
        self.function = activations.affine(self.base, lam, mu)
        if mode == "adaptive":
            moments = theory.gaussian_moments(self.base, q)
            # float64 whatever the network's dtype: three scalars, averaged over many steps
            self.register_buffer(
                "running_rho", Tensor((moments.v if center else moments.m2) / q, dtype="float64")
            )
            self.register_buffer("running_rho_prime", Tensor(moments.d2, dtype="float64"))
            if center:
                self.register_buffer("running_mu", Tensor(moments.m1, dtype="float64"))
        self.correction = Parameter(0.0) if learnable_correction else None
        self.last_lambda: Any = None  # what the last forward multiplied by: float, 0-d array or Tensor

    # ----- the values used in evaluation mode -------------------------------------------------
    def _eval_lambda_and_mu(self, dtype: Any = None) -> tuple[Any, Any]:
        """(lambda, mu) before the correction: static constants (floats), or from the running
        estimates (0-d arrays on the buffers' device, in ``dtype`` if given: no host sync)."""
        if self.mode == "static":
            return self.static_lambda, self.static_mu
        lam = floored_lambda(self.rule, self.running_rho.data, self.running_rho_prime.data, self.eps)
        mu = self.running_mu.data if self.center else 0.0
        if dtype is not None:
            lam, mu = lam.astype(dtype), (mu.astype(dtype) if self.center else mu)
        return lam, mu

    @property
    def lambda_(self) -> float:
        """The lambda of evaluation mode, the learnable correction included (a host sync)."""
        lam, _ = self._eval_lambda_and_mu()
        lam = float(lam)
        if self.correction is not None:
            lam += self.correction_scale * math.tanh(float(self.correction.data))
        return lam

    @property
    def mu(self) -> float:
        """The mu of evaluation mode (0 without centring; a host sync)."""
        return float(self._eval_lambda_and_mu()[1])

    # ----- forward ----------------------------------------------------------------------------
    def forward(self, x: Any) -> Tensor:
        x = ops.as_tensor(x)
        if self.mode == "adaptive" and self.training:
            phi = ops.activation(x, self.base)
            lam, mu = self._batch_lambda_and_mu(x, phi)
            if self.train_statistics == "running":
                lam, mu = self._eval_lambda_and_mu(x.dtype)
        else:
            lam, mu = self._eval_lambda_and_mu(x.dtype)
            if self.mode == "static" and self.correction is None:  # one fused node, lambda inside phi'
                self.last_lambda = lam
                return ops.activation(x, self.function)
            phi = ops.activation(x, self.base)
        if self.correction is not None:
            lam = lam + self.correction_scale * ops.activation(self.correction, _TANH)
        self.last_lambda = lam
        return (phi - mu if self.center else phi) * lam

    def _batch_lambda_and_mu(self, x: Tensor, phi: Tensor) -> tuple[Any, Any]:
        """lambda_b and mu_b of E16 (Tensors in the graph, or constant arrays), and the running
        update."""
        if self.differentiate_lambda:
            dphi = ops.activation(x, _derivative(self.base))
            rho, rho_prime, mu = batch_gains(x, phi, dphi, self.center, self.eps)
        else:
            rho, rho_prime, mu = batch_gains(x.data, phi.data, self.base.df(x.data), self.center, self.eps)
        self._update_running(rho, rho_prime, mu)
        lam = floored_lambda(self.rule, rho, rho_prime, self.eps)
        return lam, (mu if self.center else 0.0)

    def _update_running(self, rho: Any, rho_prime: Any, mu: Any) -> None:
        pairs = [(self.running_rho, rho), (self.running_rho_prime, rho_prime)]
        if self.center:
            pairs.append((self.running_mu, mu))
        m = self.momentum
        for buffer, value in pairs:
            value = value.data if isinstance(value, Tensor) else value
            xp = backend.get_array_module(buffer.data)
            buffer.data = xp.asarray(m * buffer.data + (1.0 - m) * value, dtype=buffer.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.base!r}, mode={self.mode}, rule={self.rule}, center={self.center}, "
            f"lambda={self.lambda_:.4f}"
        )


def batch_gains(h: Any, phi: Any, dphi: Any, center: bool, eps: float) -> tuple[Any, Any, Any]:
    """THEORY E16 batch statistics (rho_b, rho'_b, mu_b) over all elements.

    Works alike on arrays (constants) and on Tensors (differentiable): only ``*``, ``/``,
    ``mean``, ``var`` and ``clip`` are used. mean(h^2) is floored at ``eps``.
    """
    spread = phi.var() if center else (phi * phi).mean()
    rho = spread / (h * h).mean().clip(eps)
    return rho, (dphi * dphi).mean(), phi.mean()


def floored_lambda(rule: str, rho: Any, rho_prime: Any, eps: float) -> Any:
    """``theory.lambda_from_gains`` (E12-E14) with the gains (arrays or Tensors) floored at ``eps``."""
    return theory.lambda_from_gains(rule, rho.clip(eps), rho_prime.clip(eps))


def _derivative(act: ActivationFunction) -> ActivationFunction:
    """phi' as an activation, whose own derivative phi'' is a central difference of phi'
    (step eps^(1/3) * (1 + |x|), 0 within a step of a kink)."""

    def second_derivative(x: Any) -> Any:
        xp = backend.get_array_module(x)
        step = float(backend.np.finfo(x.dtype).eps) ** (1.0 / 3.0) * (1.0 + xp.abs(x))
        slope = (act.df(x + step) - act.df(x - step)) / (2.0 * step)
        for kink in act.kinks:
            slope = xp.where(xp.abs(x - kink) < step, 0.0, slope)
        return slope.astype(x.dtype)

    return ActivationFunction(f"{act.name}'", dict(act.params), act.df, second_derivative, act.kinks)


def _check_options(
    mode: str,
    rule: str,
    q: float,
    momentum: float,
    differentiate_lambda: bool,
    train_statistics: str,
    correction_scale: float,
    eps: float,
) -> None:
    numbers = {"q": q, "momentum": momentum, "correction_scale": correction_scale, "eps": eps}
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a real number, got {value!r}")
    if mode not in MODES:
        raise ValueError(f"unknown normalization mode {mode!r}; valid: {', '.join(MODES)}")
    if rule not in theory.RULES:
        raise ValueError(f"unknown normalization rule {rule!r}; valid: {', '.join(theory.RULES)}")
    if not (math.isfinite(q) and q > 0):
        raise ValueError(f"q must be a finite number > 0 (a second moment), got {q!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if differentiate_lambda and mode != "adaptive":
        raise ValueError("differentiate_lambda=True needs mode='adaptive' (a static lambda is a constant)")
    if not (math.isfinite(correction_scale) and correction_scale >= 0):
        raise ValueError(f"correction_scale must be a finite number >= 0, got {correction_scale!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if train_statistics not in TRAIN_STATISTICS:
        valid = ", ".join(TRAIN_STATISTICS)
        raise ValueError(f"unknown train_statistics {train_statistics!r}; valid: {valid}")
    if differentiate_lambda and train_statistics == "running":
        raise ValueError(
            "differentiate_lambda=True needs train_statistics='batch' (running values are constants)"
        )


def normalization_options() -> dict[str, Any]:
    """NormalizedActivation's own options (beyond the base activation's parameters) with their
    defaults."""
    signature = inspect.signature(NormalizedActivation.__init__).parameters.values()
    keyword = [p for p in signature if p.kind is p.POSITIONAL_OR_KEYWORD]
    return {p.name: p.default for p in keyword if p.default is not p.empty}


def check_normalization_options(**options: Any) -> None:
    """ValueError naming the first invalid option of ``NormalizedActivation(base, **options)``,
    without building one (a static layer integrates its Gaussian moments, E1-E4, to set lambda)."""
    values = {**normalization_options(), **options}
    del values["center"], values["learnable_correction"]  # any value is read as a bool
    _check_options(**values)
