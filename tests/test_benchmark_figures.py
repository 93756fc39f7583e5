"""The benchmark figures quoted in docs/benchmarks.md ("Idle, the code as it stands", and the
same runs of the day before, "Idle, at commit b12a592") and the README, recomputed from the
committed raw output of those runs (docs/reports/benchmarks/); and the session's changes table,
step profile and layer figures from the committed output of paired.py, profile_step.py and
conv_layers."""

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


def flat_page() -> str:
    """The page with its line breaks as spaces (a quoted sentence may wrap)."""
    return " ".join(PAGE.read_text().split())


def test_the_changes_table_is_the_paired_output() -> None:
    """The "changes" table of 2026-12-08: paired.py's output, number for number."""
    text, page = (RUNS / "paired-2984c76.txt").read_text(), flat_page()
    ratio = rf"median ({NUMBER}), interquartile range ({NUMBER})-({NUMBER})"
    then, now, median, low, high = re.search(
        rf"resnet20 step: fastest then ({NUMBER}) ms, now ({NUMBER}) ms; .*?{ratio}", text
    ).groups()
    assert (
        f"ResNet-20 step {median} (interquartile range {low}-{high}, 30 pairs; "
        f"fastest step {then} -> {now} ms)" in page
    )
    median, low, high = re.search(rf"resnet1d step: .*?{ratio}", text).groups()
    assert f"resnet1d {median} ({low}-{high})" in page
    then, now, median, low, high = re.search(
        rf"replayed MLP step, width 32: fastest block median then ({NUMBER}) us, "
        rf"now ({NUMBER}) us; .*?{ratio}",
        text,
    ).groups()
    assert (
        f"{median} ({low}-{high}, 30 pairs of blocks of 125 steps; fastest block median {then} -> {now} us)"
        in page
    )
    layers = re.findall(
        rf"(\d+) channels at \d+x\d+: forward ({NUMBER}) -> ({NUMBER}), "
        rf"weight gradient ({NUMBER}) -> ({NUMBER}), "
        rf"input gradient ({NUMBER}) -> ({NUMBER}) ms; bit for bit the same: True",
        text,
    )
    assert len(layers) == 3
    for channels, f0, f1, w0, w1, i0, i1 in layers:
        assert f"{channels} channels {f0} / {w0} / {i0} -> {f1} / {w1} / {i1}" in page


def test_the_profile_figures_are_the_profile_output() -> None:
    ms = {
        " ".join(line.split()[:-1]): float(line.split()[-1])
        for line in (RUNS / "profile-265603b.txt").read_text().splitlines()[1:]
    }
    convs = [ms[f"engine backward: conv (64, {c}, {n}, {n})"] for c, n in ((16, 32), (32, 16), (64, 8))]
    engine_bn = ms["engine forward: batch_norm"] + ms["engine backward: batch_norm"]
    step = ms["engine backward: all"] + ms["engine forward: all (with the loss)"]
    page = flat_page()
    assert (
        f"the engine's backward {ms['engine backward: all']} ms, of which the convolutions' {sum(convs):.1f} "
        f"({convs[0]}, {convs[1]} and {convs[2]} at 16, 32 and 64 channels), batch norm's "
        f"{ms['engine backward: batch_norm']} and ReLU's {ms['engine backward: relu']}; its forward "
        f"{ms['engine forward: all (with the loss)']}, of which convolutions "
        f"{ms['engine forward: conv']} and "
        f"batch norm {ms['engine forward: batch_norm']}. PyTorch's, in the same process: forward "
        f"{ms['pytorch forward']}, backward {ms['pytorch backward']}"
    ) in page
    assert f"puts {sum(convs):.1f} ms of the engine's {step:.1f}-ms timed step" in page
    assert f"batch norm's forward and backward at {engine_bn:.1f}" in page


def test_the_layer_figures_are_the_conv_layers_output() -> None:
    rows = {}
    for line in (RUNS / "conv-layers-265603b.txt").read_text().splitlines():
        fields = line.replace(",", " ").replace("/", " ").split()
        if len(fields) == 14 and fields[0].isdigit():  # in out size k s, then 3 x (fwd, total), 3 GFLOP/s
            rows[tuple(fields[:5])] = (fields[6], fields[10])  # engine's and PyTorch's forward + backward
    names = {
        ("16", "16", "32", "3", "1"): "16 channels",
        ("32", "32", "16", "3", "1"): "32 channels",
        ("64", "64", "8", "3", "1"): "64 channels",
        ("16", "32", "32", "3", "2"): "the strided 3x3",
        ("16", "32", "32", "1", "2"): "the strided 1x1",
    }
    expected = ", ".join(f"{names[key]} {fast} / {torch}" for key, (fast, torch) in rows.items())
    assert len(rows) == 5 and f"engine against PyTorch: {expected}." in flat_page()
