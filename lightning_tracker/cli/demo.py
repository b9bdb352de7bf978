"""The demo: train a small classifier on scikit-learn's bundled digits in several configurations.

The digits data set (1,797 8×8 images) ships inside scikit-learn, so nothing is
downloaded. Each configuration is one run recorded by :class:`TrackerLogger`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

from lightning_tracker.exceptions import MissingDependencyError

__all__ = ["DEFAULT_CONFIGS", "DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """One configuration of the demo model."""

    lr: float = 0.05
    width: int = 64
    epochs: int = 4
    batch_size: int = 64
    optimizer: str = "sgd"


DEFAULT_CONFIGS = (
    DemoConfig(lr=0.05, width=64, epochs=4),
    DemoConfig(lr=0.005, width=64, epochs=4),
    DemoConfig(lr=0.05, width=16, epochs=4),
    DemoConfig(lr=0.05, width=128, epochs=8),
)


def _load_digits() -> Any:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise MissingDependencyError(
            "the demo needs scikit-learn for its bundled digits data set; install it with: pip install scikit-learn"
        ) from err
    return load_digits()


def _make_module(config: DemoConfig) -> Any:
    import torch
    from torch import nn

    from lightning_tracker.integration._compat import LightningModule

    class DigitsClassifier(LightningModule):
        def __init__(self, lr: float, width: int, optimizer: str, **_: Any) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(
                nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def _step(self, batch: Any, stage: str) -> torch.Tensor:
            x, y = batch
            logits = self(x)
            loss = nn.functional.cross_entropy(logits, y)
            acc = (logits.argmax(-1) == y).float().mean()
            on_step = stage == "train"
            self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True)
            self.log(f"{stage}/acc", acc, on_step=on_step, on_epoch=not on_step)
            return loss

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            return self._step(batch, "train")

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self._step(batch, "val")
            if batch_idx == 0 and self.logger is not None:
                self._log_samples(*batch)

        def _log_samples(self, x: torch.Tensor, y: torch.Tensor) -> None:
            """Sample predictions as images, and accuracy per digit as a table (the media panel)."""
            pred = self(x).argmax(-1)
            images = x[:8].reshape(-1, 1, 8, 8).repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
            captions = [f"predicted {p}, true {t}" for p, t in zip(pred[:8].tolist(), y[:8].tolist(), strict=True)]
            step = self.global_step
            logger: Any = self.logger  # the TrackerLogger the demo's Trainer was given
            logger.log_image("val/predictions", list(images), step=step, caption=captions)
            rows = [
                [d, round(float((pred[y == d] == d).float().mean()), 3), int((y == d).sum())]
                for d in range(10)
                if (y == d).any()
            ]
            logger.log_table(
                "val/per_digit",
                columns=["digit", "accuracy", "count"],
                data=rows,
                step=step,
            )

        def test_step(self, batch: Any, _: int) -> None:
            self._step(batch, "test")

        def configure_optimizers(self) -> Any:
            params = self.parameters()
            hp = self.hparams
            if hp["optimizer"] == "adam":
                return torch.optim.Adam(params, lr=hp["lr"])
            return torch.optim.SGD(params, lr=hp["lr"], momentum=0.9)

    return DigitsClassifier(**asdict(config))


def _loaders(batch_size: int) -> tuple[Any, Any, Any]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    digits = _load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    n_train, n_val = 1200, 300
    splits = [(0, n_train), (n_train, n_train + n_val), (n_train + n_val, len(x))]
    sets = [TensorDataset(x[a:b], y[a:b]) for a, b in splits]
    return (
        DataLoader(sets[0], batch_size=batch_size, shuffle=True),
        DataLoader(sets[1], batch_size=256),
        DataLoader(sets[2], batch_size=256),
    )


def run_demo(
    save_dir: str = "./runs",
    project: str = "demo",
    configs: tuple[DemoConfig, ...] = DEFAULT_CONFIGS,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Trains every configuration as one run and returns their ids.

    Args:
        save_dir: where runs go (a folder or fsspec URL).
        project: the project name.
        configs: the configurations to train.
        storage_options: fsspec options for a remote ``save_dir``.
    """
    import logging
    import warnings

    import torch

    from lightning_tracker.integration._compat import ModelCheckpoint, Trainer, seed_everything
    from lightning_tracker.integration.logger import TrackerLogger

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    ids = []
    for config in configs:
        seed_everything(0, verbose=False)
        train, val, test = _loaders(config.batch_size)
        logger = TrackerLogger(
            save_dir, name=project, tags=["demo"], group="digits-mlp", log_model=True, storage_options=storage_options
        )
        # Lightning's own copy of the best checkpoint lives only while the run trains: the run keeps it (log_model)
        with tempfile.TemporaryDirectory(prefix="lt-demo-") as checkpoints:
            best = ModelCheckpoint(dirpath=checkpoints, monitor="val/acc", mode="max")
            trainer = Trainer(
                max_epochs=config.epochs,
                logger=logger,
                log_every_n_steps=1,
                callbacks=[best],
                enable_progress_bar=False,
                enable_model_summary=False,
                accelerator="cpu",
                devices=1,
            )
            module = _make_module(config)
            trainer.fit(module, train, val)
            trainer.test(module, test, verbose=False)
            logger.finalize("success")  # stored before the folder goes
        ids.append(logger.version)
    return ids
