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

Which batch gains E16 reads (``estimate``; THEORY E23-E29 derive what each does to q):

- ``"batch"``: the raw batch moments above. The layer passes its input's scale through (the
  forward rule's q-map is the identity, E23), so nothing pulls q back when training moves the
  weights, and a layer whose units leave the Gaussian shape (dead or saturated) drives rho'_b to
  its floor and lambda to the ceiling 1/sqrt(eps) (E27).
- ``"gaussian"``: the Gaussian gains at the batch's q_b = mean(h^2) (E24): lambda is a smooth
  function of q_b alone, so no batch shape can send it to the ceiling; the q-map is E23's.
- ``"output"``: the gains that bring the output's second moment to the static form's at q
  (E25): lambda_b^2 mean(phi^2) = lambda_static^2 m2(q). The next layer's q no longer depends on
  this layer's input scale (slope 0, E26): a restoring force like batch normalization's.

Centring (``center``): mu is removed (E12-E16's centred gains). Its default (None) depends on the
mode: on for the adaptive form, off for the static one. The adaptive form's default reading is
the output estimate, centred: of the readings the study compared it trained in every
configuration with the highest accuracy (docs/THEORY.md, "E16 in practice").

``lambda_bound = c`` (0: none) keeps lambda within [lambda_static / c, c lambda_static] (E28).

``units = C`` (0: one lambda per layer) gives each of the C units of axis 1 (an MLP's features,
a CNN's channels) a lambda of its own: every mean above is taken over the other axes (the batch,
and a CNN's positions), and the running estimates are C-vectors. One unit whose inputs leave the
Gaussian shape then moves only its own lambda, not the layer's; C must match the input's axis 1.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from tinynormact import theory
from tinynormact.engine import backend, ops
from tinynormact.engine.autograd import Tensor
from tinynormact.engine.backend import np
from tinynormact.infra.validation import check_integer
from tinynormact.nn.layers import Activation
from tinynormact.nn.module import Parameter
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction

MODES = ("static", "adaptive")
TRAIN_STATISTICS = ("batch", "running")
ESTIMATES = ("batch", "gaussian", "output")
_TANH = activations.get("tanh")
_TABLE_Q = np.logspace(-6.0, 6.0, 24 * 12 + 1)  # the Gaussian reading's q grid, 24 per decade


class NormalizedActivation(Activation):
    """phi_hat(h) = lambda * (phi(h) - mu) with lambda from a normalization rule (THEORY E12-E16).

    ``base`` is an activation name ("swish") or an ActivationFunction; ``params`` are the base
    activation's parameters (e.g. beta=2.0). See the module docstring for the modes and for
    ``estimate`` and ``lambda_bound``. ``lambda_`` and ``mu`` are the values evaluation mode uses;
    ``last_lambda`` is what the last forward multiplied by (the tracker records it).
    """

    def __init__(
        self,
        base: str | ActivationFunction,
        mode: str = "static",
        rule: str = "balanced",
        center: bool | None = None,
        q: float = 1.0,
        momentum: float = 0.9,
        differentiate_lambda: bool = False,
        train_statistics: str = "batch",
        learnable_correction: bool = False,
        correction_scale: float = 0.3,
        eps: float = 1e-8,
        estimate: str = "output",
        lambda_bound: float = 0.0,
        units: int = 0,
        **params: Any,
    ) -> None:
        center = resolve_center(center, mode)
        _check_flags(center=center, learnable_correction=learnable_correction)
        _check_options(
            mode,
            rule,
            q,
            momentum,
            differentiate_lambda,
            train_statistics,
            correction_scale,
            eps,
            estimate,
            lambda_bound,
            units,
        )
        base_function = activations.get(base, **params)
        lam, mu = theory.normalization(base_function, rule, q, center)
        super().__init__(activations.affine(base_function, lam, mu))  # the form at q (init gains use it)
        self.base = base_function
        self.mode, self.rule, self.center = mode, rule, bool(center)
        self.q, self.momentum, self.eps = float(q), float(momentum), float(eps)
        self.differentiate_lambda, self.train_statistics = bool(differentiate_lambda), train_statistics
        self.estimate, self.lambda_bound, self.units = estimate, float(lambda_bound), int(units)
        self.correction_scale = float(correction_scale)
        self.static_lambda, self.static_mu = float(lam), float(mu)
        if mode == "adaptive":
            moments = theory.gaussian_moments(self.base, q)
            self._gaussian_spread = float(moments.v if center else moments.m2)  # s(q) of E25
            self._gaussian_d2 = float(moments.d2)
            # float64 whatever the network's dtype: scalars (C-vectors with units), averaged over many steps
            start = {"running_rho": self._gaussian_spread / q, "running_rho_prime": moments.d2}
            if center:
                start["running_mu"] = moments.m1
            for name, value in start.items():
                self.register_buffer(name, Tensor(np.full(units or (), value), dtype="float64"))
            self._table = _gaussian_table(self.base, center) if estimate == "gaussian" else None
        self.correction = Parameter(0.0) if learnable_correction else None
        self.last_lambda: Any = None  # what the last forward multiplied by: float, 0-d array or Tensor

    # ----- the values used in evaluation mode -------------------------------------------------
    def _eval_lambda_and_mu(self, dtype: Any = None, ndim: int = 2) -> tuple[Any, Any]:
        """(lambda, mu) before the correction: static constants (floats), or from the running
        estimates (0-d arrays on the buffers' device, shaped for an ``ndim``-d input with
        ``units``, in ``dtype`` if given: no host sync)."""
        if self.mode == "static":
            return self.static_lambda, self.static_mu
        lam = self._lambda(self.running_rho.data, self.running_rho_prime.data)
        mu = self.running_mu.data if self.center else 0.0
        if dtype is not None:
            lam, mu = lam.astype(dtype), (mu.astype(dtype) if self.center else mu)
        if self.units:
            shape = (1, self.units) + (1,) * (ndim - 2)
            lam, mu = lam.reshape(shape), (mu.reshape(shape) if self.center else mu)
        return lam, mu

    def _lambda(self, rho: Any, rho_prime: Any) -> Any:
        """The rule (E12-E14) on the floored gains, held within ``lambda_bound`` of the static
        lambda (E28) when a bound is set."""
        lam = floored_lambda(self.rule, rho, rho_prime, self.eps)
        if not self.lambda_bound:
            return lam
        return lam.clip(self.static_lambda / self.lambda_bound, self.static_lambda * self.lambda_bound)

    @property
    def lambda_(self) -> float:
        """The lambda of evaluation mode, the learnable correction included (a host sync; with
        ``units``, the mean over the units)."""
        lam = self._eval_lambda_and_mu()[0]
        lam = float(lam.mean() if self.units else lam)
        if self.correction is not None:
            lam += self.correction_scale * math.tanh(float(self.correction.data))
        return lam

    @property
    def mu(self) -> float:
        """The mu of evaluation mode (0 without centring; a host sync; with ``units``, the mean)."""
        mu = self._eval_lambda_and_mu()[1]
        return float(mu.mean()) if self.units and self.center else float(mu)

    # ----- forward ----------------------------------------------------------------------------
    def forward(self, x: Any) -> Tensor:
        x = ops.as_tensor(x)
        if self.mode == "static" and self.correction is None:  # one fused node, lambda inside phi'
            self.last_lambda = self.static_lambda
            return ops.activation(x, self.function)
        phi = ops.activation(x, self.base)
        if self.mode == "adaptive" and self.training:
            lam, mu = self._training_lambda_and_mu(x, phi)
        else:
            self._check_units(x)
            lam, mu = self._eval_lambda_and_mu(x.dtype, x.ndim)
        if self.correction is not None:
            lam = lam + self.correction_scale * ops.activation(self.correction, _TANH)
        self.last_lambda = lam
        return (phi - mu if self.center else phi) * lam

    def _training_lambda_and_mu(self, x: Tensor, phi: Tensor) -> tuple[Any, Any]:
        """E16 in training: the batch's gains (by ``estimate``) update the running estimates;
        lambda and mu then come from the batch's gains or from the running ones."""
        rho, rho_prime, mu = self._batch_gains(x, phi)
        self._update_running(rho, rho_prime, mu)
        if self.train_statistics == "running":
            return self._eval_lambda_and_mu(x.dtype, x.ndim)
        return self._lambda(rho, rho_prime), (mu if self.center else 0.0)

    def _check_units(self, x: Tensor) -> None:
        if self.units and (x.ndim < 2 or x.shape[1] != self.units):
            found = f"{x.shape[1]} units on axis 1" if x.ndim >= 2 else "no axis 1"
            raise ValueError(f"units={self.units}, but the input of shape {tuple(x.shape)} has {found}")

    def _axes(self, x: Tensor) -> tuple[int, ...] | None:
        """The axes E16's means run over: all (None), or with ``units`` all but axis 1."""
        self._check_units(x)
        return (0, *range(2, x.ndim)) if self.units else None

    def _batch_gains(self, x: Tensor, phi: Tensor) -> tuple[Any, Any, Any]:
        """(rho, rho', mu) of the batch (THEORY E16, E24, E25), Tensors in the graph with
        ``differentiate_lambda``, else constant arrays."""
        axes = self._axes(x)
        if self.estimate == "gaussian":
            return gaussian_gains(self._table, x.data, self.eps, axes)
        differentiable = self.differentiate_lambda
        h, value = (x, phi) if differentiable else (x.data, phi.data)
        if self.estimate == "output":
            return output_gains(value, self.center, self.q, self._gaussian_spread, self._gaussian_d2, axes)
        slope = ops.activation(x, _derivative(self.base)) if differentiable else self.base.df(x.data)
        return batch_gains(h, value, slope, self.center, self.eps, axes)

    def _update_running(self, rho: Any, rho_prime: Any, mu: Any) -> None:
        pairs = [(self.running_rho, rho), (self.running_rho_prime, rho_prime)]
        if self.center:
            pairs.append((self.running_mu, mu))
        m = self.momentum
        for buffer, value in pairs:
            value = value.data if isinstance(value, Tensor) else value
            xp = backend.get_array_module(buffer.data)
            value = xp.reshape(value, buffer.shape)  # a unit's statistics, kept with its axis 1 only
            buffer.data = xp.asarray(m * buffer.data + (1.0 - m) * value, dtype=buffer.dtype)

    def extra_repr(self) -> str:
        units = f", units={self.units}" if self.units else ""
        return (
            f"{self.base!r}, mode={self.mode}, rule={self.rule}, center={self.center}, "
            f"lambda={self.lambda_:.4f}{units}"
        )


def batch_gains(
    h: Any, phi: Any, dphi: Any, center: bool, eps: float, axes: tuple[int, ...] | None = None
) -> tuple[Any, Any, Any]:
    """THEORY E16 batch statistics (rho_b, rho'_b, mu_b) over all elements, or per unit over
    ``axes`` (kept as length-1 axes, so they broadcast against the input).

    Works alike on arrays (constants) and on Tensors (differentiable): only ``*``, ``/``,
    ``mean``, ``var`` and ``clip`` are used. mean(h^2) is floored at ``eps``.
    """
    over = {"axis": axes, "keepdims": axes is not None}
    spread = phi.var(**over) if center else (phi * phi).mean(**over)
    rho = spread / (h * h).mean(**over).clip(eps)
    return rho, (dphi * dphi).mean(**over), phi.mean(**over)


def output_gains(
    phi: Any, center: bool, q: float, spread: float, d2: float, axes: tuple[int, ...] | None = None
) -> tuple[Any, Any, Any]:
    """THEORY E25, the gains that bring the output to the static form's second moment: the
    Gaussian gains at the layer's q, (s(q)/q, d2(q)), scaled by the batch's s_b / s(q), where
    s_b = mean(phi^2) (centred: var(phi)) and s(q) its Gaussian value. Every rule's lambda
    scales as the inverse square root of a common factor of the gains, so lambda_b^2 s_b equals
    the static lambda^2 s(q): the output's second moment is held whatever q_b is. Per unit over
    ``axes`` as in ``batch_gains``."""
    over = {"axis": axes, "keepdims": axes is not None}
    spread_b = phi.var(**over) if center else (phi * phi).mean(**over)
    return spread_b / q, spread_b * (d2 / spread), phi.mean(**over)


def gaussian_gains(
    table: tuple[Any, ...], h: Any, eps: float, axes: tuple[int, ...] | None = None
) -> tuple[Any, Any, Any]:
    """THEORY E24: the Gaussian gains (rho(q_b) (centred rho_c), rho'(q_b), m1(q_b)) at the
    batch's q_b = mean(h^2) (per unit over ``axes`` as in ``batch_gains``), interpolated
    linearly in log q on ``_gaussian_table``'s grid (relative error below 1e-4; q_b is held
    within 1e-6 to 1e6)."""
    xp = backend.get_array_module(h)
    log_q = xp.log(xp.maximum((h * h).mean(axis=axes, keepdims=axes is not None), eps))
    grid, log_rho, log_rho_prime, m1 = (xp.asarray(column) for column in table)
    rho, rho_prime = (xp.exp(xp.interp(log_q, grid, column)) for column in (log_rho, log_rho_prime))
    return rho, rho_prime, xp.interp(log_q, grid, m1)


def _gaussian_table(act: ActivationFunction, center: bool) -> tuple[np.ndarray, ...]:
    """(log q, log rho (centred rho_c), log rho', m1) on ``_TABLE_Q`` (E1-E6)."""
    moments = theory.gaussian_moments(act, _TABLE_Q)
    spread = moments.v if center else moments.m2
    tiny = np.finfo(np.float64).tiny
    return (
        np.log(_TABLE_Q),
        np.log(np.maximum(spread / _TABLE_Q, tiny)),
        np.log(np.maximum(moments.d2, tiny)),
        moments.m1,
    )


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
    estimate: str = "output",
    lambda_bound: float = 0.0,
    units: int = 0,
) -> None:
    numbers = {
        "q": q,
        "momentum": momentum,
        "correction_scale": correction_scale,
        "eps": eps,
        "lambda_bound": lambda_bound,
    }
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a real number, got {value!r}")
    _check_flags(differentiate_lambda=differentiate_lambda)
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
    if estimate not in ESTIMATES:
        raise ValueError(f"unknown estimate {estimate!r}; valid: {', '.join(ESTIMATES)}")
    if differentiate_lambda and estimate == "gaussian":
        raise ValueError(
            "differentiate_lambda=True needs estimate='batch' or 'output' (the Gaussian reading "
            "interpolates a table, which has no gradient)"
        )
    if not (math.isfinite(lambda_bound) and (lambda_bound == 0 or lambda_bound >= 1)):
        raise ValueError(f"lambda_bound must be 0 (no bound) or a finite number >= 1, got {lambda_bound!r}")
    check_integer("units", units, 0)  # 0: one lambda per layer
    if units and mode != "adaptive":
        raise ValueError(f"units={units} needs mode='adaptive' (a static lambda is the same for every unit)")
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


def resolve_center(center: Any, mode: str) -> Any:
    """``center``, or for None its default in ``mode``: True for "adaptive", False for "static"
    (any other value is returned as given, for the caller's check to name)."""
    return mode == "adaptive" if center is None else center


def check_normalization_options(**options: Any) -> None:
    """ValueError naming the first invalid option of ``NormalizedActivation(base, **options)``,
    without building one (a static layer integrates its Gaussian moments, E1-E4, to set lambda)."""
    values = {**normalization_options(), **options}
    values["center"] = resolve_center(values["center"], values["mode"])
    _check_flags(**{name: values.pop(name) for name in ("center", "learnable_correction")})
    _check_options(**values)


def _check_flags(**flags: Any) -> None:
    """ValueError naming the first option that is not a boolean (the string "false" is truthy)."""
    for name, value in flags.items():
        if not isinstance(value, (bool, backend.np.bool_)):
            raise ValueError(f"{name} must be true or false, got {value!r}")
