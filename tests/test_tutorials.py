"""The tutorials: each runs as a script in fast mode, is a valid percent-format notebook that
explains before it computes and ends with exercises, and is listed in tutorials/README.md.

Running a tutorial runs its assertions (hand-derived gradients, closed forms, Monte Carlo
checks with derived tolerances, the run folder of the reproduction, ...), so a passing script is
a passing set of checks. Fast mode (TINYNORMACT_TUTORIAL_FAST=1) shrinks the sizes; figures and
run folders go to a temporary folder (TINYNORMACT_TUTORIAL_OUT), generated data to a temporary
cache (TINYNORMACT_CACHE). 08_paper_comparison.py runs its sweep on two Dask worker processes
in fast mode too, which import the script again as they start (the path that crashed before it
had its ``__main__`` guards): the test watches the script's process tree and requires two
spawned worker processes, not just the executor's name in results.json. Tutorials run on the
device under test (TINYNORMACT_DEVICE): with ``--device strict`` through a launcher that first
registers the strict test device, which lives with the tests; 10_gpu.py also runs its GPU cells
where CuPy and a GPU are present.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

TUTORIALS_DIR = Path(__file__).resolve().parent.parent / "tutorials"
TUTORIALS = sorted(TUTORIALS_DIR.glob("[0-9][0-9]_*.py"))
SOLUTIONS = sorted((TUTORIALS_DIR / "solutions").glob("[0-9][0-9]_*.py"))
CELL_MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?\s*$")


def cells(path: Path) -> list[tuple[str, list[str]]]:
    """(kind, lines) of every cell of a percent-format file, kind "markdown" or "code"; the
    jupytext header before the first cell marker is skipped."""
    result: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        marker = CELL_MARKER.match(line)
        if marker:
            result.append(("markdown" if marker["markdown"] else "code", []))
        elif result:
            result[-1][1].append(line)
    return result


COURSE = [
    "01_autograd.py",
    "02_training.py",
    "03_gaussian_moments.py",
    "04_variance_through_depth.py",
    "05_normalized_activations.py",
    "06_tracking.py",
    "07_adaptive_form.py",
    "08_paper_comparison.py",
    "09_convolutional_networks.py",
    "10_gpu.py",
]


def test_all_tutorials_are_found() -> None:
    assert [p.name for p in TUTORIALS] == COURSE


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One temporary data cache shared by the tutorials (MNIST-1D is generated once)."""
    return tmp_path_factory.mktemp("tutorial-cache")


# Runs the tutorial given as argument as a script after registering the strict test device.
ON_STRICT_DEVICE = (
    "import runpy, sys; from tests import strict_device; strict_device.register(); "
    "sys.path.insert(0, sys.argv[1].rpartition('/')[0]); runpy.run_path(sys.argv[1], run_name='__main__')"
)


def run_in_fast_mode(path: Path, tmp_path: Path, data_cache: Path, device: str) -> set[int]:
    """Run the script ``path`` as a learner does, in fast mode, with its output in ``tmp_path``;
    the ids of the worker processes it spawned (multiprocessing's spawn, as Dask's nannies do)."""
    env = {
        **os.environ,
        "TINYNORMACT_TUTORIAL_FAST": "1",
        "TINYNORMACT_TUTORIAL_OUT": str(tmp_path),
        "TINYNORMACT_CACHE": str(data_cache),
        "MPLBACKEND": "Agg",
        "TINYNORMACT_DEVICE": device,
        "PYTHONPATH": os.pathsep.join([str(TUTORIALS_DIR.parent), os.environ.get("PYTHONPATH", "")]),
    }
    launch = ["-c", ON_STRICT_DEVICE] if device == "strict" else []
    command = [sys.executable, *launch, str(path)]
    log = tmp_path / "output.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
        spawned = spawned_children(process)
    text = log.read_text()
    assert process.returncode == 0, f"{path.name} failed:\n{text[-8000:]}"
    return spawned


