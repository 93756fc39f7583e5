"""The ``tinynormact`` command's entry point (``tinynormact.cli.main`` does the work).

Importing the package and its command line takes a few seconds (NumPy, SciPy, Matplotlib); a
Ctrl-C in that time would print Python's KeyboardInterrupt traceback. This module imports
nothing of the package at its top, so it can catch that interrupt and end with one line and
exit code 130, like an interrupt at any later moment.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]


def main() -> int:
    """Import the command line, then run it; 130 with one line when interrupted while importing,
    and the command's own code when interrupted after it finished.

    An interrupt inside an extension module's import can surface as that module's ImportError
    (NumPy turns it into "Importing the numpy C-extensions failed"), so the handler notes that
    the signal came and any import error after it counts as the interrupt.
    """
    interrupted = []

    def note_interrupt(signum: int, frame: object) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note_interrupt)
    try:
        from tinynormact.cli import main as cli_main
    except (KeyboardInterrupt, ImportError):
        if not interrupted:
            raise
        print("tinynormact: error: interrupted while starting; nothing was done", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    code = cli_main()
    # The work is done and its files are written: a Ctrl-C while Python shuts down (a tenth of a
    # second with NumPy, SciPy and Matplotlib loaded) would otherwise end the process by the
    # signal, hiding this exit code.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code
