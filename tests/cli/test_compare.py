"""``compare`` as a person reads it in a terminal 80 and 120 columns wide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from tests.helpers import in_terminal


def _run(save_dir: str, i: int, version: str | None = None) -> TrackerLogger:
    logger = TrackerLogger(save_dir, name="cmp", version=version, run_name=f"run-{i}", tensorboard=False)
    logger.log_hyperparams({"lr": 10.0 ** -(i + 1), "optimizer": "adam" if i % 2 else "sgd", "width": 64})
    for step in range(3):
        logger.log_metrics({"val/acc": 0.5 + i / 10 + step / 100, "train/loss": 1.0 / (step + 1 + i)}, step=step)
    logger.finalize("success")
    return logger


def _screen(raw: bytes) -> list[str]:
    return [line.rstrip("\r") for line in re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", raw).decode().splitlines()]


@pytest.mark.parametrize("count", [4, 6])
@pytest.mark.parametrize("columns", [80, 120])
def test_compare_fits_every_run_in_the_terminal(tmp_path: Path, columns: int, count: int) -> None:
    save_dir = str(tmp_path / "runs")
    loggers = [_run(save_dir, i) for i in range(count)]  # ids of one second: long unique prefixes
    status, raw = in_terminal(["compare", *(lg.version for lg in loggers), "-s", save_dir], columns)
    lines = _screen(raw)
    assert status == 0 and "Traceback" not in "\n".join(lines)
    assert all(len(line) <= columns for line in lines), [line for line in lines if len(line) > columns]
    tables = "\n".join(
        lines[next(i for i, line in enumerate(lines) if "hyperparameters" in line or line.strip() == "runs") :]
    )
    assert "did not fit" not in tables and "…" not in tables, "every run, nothing cut"
    store = Store(save_dir)
    for i, logger in enumerate(loggers):
        assert f"run-{i}" in tables and f"{10.0 ** -(i + 1):.4g}" in tables, f"run-{i} shown whole"
        label = next(w for w in re.findall(r"[0-9]{8}-[0-9a-z-]+", tables) if logger.version.startswith(w))
        assert store.run(label).id == logger.version, "a label typed back finds its run"


def test_compare_labels_runs_with_prefixes_unique_in_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    compared = [_run(save_dir, i, version=v) for i, v in enumerate(["sweep-alpha-1", "sweep-beta-1", "sweep-gamma-1"])]
    _run(save_dir, 3, version="sweep-alpha-2")  # not compared, but shares "sweep-al" with the first
    assert main(["compare", *(lg.version for lg in compared), "-s", save_dir]) == 0
    out = capsys.readouterr().out
    labels = set(re.findall(r"sweep-[a-z0-9-]+", out))
    assert "sweep-alpha-1" in labels and "sweep-al" not in labels, f"a prefix unique in the store: {labels}"
    for label in labels:
        assert Store(save_dir).run(label).id in {lg.version for lg in compared}
