"""``python -m tinynormact``: the command line of ``tinynormact.cli``, started like the
``tinynormact`` command (an interrupt while it loads ends with one line, not a traceback)."""

import sys

from tinynormact_launcher import main

if __name__ == "__main__":
    sys.exit(main())
