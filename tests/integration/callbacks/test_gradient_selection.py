"""Which tensors GradientMonitor records and under which names: wrapper components cut whole,
a user's own names kept, DeepSpeed named in a warning instead of silence."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

from lightning_tracker import GradientMonitor, Store, TrackerLogger
from tests.helpers import lightning, loader, trainer


def _model(package: str) -> Any:
    class Model(lightning(package).LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Module()
            self.encoder.submodule = nn.Linear(4, 4)  # "submodule" ends in "module": a name, not a wrapper
            self.encoder.layer = checkpoint_wrapper(nn.Linear(4, 1))  # adds _checkpoint_wrapped_module

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            return self.encoder.layer(self.encoder.submodule(batch[0])).pow(2).mean()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

        def train_dataloader(self) -> Any:
            return loader(8, 4)

    return Model()


def test_wrapper_components_are_cut_whole_and_user_names_kept(pl_package: str, tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    trainer(logger, pl_package, max_steps=1, callbacks=[GradientMonitor(bins=4, modules="encoder.*")]).fit(
        _model(pl_package)
    )
    assert sorted(Store(tmp_path).run(logger.version).histograms()["tensor"]) == [
        "encoder.layer.bias",
        "encoder.layer.weight",
        "encoder.submodule.bias",
        "encoder.submodule.weight",
    ]


def test_deepspeed_is_named_in_a_warning_instead_of_silence(
    pl_package: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pl = lightning(pl_package)

    class DeepSpeedStrategy(pl.strategies.SingleDeviceStrategy):  # detected by name: deepspeed is not installed
        pass

    logger = TrackerLogger(tmp_path, name="p")
    strategy = DeepSpeedStrategy(device=torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
        trainer(logger, pl_package, max_steps=1, strategy=strategy, callbacks=[GradientMonitor()]).fit(
            _model(pl_package)
        )
    assert "GradientMonitor records nothing under DeepSpeed" in caplog.text
    assert len(Store(tmp_path).run(logger.version).histograms()) == 0
