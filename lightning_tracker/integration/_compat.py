"""The Lightning classes we build on, from whichever Lightning package is installed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # the type checker sees one package; at run time either is accepted
    from lightning_fabric.utilities.rank_zero import rank_zero_only
    from pytorch_lightning import LightningModule, Trainer, seed_everything
    from pytorch_lightning.callbacks import Callback, ModelCheckpoint
    from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
else:
    try:
        from lightning_fabric.utilities.rank_zero import rank_zero_only
        from pytorch_lightning import LightningModule, Trainer, seed_everything
        from pytorch_lightning.callbacks import Callback, ModelCheckpoint
        from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
    except ImportError:  # only the unified `lightning` package is installed
        from lightning.fabric.utilities.rank_zero import rank_zero_only
        from lightning.pytorch import LightningModule, Trainer, seed_everything
        from lightning.pytorch.callbacks import Callback, ModelCheckpoint
        from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

__all__ = [
    "Callback",
    "LightningModule",
    "Logger",
    "ModelCheckpoint",
    "Trainer",
    "override",
    "rank_zero_experiment",
    "rank_zero_only",
    "seed_everything",
]
