"""``python -m lightning_tracker.cli``: the same as the ``lightning-tracker`` command."""

import sys

from lightning_tracker.cli import main

sys.exit(main())
