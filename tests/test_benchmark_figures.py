"""The benchmark figures quoted in docs/benchmarks.md ("Idle, the code as it stands", and the
same runs of the day before, "Idle, at commit b12a592") and the README, recomputed from the
committed raw output of those runs (docs/reports/benchmarks/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "reports" / "benchmarks"
# the README quotes the latest; the page also gives a second set at the same commit and the day before's
LATEST, SECOND, EARLIER = RUNS / "265603b.txt", RUNS / "265603b-second.txt", RUNS / "b12a592.txt"
PAGE = ROOT / "docs" / "benchmarks.md"
NUMBER = r"[\d.]+"


def one_thread_blocks(raw: Path) -> list[str]:
    """The 1-thread part of each conv_step run in the raw output ``raw``."""
    return re.findall(r"-- 1 BLAS thread\(s\).*?(?=-- 2 BLAS thread)", raw.read_text(), flags=re.S)


def network_fields(block: str, name: str) -> list[str]:
    """The fields of network ``name``'s line of the step table, parentheses dropped."""
    line = re.search(rf"^ {name} .*$", block, flags=re.M).group(0)
    return line.replace("(", " ").replace(")", " ").split()


def conv_rows(raw: Path) -> list[str]:
    """Each run's row of the page's table, as the raw output ``raw`` gives it."""
    rows = []
    for run, block in enumerate(one_thread_blocks(raw), start=1):
        sgemm = re.search(rf"sgemm 1024\^3: ({NUMBER}) GFLOP/s", block).group(1)
        r20, r1d = (network_fields(block, name) for name in ("resnet20", "resnet1d"))
        # network, then CPU (wall) ms of engine, im2col engine, hand, pytorch, ratio (wall ratio),
        # round median, round range lo-hi, GFLOP/s
        rows.append(
            f"| {run} | {r20[1]} | {r20[7]} | {r20[9]} | {r20[11]} ({r20[12]}) | {r1d[9]} | {sgemm} |"
        )
    return rows


def mlp_ratios(raw: Path) -> dict[int, list[list[str]]]:
    """For each width, the (time, replay, per-op) ratios of the three mlp_step runs in ``raw``."""
    ratios: dict[int, list[list[str]]] = {}
    for line in raw.read_text().splitlines():
        fields = line.split()
        if len(fields) == 9 and fields[0] in {"32", "64", "256", "1024"}:
            ratios.setdefault(int(fields[0]), []).append(fields[3:6])
    return ratios


@pytest.mark.parametrize("raw", [LATEST, SECOND, EARLIER], ids=lambda path: path.stem)
def test_the_conv_table_is_the_raw_output(raw: Path) -> None:
    rows = conv_rows(raw)
    assert len(rows) == 3
    page = PAGE.read_text()
    for row in rows:
        assert row in page, f"docs/benchmarks.md lacks the row {row!r} of the raw output"


@pytest.mark.parametrize("raw", [LATEST, SECOND, EARLIER], ids=lambda path: path.stem)
def test_the_mlp_table_is_the_raw_output(raw: Path) -> None:
    page = PAGE.read_text()
    for width, runs in mlp_ratios(raw).items():
        assert len(runs) == 3
        columns = [", ".join(run[k] for run in runs) for k in range(3)]
        row = f"| {width} | {columns[0]} | {columns[1]} | {columns[2]} |"
        assert row in page, f"docs/benchmarks.md lacks the row {row!r} of the raw output"


def test_the_readme_ranges_cover_the_raw_output() -> None:
    readme = (ROOT / "README.md").read_text()
    ratios = [float(row.split("|")[4]) for row in conv_rows(LATEST)]
    assert f"ResNet-20 {min(ratios):.2f}-{max(ratios):.2f} x PyTorch in three runs" in readme
    for column, words in ((1, "MLP replayed"), (0, "eager")):
        ratios_of = {w: [float(run[column]) for run in runs] for w, runs in mlp_ratios(LATEST).items()}
        spans = [f"{min(ratios_of[w]):.3f}-{max(ratios_of[w]):.3f} x" for w in (32, 64, 256)]
        assert f"{words} {spans[0]}, {spans[1]} and {spans[2]}" in readme
