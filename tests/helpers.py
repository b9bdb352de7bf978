"""A tiny Lightning model and data for the tests, under either Lightning package.

``pytorch_lightning`` and the unified ``lightning`` package ship the same Trainer with
distinct classes; every helper takes the package name so tests can run under both.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

PACKAGES = ("pytorch_lightning", "lightning.pytorch")


def lightning(package: str = "pytorch_lightning") -> ModuleType:
    """The Lightning package module (``pytorch_lightning`` or ``lightning.pytorch``)."""
    return importlib.import_module(package)


class _TinyMixin:
    """Linear regression that logs ``train/loss`` per step and ``val/loss``/``test/loss`` per epoch."""

    def __init__(self, lr: float = 0.05, width: int = 8, batch_size: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()  # type: ignore[attr-defined]
        self.net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=False)  # type: ignore[attr-defined]
        return loss

    def validation_step(self, batch: Any, _: int) -> None:
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self(x), y))  # type: ignore[attr-defined]

    def test_step(self, batch: Any, _: int) -> None:
        x, y = batch
        self.log("test/loss", nn.functional.mse_loss(self(x), y))  # type: ignore[attr-defined]

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)  # type: ignore[attr-defined]
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1)}

    def train_dataloader(self) -> DataLoader:
        return loader(64, self.hparams.batch_size)  # type: ignore[attr-defined]

    def val_dataloader(self) -> DataLoader:
        return loader(32, 16, seed=1)

    def test_dataloader(self) -> DataLoader:
        return loader(32, 16, seed=2)


_classes: dict[str, type] = {}


def tiny_model_class(package: str = "pytorch_lightning") -> type:
    """The tiny model as a ``LightningModule`` of ``package``."""
    if package not in _classes:
        _classes[package] = type("TinyModel", (_TinyMixin, lightning(package).LightningModule), {})
    return _classes[package]


def tiny_model(package: str = "pytorch_lightning", **hparams: Any) -> Any:
    """A new tiny model built on ``package``'s ``LightningModule``."""
    return tiny_model_class(package)(**hparams)


def __getattr__(name: str) -> Any:
    # built on first use, so this module imports even where pytorch_lightning is missing
    if name == "TinyModel":
        return tiny_model_class("pytorch_lightning")
    raise AttributeError(name)


def loader(n: int, batch_size: int, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x.sum(-1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def trainer(logger: Any, package: str = "pytorch_lightning", **kwargs: Any) -> Any:
    """A quiet CPU trainer of ``package`` that logs every step."""
    defaults: dict[str, Any] = dict(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    defaults.update(kwargs)
    return lightning(package).Trainer(logger=logger, **defaults)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root
TRAIN_SCRIPT = os.path.join(REPO, "tests", "scripts", "train.py")


def start_training(save_dir: str, out: Any, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Starts tests/scripts/train.py for a long run; returns it and its run id once 20 steps are done."""
    proc = subprocess.Popen(
        [sys.executable, TRAIN_SCRIPT, save_dir, str(out), "--steps", "5000", "--sleep", "0.004", "--flush", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    run_id = ""
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("RUN "):
            run_id = line.split()[1]
        if line.startswith("STEP 20"):
            return proc, run_id
    raise RuntimeError(f"the training script ended early with {proc.wait()}")


def local_or_s3(target: str, tmp_path: Any, request: Any) -> tuple[str, dict[str, Any] | None]:
    """``(save_dir, storage_options)`` of a fresh store: a local folder, or a new bucket on the test S3 server."""
    if target == "local":
        return str(tmp_path / "runs"), None
    server = request.getfixturevalue("s3_server")
    return f"s3://{server.new_bucket()}/exp", server.storage_options


def in_terminal(argv: list[str], columns: int, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Runs the CLI in a pseudo-terminal ``columns`` wide; returns its status and every byte it wrote."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    given = env or {}
    env = {**os.environ, **given, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"}
    if "NO_COLOR" not in given:
        env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_tracker.cli", *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=REPO,
        close_fds=True,
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    return proc.wait(timeout=30), out


def wheel_sources(tmp_path: Any) -> Any:
    """A copy of what a wheel is built from, in ``tmp_path/src``: a build writes ``build/`` and
    ``*.egg-info/`` beside its sources, never into the repository."""
    import shutil
    from pathlib import Path

    src = Path(tmp_path) / "src"
    shutil.copytree(
        Path(REPO) / "lightning_tracker",
        src / "lightning_tracker",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(Path(REPO) / name, src / name)
    return src
