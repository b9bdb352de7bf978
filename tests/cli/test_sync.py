"""``lightning-tracker sync`` as a user reads it: quiet when there is nothing to do, the fix when it cannot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import TrackerLogger
from lightning_tracker.cli import main


def _offline_run(url: str, options: dict[str, Any]) -> TrackerLogger:
    logger = TrackerLogger(url, name="p", storage_options=options, offline=True, tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    return logger


def test_sync_with_nothing_to_do_is_quiet(s3_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = json.dumps(s3_server.storage_options)
    assert main(["sync", "--spool-dir", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out == "", "no spooled run: nothing said"
    url = f"s3://{s3_server.new_bucket()}/exp"
    logger = _offline_run(url, s3_server.storage_options)
    assert main(["sync", "--storage-options", options]) == 0
    out = capsys.readouterr().out
    # named where it went, not by its spool folder (removed once the upload is complete)
    assert f"{url}/p/{logger.version}: " in out and "files uploaded" in out, out
    assert main(["sync", "--storage-options", options]) == 0
    assert capsys.readouterr().out == "", "every run already in its store: nothing said"


def test_sync_to_a_missing_bucket_says_create_the_bucket(
    s3_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = _offline_run("s3://no-such-bucket-hb/exp", s3_server.storage_options)
    assert main(["sync", logger.log_dir, "--storage-options", json.dumps(s3_server.storage_options)]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if logger.version in line)
    assert "create the bucket" in line and "s3://no-such-bucket-hb/exp" in line, out
    assert "run sync again" not in line, "running it again cannot help"
