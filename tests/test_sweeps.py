"""Sweeps on real executors: local Dask workers, a Dask scheduler and workers started as separate
processes, a worker killed mid-sweep, Ctrl-C and re-run, bad scheduler addresses.

Everything listens on 127.0.0.1 only. Every process a test starts is stopped by the test's
fixtures; ``no_stray_processes`` checks that none outlives its test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")  # the test extra installs it; CI runs these
import dask  # noqa: E402
import psutil  # noqa: E402  (installed with distributed)

from tests.helpers import default_sigint, grid_file, scheduler_address  # noqa: E402
from tests.test_experiments import tiny_grid  # noqa: E402
from tinynormact import cli  # noqa: E402
from tinynormact.experiments.executors import CONNECT_TIMEOUT_S, InProcess, ProcessPool  # noqa: E402
from tinynormact.experiments.runner import run_one  # noqa: E402
from tinynormact.experiments.sweep import run_sweep  # noqa: E402

# 2 architectures x 2 forms x 2 seeds = 8 runs of a few hundredths of a second
SMALL = tiny_grid(activations=("tanh",), forms=("vanilla", "static"))
# runs long enough (about a second each) for a worker to be killed in the middle of one
SLOW = dataclasses.replace(
    SMALL,
    architectures=("mlp",),
    depths=(2,),
    seeds=(0, 1),
    epochs=50,
    dataset_options={"n_train": 3000, "n_test": 60},
)


def histories(folder: Path) -> dict[str, dict]:
    """{run file name: history} of a sweep folder's runs."""
    return {p.name: json.loads(p.read_text())["history"] for p in (folder / "runs").iterdir()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The histories of SMALL run in this process, one run after the other."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    run_sweep(SMALL, out, jobs=1, progress=False)
    return histories(out)


@pytest.fixture(autouse=True)
def no_stray_processes() -> Iterator[None]:
    """Fail a test that leaves a process it started running (workers, schedulers, pools).
    Left out: multiprocessing's resource tracker (one helper per test process, not a worker) and
    the processes of module fixtures that were running before the test (a cluster's nanny
    restarting a killed worker); ``dask_cluster`` stops those itself."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 10
    while True:
        stray = [p for p in me.children(recursive=True) if p.pid not in before and _alive(p)]
        stray = [p for p in stray if not before & {a.pid for a in _parents(p)}]
        stray = [p for p in stray if "multiprocessing.resource_tracker" not in " ".join(_cmdline(p))]
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not stray, f"processes left running: {[(p.pid, _cmdline(p)) for p in stray]}"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _parents(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.parents()
    except psutil.NoSuchProcess:
        return []


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:
        return []


def _stop(process: subprocess.Popen) -> None:
    """Stop ``process`` and everything in its session (a dask worker's nanny and worker)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    try:  # children that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` (one thread each), as separate processes on
    127.0.0.1; yields the scheduler's address."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    dask_cli = [sys.executable, "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    processes = [
        subprocess.Popen(
            [*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--scheduler-file", str(scheduler_file)],
            **quiet,
        )
    ]
    try:
        address = scheduler_address(scheduler_file, processes[0])
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [*dask_cli, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1"]
                    + ["--host", "127.0.0.1", "--no-dashboard"],
                    **quiet,
                )
            )
        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)
        sessions = {process.pid for process in processes}
        left = [p for p in psutil.process_iter() if _alive(p) and _session(p) in sessions]
        assert not left, f"dask processes left running: {[(p.pid, _cmdline(p)) for p in left]}"


def _session(process: psutil.Process) -> int | None:
    try:
        return os.getsid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


def test_a_local_dask_cluster_gives_the_numbers_of_one_process(tmp_path, reference) -> None:
    out = tmp_path / "sweep"
    outcome = run_sweep(SMALL, out, jobs=2, progress=False)
    assert outcome.executor == "a local Dask cluster of 2 worker processes"
    assert histories(out) == reference


