"""Where ``write_report`` writes: a local file or any fsspec URL; and never an empty report."""

from __future__ import annotations

import base64
import gzip
import json
import re
import uuid
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.report import write_report
from lightning_tracker.storage import Storage


def _one_run(save_dir: str) -> None:
    logger = TrackerLogger(save_dir, name="p", run_name="only", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")


def _runs_in(page: bytes) -> list[str]:
    """The run names in a report's embedded payload."""
    match = re.search(rb'<script id="lt-data" type="application/gzip-base64">([^<]+)</script>', page)
    assert match, "a self-contained report embeds its data"
    return [r["name"] for r in json.loads(gzip.decompress(base64.b64decode(match[1])))["runs"]]


def test_writes_to_a_memory_url_and_an_s3_bucket(s3_server: Any) -> None:
    save_dir = f"memory://out-{uuid.uuid4().hex[:8]}"
    _one_run(save_dir)
    store = Store(save_dir)
    target = f"memory://reports-{uuid.uuid4().hex[:8]}/sweeps/report.html"
    assert write_report(store, target) == target
    page = Storage(target).read_bytes("")
    assert page.startswith(b"<!DOCTYPE html>") and _runs_in(page) == ["only"]

    bucket = s3_server.new_bucket()
    key = f"s3://{bucket}/reports/report.html"
    assert write_report(store, key, storage_options=s3_server.storage_options) == key
    stored = Storage(f"s3://{bucket}/reports", s3_server.storage_options).read_bytes("report.html")
    assert stored.startswith(b"<!DOCTYPE html>") and _runs_in(stored) == ["only"]


def test_a_report_of_no_runs_is_an_error_that_says_what_to_check(tmp_path: Any) -> None:
    empty = str(tmp_path / "empty")
    out = tmp_path / "report.html"
    with pytest.raises(InvalidArgumentError, match="no runs to report in .*empty.*check the store URL, the project"):
        write_report(Store(empty), out)
    save_dir = str(tmp_path / "runs")
    _one_run(save_dir)
    with pytest.raises(InvalidArgumentError, match=r"\(project='nope'\)"):
        write_report(Store(save_dir), out, project="nope")
    with pytest.raises(InvalidArgumentError, match="no runs to report"):
        write_report(Store(save_dir), out, runs=[])
    assert not out.exists(), "no empty page is written"
    assert write_report(Store(save_dir), out) == str(out)
