"""Where the runs of a grid execute: this process, local workers, or a Dask cluster.

``open_executor(jobs, scheduler)`` chooses one and closes it afterwards; every executor has the
one method ``run(specs)``, which yields ``(spec, record)`` as each run finishes, in whatever order
they finish, so the caller writes each record at once. A run that raised or whose worker died
is yielded as a "failed" record with the reason (``runner.failed_record``), never raised.

- ``InProcess`` (``jobs == 1``, no scheduler): one run after the other, here.
- ``DaskExecutor``: ``jobs > 1`` starts a ``distributed.LocalCluster`` of ``jobs`` worker
  processes with one thread each; ``scheduler`` (``tcp://HOST:PORT``) connects to a running
  cluster instead (the command line also reads it from ``TINYNORMACT_SCHEDULER``): an address
  where no Dask scheduler answers within ``CONNECT_TIMEOUT_S`` (nothing listens, or another
  server does) is refused. A worker that dies mid-run (killed, out of memory) costs only that
  attempt: the scheduler gives the run to another worker, up to
  ``distributed.scheduler.allowed-failures`` times (Dask's default: 3), then the run is
  recorded as failed with the reason. A cluster left without a worker is waited for, with a
  notice, for ``NO_WORKER_TIMEOUT_S`` seconds; then the sweep gives up (``NoWorkers``).
- ``ProcessPool``: the fallback for ``jobs > 1`` without Dask installed (``pip install
  "tinynormact[cluster]"``): a pool of ``jobs`` spawned processes, with no retries (a killed
  process stops the sweep; the runs finished before are kept in the sweep folder).

Workers run with the BLAS thread pools limited to one thread each (OMP_NUM_THREADS and friends,
set before they import NumPy): small matrix products gain nothing from threads, and N workers
times M threads would oversubscribe the cores. Dask's nanny does the same for ``dask worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from tqdm import tqdm

from tinynormact.experiments.grid import RunSpec
from tinynormact.experiments.runner import failed_record, run_one
from tinynormact.infra.validation import check_integer

__all__ = [
    "NO_WORKER_TIMEOUT_S",
    "SCHEDULER_VARIABLE",
    "NoWorkers",
    "check_scheduler_address",
    "DaskExecutor",
    "Executor",
    "InProcess",
    "ProcessPool",
    "dask_available",
    "open_executor",
]

SCHEDULER_VARIABLE = "TINYNORMACT_SCHEDULER"
CLUSTER_EXTRA = 'pip install "tinynormact[cluster]"'
CONNECT_TIMEOUT_S = 3
NO_WORKER_TIMEOUT_S = 60.0  # how long a sweep waits for a cluster that has no worker
_POLL_S = 1.0  # how often a sweep waiting for runs checks that the cluster still has workers
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx)://[^\s/:]+:\d+$")

Outcome = tuple[RunSpec, dict[str, Any]]


class Executor(Protocol):
    description: str
    workers: int  # how many runs it runs at once

    def run(self, specs: Sequence[RunSpec]) -> Iterator[Outcome]: ...


def _run_or_fail(spec: RunSpec) -> Outcome:
    """``run_one``, with an exception turned into the run's failed record."""
    try:
        return spec, run_one(spec)
    except Exception as exc:  # a failed run is recorded with its reason, the sweep goes on
        return spec, failed_record(spec, f"{type(exc).__name__}: {exc}")


class InProcess:
    """Every run here, one after the other."""

    description = "in this process"
    workers = 1

    def run(self, specs: Sequence[RunSpec]) -> Iterator[Outcome]:
        for spec in specs:
            yield _run_or_fail(spec)


class ProcessPool:
    """``jobs`` spawned processes (the fallback without Dask); no retries."""

    def __init__(self, jobs: int) -> None:
        self.jobs = self.workers = jobs
        self.description = f"{jobs} worker processes (multiprocessing; Dask is not installed)"

    def run(self, specs: Sequence[RunSpec]) -> Iterator[Outcome]:
        if not specs:
            return
        with _single_threaded_children():
            pool = multiprocessing.get_context("spawn").Pool(min(self.jobs, len(specs)), _init_pool_worker)
        try:
            yield from pool.imap_unordered(_run_or_fail, specs)
        except BaseException:  # Ctrl-C or an error: stop the workers now
            pool.terminate()
            raise
        else:  # let the workers exit on their own, running their clean-up
            pool.close()
        finally:
            pool.join()


def _init_pool_worker() -> None:
    """Pool workers ignore Ctrl-C (the parent stops them) and give tqdm a thread lock: its
    default multiprocessing lock would be a named semaphore that a stopped worker leaks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tqdm.set_lock(threading.RLock())


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Set the BLAS thread variables to 1 (where unset) for the processes started inside."""
    unset = [name for name in _THREAD_VARIABLES if name not in os.environ]
    os.environ.update({name: "1" for name in unset})
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


class NoWorkers(OSError):
    """The Dask cluster had no worker for ``NO_WORKER_TIMEOUT_S`` seconds while runs waited."""


