"""One place for each rule (``tinynormact.infra.validation``): every count the package takes is
checked by ``check_integer``, with one behaviour (ints and NumPy ints pass; bools, floats, 3.0
included, and strings fail) and one message, "<name> must be an integer >= <low>, got <value>".

The oracle is the rule as the module docstring states it, applied to each public entry point; a
source scan also finds hand-written integer checks outside the validation module, and is shown
to catch a planted one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import tinynormact as tn
from tinynormact.engine.convolution import as_tuple
from tinynormact.experiments.executors import open_executor
from tinynormact.experiments.grid import GridError
from tinynormact.experiments.presets import PRESETS
from tinynormact.infra import validation
from tinynormact.train import ConfigError, TrainConfig

PACKAGE = Path(tn.__file__).parent


def _linear(n):
    return tn.nn.Linear(n, 2)


def _schedule(n):
    return tn.optim.StepLR(tn.optim.SGD([tn.nn.Parameter(np.zeros(2))], lr=0.1), step_size=n)


def _loader(n):
    data = tn.data.Dataset(np.zeros((4, 2)), np.zeros(4, dtype=np.int64), "zeros", 2)
    return tn.data.DataLoader(data, batch_size=n)


# (what, a call taking the count, the name its message uses)
SITES = [
    ("Linear", _linear, "Linear: in_features"),
    ("Conv2d", lambda n: tn.nn.Conv2d(n, 2, 3), "Conv2d: in_channels"),
    ("BatchNorm1d", lambda n: tn.nn.BatchNorm1d(n), "BatchNorm1d: num_features"),
    ("ResidualMLP", lambda n: tn.nn.ResidualMLP(2, 4, n, 2), "depth"),
    ("resnet1d", lambda n: tn.nn.resnet1d(8, 2, width=4, stages=(n,)), "blocks per stage"),
    ("StepLR", _schedule, "step_size"),
    ("DataLoader", _loader, "batch_size"),
    ("VarianceTracker", lambda n: tn.tracking.VarianceTracker(tn.nn.MLP([2, 2]), every=n), "every"),
    ("residual_profile", lambda n: tn.theory.residual_profile("tanh", 4, n), "depth"),
    ("ImageTransform", lambda n: tn.data.ImageTransform((0.0,), (1.0,), padding=n), "padding"),
    ("as_tuple", lambda n: as_tuple(n, 2, "stride"), "stride"),
    ("Grid.with_seeds", lambda n: PRESETS["quick"].with_seeds(n), "seeds"),
    ("TrainConfig", lambda n: TrainConfig(depth=n), "depth"),
]


@pytest.mark.parametrize("what, call, name", SITES, ids=[s[0] for s in SITES])
@pytest.mark.parametrize("bad", [True, 2.5, 3.0, "3", None])
def test_every_count_rejects_bools_floats_and_strings_with_one_message(what, call, name, bad) -> None:
    errors = (ValueError, ConfigError, GridError)
    low = 0 if name == "padding" else 1
    with pytest.raises(errors) as info:
        call(bad)
    expected = rf"{re.escape(name)} must be an integer >= {low}( or 2 of them)?, got {re.escape(repr(bad))}$"
    assert re.search(expected, str(info.value)), str(info.value)


@pytest.mark.parametrize("what, call, name", SITES, ids=[s[0] for s in SITES])
def test_every_count_takes_python_and_numpy_integers(what, call, name) -> None:
    call(2)
    call(np.int64(2))


def test_open_executor_checks_jobs_before_starting_anything() -> None:
    with pytest.raises(ValueError, match=r"^jobs must be an integer >= 1, got 2.0$"), open_executor(2.0):
        pass


def test_the_checks_name_the_value_and_what_is_valid() -> None:
    with pytest.raises(ValueError, match=r"^epoch must be an integer in \[0, 5\], got 6$"):
        validation.check_integer("epoch", 6, 0, 5)
    with pytest.raises(ConfigError, match=r"^lr must be a finite number > 0, got nan$"):
        validation.check_positive("lr", float("nan"), ConfigError)
    with pytest.raises(ValueError, match=r"^alpha must be a finite number >= 0, got True$"):
        validation.check_real("alpha", True, 0)
    with pytest.raises(ValueError, match=r"^rule 'fast' is unknown; valid: forward, backward$"):
        validation.check_choice("rule", "fast", ("forward", "backward"))
    for bad in (1, 0, "true", None):
        with pytest.raises(ValueError, match=rf"^center must be true or false, got {re.escape(repr(bad))}$"):
            validation.check_bool("center", bad)
    assert validation.check_bool("center", False) is False
    assert type(validation.check_integer("n", np.int32(3), 1)) is int
    assert validation.check_real("x", 2) == 2.0 and validation.check_positive("x", 0.5) == 0.5


_HAND_WRITTEN = re.compile(
    r"must be an integer|int\((\w+)\) != \1"
    r"|isinstance\(\w+, bool\) or not isinstance\(\w+, (int|\(int, np\.integer\))\)"
)


def hand_written_integer_checks(source: str) -> list[int]:
    """Lines of ``source`` (outside docstrings) that check an integer by hand."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    return [
        number
        for number, line in enumerate(source.splitlines(), 1)
        if number not in docstrings and _HAND_WRITTEN.search(line)
    ]


def test_no_module_checks_an_integer_by_hand() -> None:
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "validation.py" and (lines := hand_written_integer_checks(path.read_text()))
    }
    assert found == {}


def test_the_scan_finds_a_planted_hand_written_check() -> None:
    planted = (
        'def f(width):\n    """A width."""\n    if int(width) != width or width < 1:\n'
        '        raise ValueError(f"width must be an integer >= 1, got {width!r}")\n'
    )
    assert hand_written_integer_checks(planted) == [3, 4]
