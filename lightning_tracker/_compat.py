"""The Lightning classes we build on, from whichever Lightning package is installed."""

from __future__ import annotations

try:
    from lightning_fabric.utilities.rank_zero import rank_zero_only
    from pytorch_lightning import LightningModule, Trainer, seed_everything
    from pytorch_lightning.callbacks import Callback, DeviceStatsMonitor, LearningRateMonitor
    from pytorch_lightning.tuner import Tuner
    from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
except ImportError:  # only the unified `lightning` package is installed
    from lightning.fabric.utilities.rank_zero import rank_zero_only  # type: ignore[no-redef]
    from lightning.pytorch import LightningModule, Trainer, seed_everything  # type: ignore[no-redef]
    from lightning.pytorch.callbacks import (  # type: ignore[no-redef]
        Callback,
        DeviceStatsMonitor,
        LearningRateMonitor,
    )
    from lightning.pytorch.tuner import Tuner  # type: ignore[no-redef]
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment  # type: ignore[no-redef]

try:
    from typing import override  # type: ignore[attr-defined]
except ImportError:  # Python < 3.12
    from typing_extensions import override

__all__ = [
    "Callback",
    "DeviceStatsMonitor",
    "LearningRateMonitor",
    "LightningModule",
    "Logger",
    "Trainer",
    "Tuner",
    "override",
    "rank_zero_experiment",
    "rank_zero_only",
    "seed_everything",
]
