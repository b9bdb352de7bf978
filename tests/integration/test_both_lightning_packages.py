"""Lightning's own logger tests (``tests/tests_pytorch/loggers/test_all.py``), run against
``TrackerLogger`` under each Lightning package while both are installed.

With ``pytorch_lightning`` and the unified ``lightning`` package side by side, the logger
must be a real ``Logger`` of whichever package the ``Trainer`` comes from: the
``isinstance`` checks pass, rank > 0 gets that package's ``DummyExperiment`` and only
rank 0 writes.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from lightning_tracker import Store, TrackerLogger
from tests.helpers import PACKAGES, lightning

pytestmark = pytest.mark.parametrize("package", PACKAGES)


def _both_installed() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch"):
        importlib.import_module(name)  # this file is about both; an ImportError fails it loudly


def _boring_model(package: str) -> Any:
    return importlib.import_module(f"{package}.demos.boring_classes").BoringModel()


def test_the_logger_is_a_logger_and_its_callbacks_are_callbacks_of_each_package(package: str, tmp_path: Path) -> None:
    from lightning_tracker import GradientMonitor, SystemMonitor

    _both_installed()
    loggers = importlib.import_module(f"{package}.loggers")
    callbacks = importlib.import_module(f"{package}.callbacks")
    assert isinstance(TrackerLogger(tmp_path, name="p"), loggers.Logger)
    assert isinstance(GradientMonitor(), callbacks.Callback) and isinstance(SystemMonitor(), callbacks.Callback)


class StoreHistory:
    """``StoreHistoryLogger`` of Lightning's ``_test_loggers_fit_test``: a subclass keeps what it logs."""

    @staticmethod
    def build(tmp_path: Path) -> Any:
        class StoreHistoryLogger(TrackerLogger):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.history: list[tuple[int | None, dict[str, Any]]] = []

            def log_metrics(self, metrics: Any, step: int | None = None) -> None:
                super().log_metrics(metrics, step)
                self.history.append((step, metrics))

        return StoreHistoryLogger(save_dir=str(tmp_path))


def test_lightning_s_fit_and_test_sequence_of_log_metrics_calls(package: str, tmp_path: Path) -> None:
    pl = lightning(package)

    class CustomModel(importlib.import_module(f"{package}.demos.boring_classes").BoringModel):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = self.step(batch)
            self.log("train_some_val", loss)
            return {"loss": loss}

        def on_validation_epoch_end(self) -> None:
            self.log_dict({"early_stop_on": torch.tensor(1), "val_loss": torch.tensor(0.5)})

        def on_test_epoch_end(self) -> None:
            self.log("test_loss", torch.tensor(2))

    logger = StoreHistory.build(tmp_path)
    trainer = pl.Trainer(
        max_epochs=1,
        logger=logger,
        limit_train_batches=1,
        limit_val_batches=1,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
    )
    trainer.fit(CustomModel())
    trainer.test(verbose=False)
    assert [(s, sorted(m)) for s, m in logger.history] == [
        (0, ["epoch", "train_some_val"]),
        (0, ["early_stop_on", "epoch", "val_loss"]),
        (1, ["epoch", "test_loss"]),
    ]
    assert Store(tmp_path).run(logger.version).summary["test_loss"]["last"] == 2.0


def test_a_trainer_holding_the_logger_pickles(package: str, tmp_path: Path) -> None:
    pl = lightning(package)
    logger = TrackerLogger(save_dir=str(tmp_path))
    _ = logger.experiment
    logger.log_metrics({"a": 1})
    logger.save()
    pickle.dumps(logger)
    trainer2 = pickle.loads(pickle.dumps(pl.Trainer(max_epochs=1, logger=logger)))
    trainer2.logger.log_metrics({"acc": 1.0})
    assert trainer2.logger.name == logger.name and trainer2.logger.save_dir == logger.save_dir
    trainer2.logger.finalize("success")
    logger.finalize("success")


class LazyInitExperimentCheck:
    """Lightning's check: on rank 0 the experiment exists by ``setup``."""

    def setup(self, trainer: Any, pl_module: Any, stage: str | None = None) -> None:
        if trainer.global_rank == 0:
            assert trainer.logger.experiment is not None


class RankZeroLoggerCheck:
    """Lightning's check: rank > 0 gets the package's ``DummyExperiment``, rank 0 the real one."""

    package = "pytorch_lightning"

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        dummy = importlib.import_module(f"{self.package}.loggers.logger").DummyExperiment
        is_dummy = isinstance(trainer.logger.experiment, dummy)
        if trainer.is_global_zero:
            assert not is_dummy
        else:
            assert is_dummy
            assert pl_module.logger.experiment.something(foo="bar") is None


def _callback(package: str, check: type) -> Any:
    # the checks above as Callbacks of `package`, picklable for ddp_spawn (module-level classes)
    cls = globals().setdefault(
        f"{check.__name__}_{package.replace('.', '_')}",
        type(
            f"{check.__name__}_{package.replace('.', '_')}", (check, lightning(package).Callback), {"package": package}
        ),
    )
    cls.__qualname__ = cls.__name__
    return cls()


for _package in PACKAGES:  # defined at import, so the spawned processes find them by name
    for _check in (LazyInitExperimentCheck, RankZeroLoggerCheck):
        _callback(_package, _check)


def test_lightning_s_logger_initialization_under_ddp_spawn(package: str, tmp_path: Path) -> None:
    """Lightning's ``test_logger_initialization``: rank > 0 gets a dummy experiment and writes nothing."""
    pl = lightning(package)
    logger = TrackerLogger(save_dir=str(tmp_path))
    trainer = pl.Trainer(
        logger=logger,
        default_root_dir=tmp_path,
        strategy="ddp_spawn",
        accelerator="cpu",
        devices=2,
        max_steps=1,
        callbacks=[_callback(package, LazyInitExperimentCheck), _callback(package, RankZeroLoggerCheck)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_boring_model(package))
    runs = Store(tmp_path).runs()
    assert [run.id for run in runs] == [logger.version]
    assert len(runs[0].doc["sessions"]) == 1, "only rank 0 opened the run"
