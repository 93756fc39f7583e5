"""What a new user meets first (issue 23, items 6 and 8): the base install runs the default
command, and `make demo` resumes its folder instead of deleting it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinynormact.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def base_dependencies() -> set[str]:
    """The distribution names of pyproject's [project] dependencies (no extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        re.split(r"[<>=!;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]
    }


def test_the_default_dataset_needs_no_extra() -> None:
    """Before: `pip install .` then `tinynormact train` exited 2 asking for the `data` extra,
    because the default dataset's generator, mnist1d, was only in that extra."""
    assert TrainConfig().dataset == "mnist1d"
    assert "mnist1d" in base_dependencies()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_resumes_its_folder_and_says_how_to_start_over() -> None:
    """Before: `make demo` passed --force, so a second one deleted the 108 finished runs."""
    shown = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True)
    command = next(line for line in shown.stdout.splitlines() if "tinynormact reproduce" in line)
    assert "--preset quick --out runs/quick" in command and "--force" not in command
    notice = next(line for line in shown.stdout.splitlines() if "start over" in line)
    assert "rm -rf runs/quick" in notice and "DEMO_FLAGS=--force" in notice
