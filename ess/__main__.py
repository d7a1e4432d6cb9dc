"""``python -m ess``."""

import sys

from ess.cli import main

if __name__ == "__main__":
    sys.exit(main())
