"""``python -m anysgi``: the same as the ``anysgi`` command."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
