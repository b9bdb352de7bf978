"""How a callback finds the ``TrackerLogger`` of a Trainer: the only way in to the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightning_tracker.integration.logger import TrackerLogger

if TYPE_CHECKING:
    from lightning_tracker.integration._compat import Trainer

__all__ = ["find_logger"]


def find_logger(trainer: Trainer) -> TrackerLogger | None:
    """The first ``TrackerLogger`` among the Trainer's loggers (one class under both Lightning packages)."""
    return next((lg for lg in trainer.loggers if isinstance(lg, TrackerLogger)), None)
