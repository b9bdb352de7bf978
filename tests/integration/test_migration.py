"""Moving from ``WandbLogger``, ``TensorBoardLogger`` or ``CSVLogger``: their arguments fail
naming ours, and ``watch`` records what ``wandb.watch`` would (through ``GradientMonitor``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError
from tests.helpers import PACKAGES, tiny_model, trainer


@pytest.mark.parametrize(
    ("argument", "ours"),
    [
        ("project", "name="),
        ("id", "version="),
        ("dir", "save_dir="),
        ("entity", "save_dir="),
        ("config", "log_hyperparams"),
        ("mode", "offline="),
        ("log_graph", "no graph"),
        ("default_hp_metric", "not needed"),
        ("sub_dir", "name="),
        ("flush_logs_every_n_steps", "flush_interval="),
    ],
)
def test_an_argument_of_another_logger_fails_naming_ours(argument: str, ours: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"TrackerLogger has no argument {argument}=.*{ours}") as err:
        TrackerLogger(tmp_path, **{argument: "x"})
    assert "\n" not in str(err.value)


def test_an_unknown_argument_fails_naming_the_closest_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"no argument flush_intervall=; did you mean flush_interval="):
        TrackerLogger(tmp_path, flush_intervall=1.0)


@pytest.mark.parametrize("package", PACKAGES)
def test_watch_records_gradients_and_weights_every_log_freq_steps(package: str, tmp_path: Path) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    model = tiny_model(package)
    logger.watch(model, log="all", log_freq=4)
    trainer(logger, package, max_epochs=1).fit(model)  # 8 optimizer steps
    hist = Store(tmp_path).run(logger.version).histograms()
    assert sorted(set(hist["step"])) == [0, 4]
    assert set(hist["kind"]) == {"gradient", "parameter"}
    assert set(hist["tensor"]) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}


def test_watch_of_a_submodule_records_only_its_tensors(tmp_path: Path) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    model = tiny_model()
    logger.watch(model.net[2])
    trainer(logger, max_epochs=1).fit(model)
    hist = Store(tmp_path).run(logger.version).histograms()
    assert set(hist["tensor"]) == {"net.2.weight", "net.2.bias"} and set(hist["kind"]) == {"gradient"}
    assert sorted(set(hist["step"])) == [0]  # log_freq=100, as wandb's default


def test_watch_checks_its_arguments_at_once(tmp_path: Path) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    with pytest.raises(InvalidArgumentError, match=r"log='weights' must be one of 'gradients', 'parameters' or 'all'"):
        logger.watch(tiny_model(), log="weights")
    with pytest.raises(InvalidArgumentError, match=r"log_freq=0 must be an integer >= 1"):
        logger.watch(tiny_model(), log_freq=0)
    with pytest.raises(InvalidArgumentError, match=r"watch\(model=.*nn.Module"):
        logger.watch("model")
