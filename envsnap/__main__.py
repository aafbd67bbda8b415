"""``python -m envsnap``."""

from __future__ import annotations

import sys

from envsnap.cli import main

if __name__ == "__main__":
    sys.exit(main())
