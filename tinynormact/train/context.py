"""The contexts a run executes in: Ctrl-C deferred to the end of a step, Ctrl-C ignored while a
finished run's last files are written, and the current device and dtype."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tinynormact.engine import backend

__all__ = ["deferred_interrupt", "interrupts_ignored", "using_device"]



@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Within the block, the first Ctrl-C only sets a flag (read by the returned function) so the
    loop can stop between steps; a second Ctrl-C interrupts at once. This does nothing outside
    the main thread (where Python delivers no signals) or when Ctrl-C has a handler other than
    Python's default (for example ignored in worker processes)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield lambda: False
        return
    requested = []
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        requested.append(True)
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(requested)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def using_device(device: str, dtype: str | None = None) -> Iterator[None]:
    """Make ``device`` (and ``dtype``, if given) current within the block; restore them after."""
    old_device, old_dtype = backend.get_device(), backend.get_default_dtype()
    backend.set_device(device)
    backend.set_default_dtype(old_dtype if dtype is None else dtype)
    try:
        yield
    finally:
        backend.set_device(old_device)
        backend.set_default_dtype(old_dtype)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ignore Ctrl-C within the block (main thread only: elsewhere Python delivers no signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