class DaskExecutor:
    """Runs submitted to a Dask cluster through ``client``; results consumed as they complete.
    ``notice`` says when the cluster has no worker to run them."""

    def __init__(self, client: Any, description: str, notice: Callable[[str], None] = print) -> None:
        self.client, self.description, self.notice = client, description, notice

    @property
    def workers(self) -> int:
        """The threads of the cluster's workers now (a run takes one)."""
        workers = self.client.scheduler_info().get("workers", {}).values()
        return sum(worker.get("nthreads", 1) for worker in workers)

    def run(self, specs: Sequence[RunSpec]) -> Iterator[Outcome]:
        from distributed import wait

        futures = {
            self.client.submit(run_one, spec, key=f"run-{i}-{spec.file_name}", pure=False): spec
            for i, spec in enumerate(specs)
        }
        pending, watch = set(futures), _WorkerWatch(self)
        try:
            while pending:
                try:
                    with self.client.as_current():  # wait() asks for the current client
                        done, pending = wait(pending, timeout=_POLL_S, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    watch.check(len(pending))
                    continue
                for future in done:
                    yield futures[future], self._record(futures[future], future)
        finally:  # Ctrl-C, an error, or the caller stopped early: drop what is still queued
            self.client.cancel(list(futures), force=True)

    @staticmethod
    def _record(spec: RunSpec, future: Any) -> dict[str, Any]:
        try:
            return future.result()
        except Exception as exc:  # the run raised, or its worker died too often
            return failed_record(spec, _failure_reason(exc))


class _WorkerWatch:
    """Tells, once, that the cluster of ``executor`` has no worker, and raises NoWorkers when it
    has had none for NO_WORKER_TIMEOUT_S seconds."""

    def __init__(self, executor: DaskExecutor) -> None:
        self.executor, self.since = executor, None

    def check(self, waiting: int) -> None:
        if self.executor.client.nthreads():
            self.since = None
            return
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self.executor.notice(
                f"{self.executor.description} has no worker; {waiting} runs wait for one "
                f"(start one with: dask worker ADDRESS), for up to {NO_WORKER_TIMEOUT_S:g} s"
            )
        elif now - self.since >= NO_WORKER_TIMEOUT_S:
            raise NoWorkers(
                f"{self.executor.description} has had no worker for {NO_WORKER_TIMEOUT_S:g} s, and "
                f"{waiting} runs were waiting; the finished runs are kept: start workers and run "
                "the same command again"
            )


def _failure_reason(exc: Exception) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return f"its worker died on every attempt (killed, or out of memory): {exc}"
    return f"{type(exc).__name__}: {exc}"


def dask_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def check_scheduler_address(address: str | None) -> None:
    """Raise ValueError unless ``address`` is None or looks like ``tcp://HOST:PORT``."""
    if address is not None and not _ADDRESS.match(address):
        raise ValueError(f"scheduler {address!r} is not a scheduler address; expected tcp://HOST:PORT")


@contextlib.contextmanager
def open_executor(
    jobs: int = 1, scheduler: str | None = None, notice: Callable[[str], None] = print
) -> Iterator[Executor]:
    """The executor for ``jobs`` local workers or the cluster at ``scheduler`` (see the module
    docstring), closed (its local workers stopped) on the way out, Ctrl-C included; ``notice``
    receives what a Dask executor has to say while it waits."""
    check_integer("jobs", jobs, 1)
    check_scheduler_address(scheduler)
    address = scheduler
    if address is None and jobs == 1:
        yield InProcess()
        return
    if not dask_available():
        if address is not None:
            raise ImportError(f"connecting to a Dask scheduler needs Dask: {CLUSTER_EXTRA}")
        yield ProcessPool(jobs)
        return
    with _dask_client(jobs, address) as (client, description):
        yield DaskExecutor(client, description, notice)


@contextlib.contextmanager
def _dask_client(jobs: int, address: str | None) -> Iterator[tuple[Any, str]]:
    from distributed import Client

    if address is not None:
        _check_scheduler_answers(address)
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise OSError(f"cannot reach the Dask scheduler at {address} ({first_line})") from None
        with client:
            workers = len(client.scheduler_info().get("workers", {}))
            yield client, f"the Dask cluster at {address} ({workers} workers now)"
        return
    blas = {name: "1" for name in _THREAD_VARIABLES}
    # (Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536; each run's train() sets
    # glibc's thresholds itself, infra.allocator, so a worker keeps freed memory all the same.)
    cluster = _local_cluster(jobs, blas)
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client, f"a local Dask cluster of {jobs} worker processes"


def _check_scheduler_answers(address: str) -> None:
    """OSError unless a Dask endpoint at ``address`` completes Dask's handshake within
    CONNECT_TIMEOUT_S: Dask's own time-out covers the connection only, so another kind of
    server (an HTTP server) would keep a Client waiting forever."""
    from distributed.comm import connect

    async def handshake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S)
        await comm.close()

    try:
        asyncio.run(handshake())
    except (OSError, TimeoutError) as exc:
        silent = f"no answer in Dask's protocol within {CONNECT_TIMEOUT_S} s"
        why = silent if isinstance(exc, TimeoutError) else (str(exc).splitlines() or [type(exc).__name__])[0]
        raise OSError(f"cannot reach the Dask scheduler at {address} ({why})") from None


def _local_cluster(jobs: int, env: dict[str, str]) -> Any:
    import logging

    from distributed import LocalCluster

    return LocalCluster(
        n_workers=jobs,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # its HTTP server (metrics) on a free port, no dashboard
        scheduler_kwargs={"dashboard": False},
        silence_logs=logging.CRITICAL,  # failures are recorded with their reasons; no log noise
        env=env,
    )
