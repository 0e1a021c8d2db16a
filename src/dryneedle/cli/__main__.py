"""``python -m dryneedle.cli`` runs the command line."""

import sys

from dryneedle.cli import main

if __name__ == "__main__":
    sys.exit(main())
