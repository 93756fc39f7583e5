"""The README's Python examples run as written, in order, in one namespace."""

from __future__ import annotations

import pathlib
import re

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
