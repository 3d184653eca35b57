"""``python -m matome``: the ``matome`` command line (:func:`matome.cli.main`)."""

from __future__ import annotations

import sys

from matome.cli import main

if __name__ == "__main__":
    sys.exit(main())
