"""``python -m ess``."""

from ess.cli import main_entry

if __name__ == "__main__":
    main_entry()
