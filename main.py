"""PartSight entry point: `python main.py [command]` is the same as the `partsight` command."""
import sys

from gui.cli import main

if __name__ == "__main__":
    sys.exit(main())
