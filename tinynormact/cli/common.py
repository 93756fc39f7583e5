"""What every part of the command line shares: its name, its exit codes, its notices and errors."""

from __future__ import annotations

import sys

__all__ = ["EXIT_CODES", "OPTION_FLAGS", "PROG", "UsageError", "error", "notice"]

PROG = "tinynormact"
EXIT_CODES = {"ok": 0, "diverged": 1, "usage": 2, "unexpected": 3, "interrupted": 130}
# the TrainConfig fields given as repeatable KEY=VALUE flags, and their flags
OPTION_FLAGS = {"dataset_options": "--dataset-option", "activation_options": "--activation-option"}


class UsageError(Exception):
    """A command-line mistake found after parsing (reported like argparse's own errors)."""


def error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def notice(message: str) -> None:
    print(f"{PROG}: notice: {message}", file=sys.stderr)
