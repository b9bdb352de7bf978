"""A WandbLogger training script moved to TrackerLogger: every W&B call kept, renamed where needed.

Run it with ``python examples/from_wandb.py [SAVE_DIR]`` (default ``./runs``); it trains a
small regression model for two epochs, records it, and prints what was stored. Each
``# W&B:`` comment is the line this one replaces; ``docs/migrating.md`` has the whole mapping.
"""

from __future__ import annotations

import sys

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_tracker import Store, TrackerLogger


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, width: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()  # W&B: the same; the logger stores them as the run's config
        self.net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train/loss", loss)  # W&B: the same
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Samples(pl.Callback):
    """What a W&B user logs from a callback: an image and a table, with W&B's arguments."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        step = trainer.global_step
        picture = np.random.default_rng(step).integers(0, 255, (32, 32, 3), dtype=np.uint8)
        # W&B: wandb_logger.log_image(key="val/samples", images=[picture], caption=["noise"])
        trainer.logger.log_image("val/samples", [picture], step=step, caption=["noise"])
        loss = float(trainer.callback_metrics["val/loss"])
        # W&B: wandb_logger.log_table(key="val/errors", columns=[...], data=[...])
        trainer.logger.log_table("val/errors", columns=["epoch", "val/loss"], data=[[trainer.current_epoch, loss]])


def data(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(-1, keepdim=True)), batch_size=16)


def main(save_dir: str = "./runs") -> str:
    # W&B: WandbLogger(project="regression", name="baseline", tags=[...], group="sweep-1",
    #                  notes="...", log_model=True, save_dir="wandb")
    logger = TrackerLogger(
        save_dir,  # a folder, or a bucket: "s3://bucket/runs" (W&B's entity= is whose bucket it is)
        name="regression",  # W&B's project=
        run_name="baseline",  # W&B's name=
        tags=["from-wandb"],
        group="sweep-1",
        notes="moved from WandbLogger",
        log_model=True,  # W&B: log_model=True: the checkpoints ModelCheckpoint saves are stored with the run
    )
    model = Regressor()
    logger.watch(model, log="all", log_freq=4)  # W&B: wandb_logger.watch(model, log="all", log_freq=4)
    trainer = pl.Trainer(
        logger=logger,
        max_epochs=2,
        log_every_n_steps=1,
        accelerator="cpu",
        callbacks=[Samples(), pl.callbacks.ModelCheckpoint(monitor="val/loss")],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data(128, 0), data(32, 1))

    # W&B: wandb.Api().run("entity/regression/<id>"): here the store is read directly
    run = Store(save_dir).run(logger.version, "regression")
    print(f"run {run.id} ({run.name}) in {save_dir}: {run.status}")
    print(f"config: lr={run.config['lr']} width={run.config['width']}")
    print(f"val/loss: {run.summary['val/loss']['last']:.4f} after {len(run.metrics())} steps")
    print(f"media: {sorted(set(run.media()['key']))}, checkpoints: {[ref.name for ref in run.checkpoints]}")
    print(f"gradient norms: {len(run.gradients().columns) - 2}, histograms: {run.histograms()['tensor'].nunique()}")
    return run.id


if __name__ == "__main__":
    main(*sys.argv[1:2])
