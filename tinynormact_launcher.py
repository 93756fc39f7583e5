"""The ``tinynormact`` command's entry point (``tinynormact.cli.main`` does the work).

Importing the package and its command line takes a few seconds (NumPy, SciPy, Matplotlib); a
Ctrl-C in that time would print Python's KeyboardInterrupt traceback. This module imports
nothing of the package at its top, so it can catch that interrupt and end with one line and
exit code 130, like an interrupt at any later moment.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    """Import the command line, then run it; 130 with one line when interrupted while importing."""
    try:
        from tinynormact.cli import main as cli_main
    except KeyboardInterrupt:
        print("tinynormact: error: interrupted while starting; nothing was done", file=sys.stderr)
        return 130
    return cli_main()
