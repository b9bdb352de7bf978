"""Lightning callbacks that record more than the metrics a model logs itself."""

from __future__ import annotations

from lightning_tracker.integration.callbacks.gradients import GradientMonitor
from lightning_tracker.integration.callbacks.system import SystemMonitor

__all__ = ["GradientMonitor", "SystemMonitor"]
