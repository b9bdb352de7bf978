"""A run's duration is the time its sessions ran, not the idle time between a run and its resume."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main

IDLE_S = 3.0


def _session(save_dir: str, version: str | None = None) -> str:
    logger = TrackerLogger(save_dir, name="p", version=version, tensorboard=False, flush_interval=0.2)
    logger.log_metrics({"loss": 1.0}, step=0 if version is None else 1)
    logger.finalize("success")
    return logger.version


def test_duration_counts_sessions_not_the_idle_time_between_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    run_id = _session(save_dir)
    time.sleep(IDLE_S)  # the run waits, nothing writes it
    _session(save_dir, run_id)
    run = Store(save_dir).run(run_id)
    sessions = run.doc["sessions"]
    assert len(sessions) == 2 and run.end_time - run.start_time >= IDLE_S
    first, second = sessions  # the first ends at its last write, the second when the run ended
    active = (first["heartbeat"] - first["start_time"]) + (run.end_time - second["start_time"])
    assert run.duration == pytest.approx(active) and run.duration < IDLE_S - 1, "the idle wait is not counted"
    table = Store(save_dir).table("p")
    assert table["duration_s"].iloc[0] == pytest.approx(active)
    assert main(["show", run_id, "-s", save_dir]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("duration"))
    assert line.split()[1] in ("0:00", "0:01"), line
