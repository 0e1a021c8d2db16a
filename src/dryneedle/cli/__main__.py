"""``python -m dryneedle.cli`` runs the command line.

Layer: command line. May import :mod:`dryneedle.cli` only.
"""

import sys

from dryneedle.cli import main

if __name__ == "__main__":
    sys.exit(main())
