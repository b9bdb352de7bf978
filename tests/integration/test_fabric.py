"""``TrackerLogger`` in a real Lightning Fabric loop (CPU), under each installed Fabric:
``fabric.log``/``fabric.log_dict`` and ``log_hyperparams`` go to the run."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_tracker import Store, TrackerLogger
from tests.helpers import loader

FABRICS = ("lightning_fabric", "lightning.fabric")


@pytest.mark.parametrize("package", FABRICS)
def test_fabric_log_and_log_dict_record_the_loop_s_metrics(package: str, tmp_path: Path) -> None:
    fabric_module = importlib.import_module(package)
    logger = TrackerLogger(tmp_path, name="fabric", flush_interval=0.2)
    fabric = fabric_module.Fabric(accelerator="cpu", devices=1, loggers=[logger])
    fabric.launch()
    assert fabric.logger is logger
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model, optimizer = fabric.setup(model, optimizer)
    fabric.logger.log_hyperparams({"lr": 0.05, "batch_size": 8})
    for step, (x, y) in enumerate(fabric.setup_dataloaders(loader(64, 8))):
        loss = nn.functional.mse_loss(model(x), y)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        fabric.log_dict({"train/loss": loss, "train/batch": float(step)}, step=step)
        fabric.log("lr", optimizer.param_groups[0]["lr"], step=step)
    logger.finalize("success")

    run = Store(tmp_path).run(logger.version)
    assert run.status == "finished" and run.config == {"lr": 0.05, "batch_size": 8}
    metrics = run.metrics(wide=False)
    for key in ("train/loss", "train/batch", "lr"):
        assert metrics[metrics.key == key].step.tolist() == list(range(8)), key
    assert run.summary["train/batch"]["last"] == 7.0
