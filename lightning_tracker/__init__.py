"""lightning_tracker: a self-hosted experiment tracker for PyTorch Lightning.

Record every run with ``Trainer(logger=TrackerLogger())`` and compare runs with
``Store(...).table()``. The read side (``Store``, ``Run``) imports without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning_tracker._version import __version__
from lightning_tracker.exceptions import TrackerError
from lightning_tracker.read import Run, Store

if TYPE_CHECKING:
    from lightning_tracker.integration.callbacks import GradientMonitor, SystemMonitor
    from lightning_tracker.integration.experiment import LiveRun
    from lightning_tracker.integration.logger import TrackerLogger

__all__ = [
    "GradientMonitor",
    "LiveRun",
    "Run",
    "Store",
    "SystemMonitor",
    "TrackerError",
    "TrackerLogger",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # the logger needs torch and Lightning; importing it lazily keeps the read side light
    if name == "TrackerLogger":
        from lightning_tracker.integration.logger import TrackerLogger

        return TrackerLogger
    if name == "LiveRun":  # what `TrackerLogger.experiment` returns
        from lightning_tracker.integration.experiment import LiveRun

        return LiveRun
    if name in ("GradientMonitor", "SystemMonitor"):
        from lightning_tracker.integration import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'lightning_tracker' has no attribute {name!r}")