def spawned_children(process: subprocess.Popen, hang_guard_s: float = 900.0) -> set[int]:
    """Wait for ``process``, meanwhile collecting the ids of its descendants started by
    multiprocessing's spawn method (their command line runs ``spawn_main``); a worker lives for
    the whole sweep, so polling every 50 ms sees each. Kills the process after ``hang_guard_s``."""
    import psutil  # a dependency of dask.distributed (test extra)

    root, seen = psutil.Process(process.pid), set()
    deadline = time.monotonic() + hang_guard_s
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"still running after {hang_guard_s:.0f} s: {process.args}")
        try:
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for child in children:
            try:
                if any("spawn_main" in part for part in child.cmdline()):
                    seen.add(child.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        time.sleep(0.05)
    return seen


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_fast_mode(path: Path, tmp_path: Path, data_cache: Path, device: str) -> None:
    spawned = run_in_fast_mode(path, tmp_path, data_cache, device)
    assert list(tmp_path.glob("*.png")) or path.name.startswith("08"), f"{path.name} saved no figure"
    if path.name.startswith("08"):  # the learner's path: a script whose runs go to worker processes
        results = json.loads((tmp_path / "08_run" / "results.json").read_text())
        executor = results["settings"]["executor"]
        assert executor == "a local Dask cluster of 2 worker processes", executor
        assert len(spawned) >= 2, f"the sweep ran in {len(spawned)} spawned worker processes, not 2"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_runs_in_fast_mode(path: Path, tmp_path: Path, data_cache: Path) -> None:
    """Each solution checks its answers; they run on the CPU device (like a learner's first try)."""
    run_in_fast_mode(path, tmp_path, data_cache, "cpu")


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_every_exercise_has_a_solution(path: Path) -> None:
    solution = TUTORIALS_DIR / "solutions" / path.name
    exercises = cells(path)[-1][1]
    numbers = [int(m[1]) for line in exercises if (m := re.match(r"^# (\d+)\. ", line))]
    solved = [int(n) for n in re.findall(r"^ *# Exercise (\d+):", solution.read_text(), re.MULTILINE)]
    assert solved == numbers, f"{solution.name} solves {solved}, the tutorial asks {numbers}"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_is_a_percent_notebook_that_explains_first_and_ends_with_exercises(path: Path) -> None:
    parsed = cells(path)
    kinds = [kind for kind, _ in parsed]
    assert "code" in kinds and kinds[0] == "markdown", "a markdown cell must come before the first code cell"
    title, number = parsed[0][1][0], int(path.name[:2])
    assert re.match(rf"^# # Tutorial {number}: ", title), f"first line of the first cell: {title!r}"
    for kind, lines in parsed:
        body = [line for line in lines if line.strip()]
        assert body, f"{path.name} has an empty {kind} cell"
        if kind == "markdown":
            assert all(line == "#" or line.startswith("# ") for line in body), "markdown lines are comments"
    kind, last = parsed[-1]
    assert kind == "markdown" and "# ## Exercises" in last, "the last cell must hold the exercises"
    exercises = last[last.index("# ## Exercises") :]
    numbered = [line for line in exercises if re.match(r"^# \d+\. ", line)]
    assert 3 <= len(numbered) <= 5, f"{len(numbered)} exercises"


def test_jupytext_reads_the_same_cells() -> None:
    jupytext = pytest.importorskip("jupytext", reason="jupytext is in the docs extra")
    for path in TUTORIALS:
        notebook = jupytext.read(path)
        assert [cell.cell_type for cell in notebook.cells] == [kind for kind, _ in cells(path)], path.name


def test_readme_lists_every_tutorial_in_order() -> None:
    readme = (TUTORIALS_DIR / "README.md").read_text()
    listed = re.findall(r"\b(\d\d_\w+\.py)\b", readme)
    assert list(dict.fromkeys(listed)) == COURSE
