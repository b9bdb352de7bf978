"""The read side: runs in a store as pandas, without torch or Lightning.

- :mod:`~lightning_tracker.read.store`: ``Store``, the runs of a store and their table.
- :mod:`~lightning_tracker.read.run`: ``Run``, one run's documents, metrics and media.
- :mod:`~lightning_tracker.read.cache`: decoded chunks kept between reads.
- :mod:`~lightning_tracker.read.media`: media objects, checked against their index.
- :mod:`~lightning_tracker.read.checkpoints`: checkpoints a run stored, and their download.
"""

from __future__ import annotations

from lightning_tracker.read.run import Run
from lightning_tracker.read.store import Store

__all__ = ["Run", "Store"]
