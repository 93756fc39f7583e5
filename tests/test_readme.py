"""The README's Python examples run as written, in order, in one namespace."""

from __future__ import annotations

import code
import pathlib
import re
import traceback

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 6  # tensors, theory, networks, tracking, a streamed record, reading it
    monkeypatch.chdir(tmp_path)  # the streamed record goes to runs/ here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 (our own README)
    assert namespace["record"]["delta_sq"].shape == (3, 4)
    # what NumPy alone read from disk is the streaming tracker's record, bit for bit
    rows, streamed = namespace["rows"], namespace["tracker"].to_dict()
    assert rows["step"].tolist() == [0, 1, 2] and namespace["layers"] == ["0", "2", "4", "6"]
    assert rows["delta_sq"].tobytes() == streamed["delta_sq"].tobytes()


class _Console(code.InteractiveConsole):
    """Python's classic interactive console that keeps its errors instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def showsyntaxerror(self, filename: str | None = None, **kwargs: object) -> None:
        self.errors.append(traceback.format_exc(limit=0))

    def showtraceback(self) -> None:
        self.errors.append(traceback.format_exc(limit=0))


def test_readme_python_blocks_paste_into_the_interactive_interpreter(tmp_path, monkeypatch) -> None:
    """Before: the tracking tour's `record = tracker.to_dict()` followed its `with` block without a
    blank line, a SyntaxError when pasted at the >>> prompt. Each block is fed line by line, as a
    paste is, to the classic console."""
    monkeypatch.chdir(tmp_path)
    console = _Console()
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL):
        for line in block.splitlines():
            console.push(line)
        console.push("")  # the user's Enter after the paste
    assert console.errors == []
    assert console.locals["record"]["delta_sq"].shape == (3, 4)
