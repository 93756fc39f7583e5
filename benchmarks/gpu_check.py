"""``make gpu-check``: verify the CuPy path on a machine with an NVIDIA GPU, in one command.

Runs, each as a subprocess with its own time limit inside a total of TOTAL_BUDGET_S seconds:

1. ``pytest --device cuda`` (the whole suite on CuPy);
2. the engine step benchmark on the GPU beside the CPU (benchmarks/device_step.py: widths 256,
   1024, 4096; batches 128, 1024; PyTorch CPU/CUDA as the reference when installed), and the
   convolution step benchmark when the project has one (benchmarks/bench_conv_step.py);
3. ``tinynormact reproduce --preset quick --device cuda``;
4. tutorial 10 (the GPU tutorial) in full.

It writes one Markdown report (default runs/gpu-check/report.md) with the machine, every
figure and each part's outcome, and exits 0 only if every part passed. Without CuPy or a GPU it
says so in one line and exits 1 before running anything.

It uses the Python environment it is started with: no virtual environment, no downloads.
Pure-Python packages the checks need and that environment lacks (mnist1d and requests for the
quick preset's data, pytest and hypothesis for the suite) are taken from wheels in ``wheels/``
(``make gpu-wheels`` fills it on a machine with a package index; the folder is git-ignored and
travels with the working tree): each missing one is unpacked into ``.gpu-site/`` and put on
PYTHONPATH for the subprocesses.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS, SITE = ROOT / "wheels", ROOT / ".gpu-site"
REQUIRED = ("numpy", "scipy", "matplotlib", "tqdm")  # tinynormact's own dependencies: not unpacked here
TOTAL_BUDGET_S = 470  # under 8 minutes with the set-up
# Each part's share of what is left when it starts (the last part gets all that is left).
SHARES = {"suite": 0.45, "benchmarks": 0.45, "reproduce": 0.8, "tutorial": 1.0}


@dataclass
class Part:
    name: str
    command: list[str]
    shown: str = ""  # how the report names the command (default: the command itself)
    passed: bool = False
    seconds: float = 0.0
    output: str = ""
    note: str = ""


def _gpu_description() -> str:
    """The GPU, CUDA and CuPy versions, or raise the backend's DeviceError saying what is missing."""
    from tinynormact import backend

    cupy = backend.xp("cuda")
    runtime = cupy.cuda.runtime
    name = runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    major, minor = divmod(runtime.runtimeGetVersion() // 10, 100)
    return (
        f"{name} ({runtime.getDeviceCount()} visible), CUDA runtime {major}.{minor}, "
        f"driver {runtime.driverGetVersion()}, CuPy {cupy.__version__}"
    )


def _top_level_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0].removesuffix(".py") for name in archive.namelist()}
    return {name for name in tops if name.isidentifier()}  # packages and modules, not .dist-info


def provide_missing_packages() -> list[str]:
    """Unpack each wheel of wheels/ whose packages this environment cannot import into
    .gpu-site/; return the names of the wheels unpacked."""
    unpacked = []
    for wheel in sorted(WHEELS.glob("*.whl")):
        names = _top_level_names(wheel)
        if all(importlib.util.find_spec(name) is not None for name in names):
            continue
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(SITE)
        unpacked.append(wheel.name)
    return unpacked


