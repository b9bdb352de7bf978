"""A LightningCLI run records its whole parsed configuration (model, data, trainer, optimizer)
as the run's hyperparameters, under each Lightning package, without the user calling anything;
the logger's own secrets (storage options, webhook) are redacted."""

from __future__ import annotations

import importlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pytest.importorskip("jsonargparse")

from lightning_tracker import Store
from tests.helpers import PACKAGES, loader

pytestmark = pytest.mark.parametrize("package", PACKAGES)


def _classes(package: str) -> tuple[type, type]:
    pl = importlib.import_module(package)

    class Regressor(pl.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self, width: int = 8, dropout: float = 0.0) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, width), nn.Dropout(dropout), nn.Linear(width, 1))

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            loss = nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("train/loss", loss)
            return loss

    class Data(pl.LightningDataModule):  # type: ignore[misc,name-defined]
        def __init__(self, batch_size: int = 8, samples: int = 64) -> None:
            super().__init__()
            self.batch_size, self.samples = batch_size, samples

        def train_dataloader(self) -> Any:
            return loader(self.samples, self.batch_size)

    return Regressor, Data


def test_lightning_cli_records_its_whole_configuration_as_hyperparameters(package: str, tmp_path: Path) -> None:
    cli = importlib.import_module(f"{package}.cli")
    regressor, data = _classes(package)
    hook = "https://hooks.example.net/services/T0/B0/tok-cli-secret"
    runs = tmp_path / "runs"
    args = [
        "fit",
        "--trainer.logger=lightning_tracker.TrackerLogger",
        f"--trainer.logger.save_dir={runs}",
        "--trainer.logger.name=cli",
        f"--trainer.logger.alerts={hook}",
        '--trainer.logger.storage_options={"token": "tok-storage-secret"}',
        "--trainer.max_epochs=2",
        "--trainer.log_every_n_steps=1",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.enable_checkpointing=false",
        "--model.width=16",
        "--data.batch_size=4",
        "--optimizer=SGD",
        "--optimizer.lr=0.03",
        "--lr_scheduler=StepLR",
        "--lr_scheduler.step_size=1",
    ]
    cli.LightningCLI(regressor, data, args=args, save_config_kwargs={"overwrite": True})

    (run,) = Store(runs).runs(project="cli")
    config = run.config
    assert config["model"] == {"width": 16, "dropout": 0.0}
    assert config["data"] == {"batch_size": 4, "samples": 64}
    assert config["trainer"]["max_epochs"] == 2 and config["trainer"]["accelerator"] == "cpu"
    assert config["optimizer"]["class_path"] == "torch.optim.SGD" and config["optimizer"]["init_args"]["lr"] == 0.03
    assert config["lr_scheduler"]["init_args"]["step_size"] == 1
    logger_args = config["trainer"]["logger"]["init_args"]
    assert logger_args["name"] == "cli" and logger_args["alerts"] == "***REDACTED***"
    stored = json.dumps(config) + (runs / "cli" / run.id / "run.json").read_text()
    assert "tok-cli-secret" not in stored and "tok-storage-secret" not in stored
    assert run.summary["train/loss"]["count"] > 0


def test_lightning_cli_config_yaml_keeps_no_secret_of_the_logger(package: str, tmp_path: Path) -> None:
    cli = importlib.import_module(f"{package}.cli")
    regressor, data = _classes(package)
    # made here: the run's git.diff of a dirty checkout holds this file's text, never these values
    hook_secret, storage_secret = f"tok-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    hook = f"https://hooks.example.net/services/T0/B0/{hook_secret}"
    runs = tmp_path / "runs"
    args = [
        "fit",
        "--trainer.logger=lightning_tracker.TrackerLogger",
        f"--trainer.logger.save_dir={runs}",
        "--trainer.logger.name=cli",
        f"--trainer.logger.alerts={hook}",
        f'--trainer.logger.storage_options={{"token": "{storage_secret}"}}',
        "--trainer.max_epochs=1",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.enable_checkpointing=false",
        "--model.width=16",
        "--optimizer=SGD",
    ]
    cli.LightningCLI(regressor, data, args=args)
    written = (runs / "config.yaml").read_text()  # SaveConfigCallback's, in trainer.log_dir (our save_dir)
    assert hook_secret not in written and storage_secret not in written
    import yaml

    saved = yaml.safe_load(written)  # still the whole configuration, as LightningCLI wrote it
    assert saved["model"] == {"width": 16, "dropout": 0.0} and saved["trainer"]["max_epochs"] == 1
    assert saved["trainer"]["logger"]["init_args"]["alerts"] == "***REDACTED***"
    assert saved["trainer"]["logger"]["init_args"]["name"] == "cli"
    every_file = "".join(p.read_text(errors="replace") for p in runs.rglob("*") if p.is_file())
    assert hook_secret not in every_file and storage_secret not in every_file
