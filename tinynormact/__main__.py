"""``python -m tinynormact``: the command line of ``tinynormact.cli``."""

import sys

from tinynormact.cli import main

if __name__ == "__main__":
    sys.exit(main())