def run(part: Part, limit_s: float, env: dict[str, str]) -> None:
    """Run ``part`` within ``limit_s`` seconds, keeping its output and outcome."""
    start = time.perf_counter()
    try:
        command = part.command
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit_s)
        part.passed, part.output = done.returncode == 0, done.stdout + done.stderr
        part.note = "" if part.passed else f"exit code {done.returncode}"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        part.output, part.note = out, f"stopped after its limit of {limit_s:.0f} s"
    part.seconds = time.perf_counter() - start
    print(f"gpu-check: {part.name}: {'passed' if part.passed else 'FAILED (' + part.note + ')'} "
          f"in {part.seconds:.0f} s", flush=True)  # fmt: skip


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def report(parts: list[Part], machine: str, unpacked: list[str], total_s: float, run_dir: Path) -> str:
    """The Markdown report: machine, outcome and figures of every part."""
    lines = [
        "# gpu-check report",
        "",
        f"- machine: {machine}",
        f"- host: {platform.node()}, Python {platform.python_version()}, {os.cpu_count()} CPU cores",
        f"- wheels unpacked from wheels/: {', '.join(unpacked) or 'none needed'}",
        f"- total wall time: {total_s:.0f} s (budget {TOTAL_BUDGET_S} s)",
        "",
        "| part | outcome | seconds |",
        "| --- | --- | --- |",
        *(f"| {p.name} | {'passed' if p.passed else 'FAILED: ' + p.note} | {p.seconds:.0f} |" for p in parts),
    ]
    for part in parts:
        lines += ["", f"## {part.name}", "", f"`{part.shown or ' '.join(part.command)}`", ""]
        if part.name == "suite":
            summary = [line for line in part.output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
            lines += [f"summary: `{(summary or ['(no summary line)'])[-1].strip('= ')}`", "", "```",
                      _tail(part.output, 30), "```"]  # fmt: skip
        elif part.name == "reproduce":
            summary = run_dir / "quick" / "report.md"
            lines += ["```", _tail(part.output, 40), "```"]
            if summary.exists():
                lines += ["", f"(the reproduction's own report: {summary.relative_to(ROOT)})"]
        else:
            lines += ["```", _tail(part.output, 60), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify the CuPy path on this machine's GPU.")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu-check", help="report folder")
    parser.add_argument(
        "--rehearse", action="store_true", help="run every part on the CPU instead (tests this script)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    device = "cpu" if args.rehearse else "cuda"
    try:
        machine = "CPU rehearsal, no GPU used" if args.rehearse else _gpu_description()
    except Exception as exc:  # the backend's DeviceError, or CuPy failing to query the GPU
        print(f"gpu-check: no usable GPU here, nothing was run: {exc}", file=sys.stderr)
        return 1
    lacking = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if lacking:
        needs = f"this Python environment lacks {', '.join(lacking)}, which tinynormact needs"
        print(f"gpu-check: {needs} (pip install -e . where a package index is reachable); nothing was run",
              file=sys.stderr)  # fmt: skip
        return 1
    unpacked = provide_missing_packages()
    path = os.pathsep.join([str(SITE), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("TINYNORMACT_DEVICE", None)
    py = sys.executable
    parts = [
        Part("suite", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device", device]),
        Part("benchmarks", [py, "-c", _BENCHMARKS, device], "benchmarks.device_step, bench_conv_step"),
        Part(
            "reproduce",
            [
                py,
                "-m",
                "tinynormact",
                "reproduce",
                "--preset",
                "quick",
                "--device",
                device,
                "--jobs",
                "4",
                "--out",
                str(args.out / "quick"),
                "--force",
            ],
        ),  # fmt: skip
        Part("tutorial", [py, str(ROOT / "tutorials" / "10_gpu.py")]),
    ]
    tutorial_env = {**env, "TINYNORMACT_TUTORIAL_OUT": str(args.out / "tutorial"), "MPLBACKEND": "Agg"}
    args.out.mkdir(parents=True, exist_ok=True)
    for part in parts:
        left = TOTAL_BUDGET_S - (time.perf_counter() - start)
        run(part, max(left * SHARES[part.name], 1.0), tutorial_env if part.name == "tutorial" else env)
    total = time.perf_counter() - start
    text = report(parts, machine, unpacked, total, args.out)
    (args.out / "report.md").write_text(text)
    print(f"gpu-check: report {args.out / 'report.md'} ({total:.0f} s)")
    return 0 if all(p.passed for p in parts) else 1


_BENCHMARKS = """
import importlib.util, runpy, sys
import tinynormact as tn
from benchmarks import device_step
device_step.main([])
if importlib.util.find_spec("benchmarks.bench_conv_step") is not None:
    print(f"\\nconvolution step (benchmarks/bench_conv_step.py) with {sys.argv[1]} as the current device:")
    tn.set_device(sys.argv[1])
    runpy.run_module("benchmarks.bench_conv_step", run_name="__main__")
"""

if __name__ == "__main__":
    sys.exit(main())
