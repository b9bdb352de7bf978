"""The small things a person reads in a terminal 80 and 120 columns wide: a typo's suggestion,
a quiet sync, the store named in a missing package's error, a resumed run's duration."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import TrackerLogger
from lightning_tracker.cli import main
from tests.helpers import in_terminal

COLUMNS = [80, 120]


def _screen(raw: bytes) -> str:
    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", b"", raw).decode().replace("\r", "")


def _run(save_dir: str, version: str | None = None, **options: Any) -> TrackerLogger:
    logger = TrackerLogger(save_dir, name="p", version=version, tensorboard=False, **options)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"val/acc": 0.5}, step=0 if version is None else 1)
    logger.finalize("success")
    return logger


@pytest.mark.parametrize("columns", COLUMNS)
def test_a_sort_typo_says_did_you_mean_in_a_terminal(tmp_path: Path, columns: int) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir)
    status, raw = in_terminal(["runs", "-s", save_dir, "--sort=-val/ac"], columns)
    screen = " ".join(_screen(raw).split())  # the terminal wraps the one long line
    assert status == 2 and "--sort='val/ac' is not a column; did you mean val/acc?" in screen, screen


@pytest.mark.parametrize("columns", COLUMNS)
def test_a_missing_package_names_the_store_in_a_terminal(columns: int) -> None:
    status, raw = in_terminal(["runs", "-s", "dropbox://team/runs"], columns)
    screen = " ".join(_screen(raw).split())
    assert status == 2 and "the store 'dropbox://team/runs' needs the package 'dropbox'" in screen, screen
    assert "save_dir" not in screen


@pytest.mark.parametrize("columns", COLUMNS)
def test_sync_in_a_terminal_is_quiet_when_every_run_is_in_its_store(s3_server: Any, columns: int) -> None:
    options = json.dumps(s3_server.storage_options)
    url = f"s3://{s3_server.new_bucket()}/exp"
    logger = _run(url, storage_options=s3_server.storage_options, offline=True)
    status, raw = in_terminal(["sync", "--storage-options", options], columns)
    assert status == 0 and f"{url}/p/{logger.version}: " in _screen(raw), _screen(raw)
    status, raw = in_terminal(["sync", "--storage-options", options], columns)
    # only rich's transient progress bar while the store is asked, erased when done
    said = re.sub(r"syncing runs [━╺╸ ]*\s*\d+% [-:0-9]+", "", _screen(raw))
    assert status == 0 and said.strip() == "", f"nothing to do, nothing said: {said!r}"


@pytest.mark.parametrize("columns", COLUMNS)
def test_a_resumed_run_shows_the_time_its_sessions_ran_in_a_terminal(tmp_path: Path, columns: int) -> None:
    save_dir = str(tmp_path / "runs")
    run_id = _run(save_dir, flush_interval=0.2).version
    time.sleep(3.0)  # idle between the run and its resume
    _run(save_dir, run_id, flush_interval=0.2)
    status, raw = in_terminal(["show", run_id, "-s", save_dir], columns)
    line = next(line for line in _screen(raw).splitlines() if line.startswith("duration"))
    assert status == 0 and line.split()[1] in ("0:00", "0:01"), line
    assert main(["show", run_id, "-s", save_dir]) == 0
