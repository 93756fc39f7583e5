"""The README (the front door) and the guide pages its tour moved to: their Python examples run as
written, in reading order, in one namespace (README, then docs/guide/tour.md, tracking.md and
cifar.md); the README stays short, says it is a reconstruction on its first screen, and links
only to files that exist; the record format the tracking page documents is the one written."""

from __future__ import annotations

import code
import json
import pathlib
import re
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"
# the pages whose examples run, in the order a reader meets them (each may use the ones before)
EXAMPLE_PAGES = [README, GUIDE / "tour.md", GUIDE / "tracking.md", GUIDE / "cifar.md"]


def python_blocks() -> list[tuple[pathlib.Path, str]]:
    return [(page, block) for page in EXAMPLE_PAGES
            for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)]


def test_example_blocks_run(tmp_path, monkeypatch) -> None:
    blocks = python_blocks()
    # README's first look; tensors, theory, networks, convolutions; tracking, a streamed record,
    # reading it; CIFAR's transform, FLOPs and memory
    assert len(blocks) >= 9
    monkeypatch.chdir(tmp_path)  # the streamed record goes to runs/ here
    namespace: dict = {}
    for page, block in blocks:
        exec(compile(block, str(page), "exec"), namespace)  # noqa: S102 (our own pages)
    assert namespace["record"]["delta_sq"].shape == (3, 4)
    # what NumPy alone read from disk is the streaming tracker's record, bit for bit
    rows, streamed = namespace["rows"], namespace["tracker"].to_dict()
    assert rows["step"].tolist() == [0, 1, 2] and namespace["layers"] == ["0", "2", "4", "6"]
    assert rows["delta_sq"].tobytes() == streamed["delta_sq"].tobytes()
    documented_meta_keys(tmp_path / "runs" / "tracked" / "tracking" / "meta.json")


def documented_meta_keys(written: pathlib.Path) -> None:
    """The keys and fixed values of meta.json as the tracking page states them, against a file
    the tracker wrote."""
    page = (GUIDE / "tracking.md").read_text()
    (stated,) = re.findall(r"`meta\.json`: `(\{.*?\})`", " ".join(page.split()))
    keys = re.findall(r'"(\w+)":', stated)
    meta = json.loads(written.read_text())
    assert keys == list(meta), f"tracking.md documents {keys}, the tracker writes {list(meta)}"
    assert f'"format": "{meta["format"]}"' in stated and f'"version": {meta["version"]}' in stated


class _Console(code.InteractiveConsole):
    """Python's classic interactive console that keeps its errors instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def showsyntaxerror(self, filename: str | None = None, **kwargs: object) -> None:
        self.errors.append(traceback.format_exc(limit=0))

    def showtraceback(self) -> None:
        self.errors.append(traceback.format_exc(limit=0))


def test_example_blocks_paste_into_the_interactive_interpreter(tmp_path, monkeypatch) -> None:
    """Before: the tracking tour's `record = tracker.to_dict()` followed its `with` block without a
    blank line, a SyntaxError when pasted at the >>> prompt. Each block is fed line by line, as a
    paste is, to the classic console."""
    monkeypatch.chdir(tmp_path)
    console = _Console()
    for _, block in python_blocks():
        for line in block.splitlines():
            console.push(line)
        console.push("")  # the user's Enter after the paste
    assert console.errors == []
    assert console.locals["record"]["delta_sq"].shape == (3, 4)


def test_the_readme_is_a_short_front_door() -> None:
    text = README.read_text()
    assert len(text.split()) <= 1600, f"README has {len(text.split())} words; the rest belongs on a site page"
    first_screen = "\n".join(text.splitlines()[:25])
    assert "full text was not available" in first_screen and "reconstructed" in first_screen
    for command in ("make demo", "make test"):
        assert command in text
    headings = re.findall(r"^## (.*)$", text, flags=re.MULTILINE)
    contents = text[text.index("## Contents"):text.index(f"## {headings[1]}")]
    for heading in headings[1:]:
        anchor = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        assert f"(#{anchor})" in contents, f"the contents do not list {heading!r}"


def test_the_readme_links_to_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert len(local) > 10
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_citation_and_license_match_the_package() -> None:
    """CITATION.cff cites the paper (both versions' authors, the arXiv number) and states the
    license pyproject.toml declares, whose text LICENSE holds."""
    import tomllib

    citation = (ROOT / "CITATION.cff").read_text()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert re.search(rf"^license: {declared}$", citation, flags=re.MULTILINE)
    assert (ROOT / "LICENSE").read_text().startswith(f"{declared} License")
    assert "2208.13315" in citation
    for family, given in (("Yuan", "Peiwen"), ("Zhu", "Changsheng"), ("Liu", "Henan"), ("Wang", "Yuyi")):
        assert f"family-names: {family}\n        given-names: {given}" in citation
