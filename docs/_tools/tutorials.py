"""Execute every tutorial (tutorials/[0-9][0-9]_*.py) and write it as a Markdown page for the site.

    python docs/_tools/tutorials.py OUT_DIR [--jobs N]

Each jupytext percent script is read as a notebook, executed in a Jupyter kernel with the
tutorials folder as working directory (so ``from _common import ...`` works), and exported with
nbconvert to OUT_DIR/NAME.md and its figures to OUT_DIR/NAME_files/. A tutorial that raises stops
the build: the command prints the failing cell's error and exits 1. Tutorials run in their fast
mode (TINYNORMACT_TUTORIAL_FAST=1, as in tests/test_tutorials.py) unless the environment sets
TINYNORMACT_TUTORIAL_FAST=0. A page whose source, fast setting and library are unchanged since the
last build is kept (its hash is in OUT_DIR/NAME.hash).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"
TIMEOUT_S = 600


def tutorial_paths() -> list[Path]:
    return sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


def fast_mode() -> bool:
    return os.environ.get("TINYNORMACT_TUTORIAL_FAST", "1") != "0"


def source_hash(path: Path) -> str:
    """Hash of what a tutorial's page depends on: its script, the shared helpers, the library."""
    digest = hashlib.sha256(f"fast={fast_mode()}".encode())
    sources = [path, TUTORIALS / "_common.py", *sorted((ROOT / "tinynormact").rglob("*.py"))]
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def build_one(path: Path, out: Path) -> str:
    """Execute one tutorial and write its page; returns a line for the log."""
    import jupytext
    import nbconvert
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    stamp = out / f"{path.stem}.hash"
    wanted = source_hash(path)
    if stamp.exists() and stamp.read_text() == wanted and (out / f"{path.stem}.md").exists():
        return f"{path.name}: unchanged, kept"
    notebook = jupytext.read(path)
    with tempfile.TemporaryDirectory(prefix="tutorial-") as scratch:
        os.environ.update({
            "TINYNORMACT_TUTORIAL_FAST": "1" if fast_mode() else "0",
            "TINYNORMACT_TUTORIAL_OUT": scratch,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        })
        client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": str(TUTORIALS)}})
        try:
            client.execute()
        except CellExecutionError as error:
            raise RuntimeError(f"{path.name} failed:\n{error}") from None
    body, resources = nbconvert.MarkdownExporter().from_notebook_node(
        notebook, resources={"output_files_dir": f"{path.stem}_files"})
    for name, data in resources.get("outputs", {}).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    (out / f"{path.stem}.md").write_text(body)
    stamp.write_text(wanted)
    return f"{path.name}: executed ({'fast' if fast_mode() else 'full'} mode)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = tutorial_paths()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(build_one, path, args.out) for path in paths]
        failed = False
        for future in futures:
            try:
                print(future.result(), flush=True)
            except RuntimeError as error:
                print(error, file=sys.stderr, flush=True)
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