def test_the_process_pool_fallback_gives_the_numbers_of_one_process(reference) -> None:
    specs = SMALL.runs()
    pooled = {spec.file_name: record["history"] for spec, record in ProcessPool(2).run(specs)}
    serial = {spec.file_name: record["history"] for spec, record in InProcess().run(specs)}
    assert pooled == serial == {name: reference[name] for name in serial}


def _tinynormact(*args: str, **options: object) -> subprocess.Popen:
    """The command line in a new process (BLAS on one thread, like the test process)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("TINYNORMACT_SCHEDULER", None)
    env.update(options.pop("env", {}))  # type: ignore[arg-type]
    command = [sys.executable, "-m", "tinynormact", *args]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen(command, env=env, preexec_fn=default_sigint, **pipes, **options)


def test_the_command_line_on_a_dask_scheduler_gives_the_same_numbers(
    tmp_path, dask_cluster, reference
) -> None:
    grid_path = grid_file(tmp_path / "small.toml", SMALL)
    process = _tinynormact("sweep", str(grid_path), "--out", str(tmp_path / "a"), "--scheduler", dask_cluster)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert histories(tmp_path / "a") == reference and "static - vanilla" in out
    # the same through the environment variable
    env = {"TINYNORMACT_SCHEDULER": dask_cluster}
    process = _tinynormact("sweep", str(grid_path), "--out", str(tmp_path / "b"), env=env)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert histories(tmp_path / "b") == reference
    executor = json.loads((tmp_path / "b" / "results.json").read_text())["settings"]["executor"]
    assert executor.startswith(f"the Dask cluster at {dask_cluster}")


# One MLP of width 64 on batches of 1000 examples: its weight gradients sum 1000 products, a sum
# OpenBLAS 0.3 splits between threads, so on 2 BLAS threads the histories differ in their last bits
# from those on 1 (measured; the test checks that this grid can tell them apart).
WIDE = dataclasses.replace(
    SMALL,
    architectures=("mlp",),
    depths=(3,),
    widths=(64,),
    seeds=(0,),
    epochs=3,
    batch_size=1000,
    dataset_options={"n_train": 3000, "n_test": 60},
)


def test_the_executor_does_not_change_the_numbers_whatever_the_blas_threads(
    tmp_path, dask_cluster, monkeypatch
) -> None:
    """Issue 26: a sweep in this process with BLAS free on 2 threads (a laptop's ``--jobs 1``),
    on a local cluster (``--jobs 2``) and on a ``dask scheduler`` with two ``dask worker``s
    (Dask pins their BLAS to 1 thread) writes the same run files, bit for bit (all but the wall
    time). Before every run pinned its BLAS threads, the in-process histories differed."""
    from threadpoolctl import threadpool_limits

    from tinynormact.experiments import runner

    def records(folder: Path) -> dict[str, dict]:
        found = {p.name: json.loads(p.read_text()) for p in (folder / "runs").iterdir()}
        return {name: {k: v for k, v in record.items() if k != "seconds"} for name, record in found.items()}

    with threadpool_limits(limits=2, user_api="blas"):
        run_sweep(WIDE, tmp_path / "jobs1", jobs=1, progress=False)
    run_sweep(WIDE, tmp_path / "jobs2", jobs=2, progress=False)
    grid_path = grid_file(tmp_path / "wide.toml", WIDE)
    dask_out = str(tmp_path / "dask")
    process = _tinynormact("sweep", str(grid_path), "--out", dask_out, "--scheduler", dask_cluster)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    pinned = records(tmp_path / "jobs1")
    assert len(pinned) == 2 and records(tmp_path / "jobs2") == pinned == records(tmp_path / "dask")
    assert {record["blas_threads"] for record in pinned.values()} == {1}

    monkeypatch.setattr(runner, "BLAS_THREADS", 2)  # the control: what the unpinned run computed
    two_threads = {spec.file_name: runner.run_one(spec)["history"] for spec in WIDE.runs()}
    if two_threads == {name: record["history"] for name, record in pinned.items()}:
        pytest.skip("this BLAS sums the same on 2 threads as on 1: the grid cannot show the difference")


def _kill_a_busy_worker(address: str, out: Path, killed: list[str], sweep_done: threading.Event) -> None:
    """Once the first run is written, SIGKILL a worker (by its PID) while it is running a run;
    append the run file names it was running to ``killed``. The PIDs are asked for first, while
    the workers are idle: asked for later, a worker busy with a run under load answers late, and
    the last runs could end before the kill. The scheduler, which runs nothing, is then polled
    until a worker holds a run, or until ``sweep_done`` is set (the sweep ended, no kill)."""
    with distributed.Client(address, set_as_default=False) as client:
        pids = client.run(os.getpid)
        while not (out / "runs").exists() or not any((out / "runs").iterdir()):
            if sweep_done.wait(0.02):
                return
        while not sweep_done.is_set():
            for worker, keys in client.processing().items():
                running = [k for k in keys if str(k).startswith("run-")]
                if running:
                    killed += [str(k).split("-", 2)[2] for k in running]
                    os.kill(pids[worker], signal.SIGKILL)
                    return
            time.sleep(0.01)


def test_a_worker_killed_mid_sweep_loses_nothing(tmp_path, dask_cluster) -> None:
    out = tmp_path / "sweep"
    killed: list[str] = []
    sweep_done = threading.Event()
    killer = threading.Thread(target=_kill_a_busy_worker, args=(dask_cluster, out, killed, sweep_done))
    killer.start()
    try:
        outcome = run_sweep(SLOW, out, scheduler=dask_cluster, progress=False)
    finally:
        sweep_done.set()
        killer.join()
    assert killed, "no worker was running a run when the first one finished"
    specs = {spec.file_name: spec for spec in SLOW.runs()}
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(specs)
    assert len(outcome.runs) == len(specs) and {r["status"] for r in outcome.runs} == {"completed"}
    for name in killed:  # the interrupted run, run again elsewhere, has the numbers of an undisturbed one
        assert histories(out)[name] == run_one(specs[name])["history"]


def test_a_run_whose_worker_dies_too_often_is_recorded_as_failed(tmp_path) -> None:
    """With Dask's allowed-failures at 0, the first death of a worker fails its run: recorded as
    "failed" with the reason; the other runs finish; a re-run runs only that one."""
    out = tmp_path / "sweep"
    killed: list[str] = []
    sweep_done = threading.Event()

    def kill_when_started() -> None:
        while not (out / "grid.json").exists():
            if sweep_done.wait(0.02):
                return
        address = None
        while address is None:  # the local cluster's scheduler, once it is up
            address = next(iter(_local_schedulers()), None)
            if sweep_done.wait(0.05):
                return
        _kill_a_busy_worker(address, out, killed, sweep_done)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            outcome = run_sweep(SLOW, out, jobs=2, progress=False)
    finally:
        sweep_done.set()
        killer.join()
    failed = {r["config_hash"][:12]: r for r in outcome.runs if r["status"] == "failed"}
    # the runs on the killed worker (running or queued there) failed; the others finished
    assert killed and {name[-17:-5] for name in killed} <= set(failed)
    assert all("its worker died" in r["message"] for r in failed.values())
    assert len(outcome.runs) == len(SLOW.runs()) > len(failed)
    again = run_sweep(SLOW, out, jobs=1, progress=False)
    assert again.ran == len(failed) and {r["status"] for r in again.runs} == {"completed"}


def _local_schedulers() -> list[str]:
    """Addresses of the Dask schedulers running in this process (a LocalCluster's)."""
    from distributed.scheduler import Scheduler

    return [s.address for s in Scheduler._instances if s.status.name == "running"]


def test_ctrl_c_keeps_finished_runs_and_a_rerun_runs_only_the_rest(tmp_path, reference) -> None:
    grid_path = grid_file(tmp_path / "small.toml", SMALL)
    out = tmp_path / "sweep"
    process = _tinynormact("sweep", str(grid_path), "--out", str(out), "--jobs", "2", start_new_session=True)
    me = psutil.Process(process.pid)
    while len(list(out.glob("runs/*.json"))) < 2:  # finished runs (a file being written ends in .tmp)
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    workers = [p for p in me.children(recursive=True) if "resource_tracker" not in " ".join(_cmdline(p))]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the sweep finished before Ctrl-C arrived (a very fast machine): nothing to resume")
    assert process.returncode == 130 and "Traceback" not in err
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("tinynormact: error: interrupted: the finished runs are kept")
    _, alive = psutil.wait_procs(workers, timeout=10)  # the workers stop with the command
    assert workers and not [w for w in alive if _alive(w)]

    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("runs/*.json")}
    assert 2 <= len(kept) and json.loads((out / "results.json").read_text())["status"] == "interrupted"
    if len(kept) == len(reference):
        pytest.skip("every run finished before Ctrl-C arrived (a very fast machine): nothing to resume")
    process = _tinynormact("sweep", str(grid_path), "--out", str(out), "--jobs", "1")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    to_run = len(reference) - len(kept)
    assert f"resuming {out}: {len(kept)} of {len(reference)} runs already finished, {to_run} to run" in err
    assert {name: (out / "runs" / name).stat().st_mtime_ns for name in kept} == kept  # not run again
    saved = json.loads((out / "results.json").read_text())
    assert saved["status"] == "completed" and saved["settings"]["runs_this_session"] == to_run
    assert histories(out) == reference


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    import socket

    with socket.socket() as probe:  # a port on 127.0.0.1 that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    grid_path = grid_file(tmp_path / "small.toml", SMALL)
    out = tmp_path / "sweep"
    start = time.monotonic()
    code = cli.main(["sweep", str(grid_path), "--out", str(out), "--scheduler", f"tcp://127.0.0.1:{port}"])
    elapsed = time.monotonic() - start
    lines = capsys.readouterr().err.splitlines()
    assert lines[:-1] == [f"{out}: 8 runs to run"]  # the notice before any work, then one line
    err = lines[-1]
    assert code == 2 and "Traceback" not in err
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in err
    # Dask's own connect timeout is 30 s: the sweep gives up after CONNECT_TIMEOUT_S (3 s)
    assert elapsed < 4 * CONNECT_TIMEOUT_S and not out.exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--scheduler", "localhost"], ["'localhost'", "tcp://HOST:PORT"]),
        (["--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"], ["--jobs and --scheduler"]),
    ],
)
def test_bad_scheduler_options_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, words) -> None:
    monkeypatch.setenv("TINYNORMACT_SCHEDULER", "tcp://not an address")  # ignored: options given
    grid_path = grid_file(tmp_path / "small.toml", SMALL)
    code = cli.main(["sweep", str(grid_path), "--out", str(tmp_path / "sweep"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and all(word in err for word in words), err
    assert not (tmp_path / "sweep").exists()


def test_a_bad_scheduler_variable_is_named(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TINYNORMACT_SCHEDULER", "localhost:8786")
    grid_path = grid_file(tmp_path / "small.toml", SMALL)
    code = cli.main(["sweep", str(grid_path), "--out", str(tmp_path / "sweep")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "TINYNORMACT_SCHEDULER" in err and "'localhost:8786'" in err


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('name = "g"\nlearning_rate = [0.1]\n', ["unknown key", "'learning_rate'", "lrs"]),
        ('name = "g"\nactivations = []\n', ["'activations'", "empty"]),
    ],
)
def test_bad_grid_files_on_the_command_line(tmp_path, capsys, text, words) -> None:
    (tmp_path / "grid.toml").write_text(text)
    code = cli.main(["sweep", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "sweep"), "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(tmp_path / "grid.toml") in err
    assert all(word in err for word in words), err
    assert not (tmp_path / "sweep").exists()
