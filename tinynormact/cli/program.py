"""``main(argv)``: parse, run the subcommand, and turn what it raised into one line and an exit
code (a traceback goes to a log file only for an unexpected error)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import tinynormact
from tinynormact.cli.common import EXIT_CODES, PROG, UsageError, error, notice
from tinynormact.cli.options import COMMANDS, build_parser

__all__ = ["main"]


def _show_notice(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    """warnings.showwarning for the command line: RunNotice as one notice line, others as usual."""
    from tinynormact.infra.files import RunNotice

    if issubclass(category, RunNotice):
        notice(str(message))
    else:
        _default_showwarning(message, category, *args, **kwargs)


_default_showwarning = warnings.showwarning


def _log_unexpected(exc: BaseException) -> str:
    """Write the traceback of ``exc`` to a new log file; return the file's path."""
    handle, path = tempfile.mkstemp(prefix=f"{PROG}-error-", suffix=".log")
    with os.fdopen(handle, "w") as log:
        log.write(f"{PROG} {tinynormact.__version__}, command line: {sys.argv!r}\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=log)
    return path


def _exit_code(exc: Exception) -> str:
    """The EXIT_CODES key of an exception a command ended with. The package's own RuntimeErrors
    are imported here, when one was raised, not at start."""
    if isinstance(exc, UsageError | ValueError | OSError | ImportError):
        return "usage"
    if isinstance(exc, RuntimeError):
        from tinynormact.engine.backend import DeviceError
        from tinynormact.infra.folder_lock import FolderLocked
        from tinynormact.train.health import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            return "diverged"
        if isinstance(exc, DeviceError | FolderLocked):
            return "usage"
    return "unexpected"


def _command_of(argv: Sequence[str]) -> list[str]:
    """The subcommand ``argv`` names, if any: its first word (the main parser's options exit)."""
    return [argv[0]] if argv and argv[0] in COMMANDS else []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]) and return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:  # building the command's options imports what it needs: a Ctrl-C can come here too
        args = build_parser(_command_of(argv)).parse_args(argv)
    except KeyboardInterrupt:
        error("interrupted while starting; nothing was done")
        return EXIT_CODES["interrupted"]
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        from tinynormact.infra.files import RunNotice

        with warnings.catch_warnings():
            warnings.simplefilter("always", RunNotice)
            warnings.showwarning = _show_notice
            return handler(args)
    except KeyboardInterrupt as exc:
        error(f"interrupted{': ' + str(exc) if str(exc) else ''}")
        return EXIT_CODES["interrupted"]
    except Exception as exc:
        code = _exit_code(exc)
        if code == "unexpected":  # a bug or an exhausted resource: say so, keep the traceback in a log
            what = (
                "out of memory" if isinstance(exc, MemoryError) else f"unexpected {type(exc).__name__}: {exc}"
            )
            error(f"{what}; the traceback is in {_log_unexpected(exc)}")
        else:
            error(str(exc))
        return EXIT_CODES[code]
