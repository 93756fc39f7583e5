"""Gradient checking: compare backward() with central finite differences in float64.

For a function ``f`` with tensor output ``y`` and a random cotangent ``u`` (same shape as ``y``),
backward gives the vector-Jacobian product ``u^T J``. Finite differences of the scalar
``s(x) = <u, f(x)>`` give the same thing numerically:

- elementwise mode: ``ds/dx_j ~ (s(x + eps e_j) - s(x - eps e_j)) / (2 eps)`` for every element;
- direction mode (for large inputs): ``<u^T J, v> ~ (s(x + eps v) - s(x - eps v)) / (2 eps)`` for a
  few random tangents ``v``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinynormact.engine import backend
from tinynormact.engine.autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """A backward gradient disagrees with finite differences."""


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    mode: str = "auto",
    n_directions: int = 6,
    max_elementwise: int = 200,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s backward against central finite differences; raise GradcheckError if off.

    Every floating input is checked, except Tensors created with ``requires_grad=False``, which
    are constants; non-floating inputs (integer indices, labels) are passed through. The check
    runs on float64 copies of the inputs. ``mode`` is "elementwise", "directions" or "auto"
    (elementwise when an input has at most ``max_elementwise`` elements). Returns True.
    """
    if mode not in ("auto", "elementwise", "directions"):
        raise ValueError(f"gradcheck mode must be 'auto', 'elementwise' or 'directions', got {mode!r}")
    args, checked = _prepare(inputs)
    if not checked:
        raise ValueError("gradcheck: no floating input to check (all are constants or integers)")
    rng = backend.default_rng(seed)
    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    cotangent = backend.asarray(rng.standard_normal(out.shape), dtype="float64", device=out.device)
    for i in checked:
        args[i].grad = None
    out.backward(cotangent)
    xp = backend.get_array_module(cotangent)

    def objective() -> float:
        with no_grad():
            return float((fn(*args).data.astype("float64") * cotangent).sum())

    for i in checked:
        x = args[i]
        analytic = x.grad if x.grad is not None else xp.zeros_like(x.data)
        elementwise = mode == "elementwise" or (mode == "auto" and x.size <= max_elementwise)
        if elementwise:
            _check_elements(objective, x, analytic, i, eps, atol, rtol)
        else:
            _check_directions(objective, x, analytic, i, eps, atol, rtol, n_directions, rng)
    return True


def _prepare(inputs: tuple[Any, ...]) -> tuple[list[Any], list[int]]:
    """float64 leaf copies of the floating inputs, and the positions to check."""
    args: list[Any] = []
    checked: list[int] = []
    for i, value in enumerate(inputs):
        constant = isinstance(value, Tensor) and not value.requires_grad
        if isinstance(value, Tensor):
            data = value.data
        elif hasattr(value, "dtype"):
            data = backend.asarray(value)
        else:  # Python numbers and lists: NumPy's float64, not the float32 default of tensors
            data = backend.asarray(backend.np.asarray(value))
        if data.dtype.kind != "f":
            args.append(value)
            continue
        args.append(Tensor(data.astype("float64"), requires_grad=not constant))
        if not constant:
            checked.append(i)
    return args, checked


def _close(numeric: float, analytic: float, atol: float, rtol: float) -> bool:
    return abs(numeric - analytic) <= atol + rtol * max(abs(numeric), abs(analytic))


def _check_elements(
    objective: Callable[[], float], x: Tensor, analytic: Any, i: int, eps: float, atol: float, rtol: float
) -> None:
    flat = x.data.reshape(-1)  # a view: perturbing it perturbs the input
    grad = backend.to_numpy(analytic).reshape(-1)
    for j in range(flat.size):
        original = float(flat[j])
        flat[j] = original + eps
        plus = objective()
        flat[j] = original - eps
        minus = objective()
        flat[j] = original
        numeric = (plus - minus) / (2 * eps)
        if not _close(numeric, float(grad[j]), atol, rtol):
            index = tuple(int(k) for k in backend.np.unravel_index(j, x.shape))
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}) at index {index}: "
                f"finite differences give {numeric:.10g}, backward gives {float(grad[j]):.10g}"
            )


def _check_directions(
    objective: Callable[[], float],
    x: Tensor,
    analytic: Any,
    i: int,
    eps: float,
    atol: float,
    rtol: float,
    n_directions: int,
    rng: Any,
) -> None:
    original = x.data.copy()
    for k in range(n_directions):
        tangent = backend.asarray(rng.standard_normal(x.shape), dtype="float64", device=x.device)
        x.data[...] = original + eps * tangent
        plus = objective()
        x.data[...] = original - eps * tangent
        minus = objective()
        x.data[...] = original
        numeric = (plus - minus) / (2 * eps)
        expected = float((analytic * tangent).sum())
        if not _close(numeric, expected, atol, rtol):
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}) along random direction {k}: "
                f"finite differences give {numeric:.10g}, backward gives {expected:.10g}"
            )
