"""Writers tell the project index what changed: a run's start and end, a resume, ``sync``.

A change object names a run whose ``run.json`` is in the store already; a change that cannot
be written never fails training (the index is only stale, and rebuildable).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.codec import loads
from lightning_tracker.format.layout import CHANGES_DIR, INDEX_DIR
from lightning_tracker.writers.sync import sync


def _kinds(store: Store, run_id: str) -> list[str]:
    found = store.storage.find(f"p/{INDEX_DIR}/{CHANGES_DIR}")
    docs = [loads(store.storage.read_bytes(f"p/{INDEX_DIR}/{CHANGES_DIR}/{name}")) for name in sorted(found)]
    return [doc["kind"] for doc in docs if doc["run"] == run_id]


def _target(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any] | None]:
    if kind == "local":
        return str(tmp_path / "runs"), None
    server = request.getfixturevalue("s3_server")
    return f"s3://{server.new_bucket()}/exp", server.storage_options


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_run_tells_the_index_its_start_and_end_and_a_resume(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, options = _target(kind, tmp_path, request)
    logger = TrackerLogger(url, name="p", version="r1", storage_options=options, flush_interval=0.05, tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.flush()
    store = Store(url, options)
    deadline = time.monotonic() + 60
    while _kinds(store, "r1") != ["start"] and time.monotonic() < deadline:  # the mirror's first round
        time.sleep(0.05)
    assert [(r.id, r.status) for r in Store(url, options).runs("p")] == [("r1", "running")]  # the index, built
    logger.log_metrics({"loss": 0.5}, step=1)
    logger.finalize("success")
    store = Store(url, options)
    assert [(r.id, r.status, r.summary["loss"]["last"]) for r in store.runs("p")] == [("r1", "finished", 0.5)]
    assert _kinds(store, "r1") == ["start", "end"]
    again = TrackerLogger(url, name="p", version="r1", storage_options=options, tensorboard=False)
    again.log_metrics({"loss": 0.25}, step=2)
    again.experiment.flush()
    deadline = time.monotonic() + 60
    while _kinds(store, "r1") != ["start", "end", "resume"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r.status for r in Store(url, options).runs("p")] == ["running"]  # live again: read each time
    again.finalize("success")
    assert _kinds(store, "r1") == ["start", "end", "resume", "end"]
    assert [(r.status, r.summary["loss"]["last"]) for r in Store(url, options).runs("p")] == [("finished", 0.25)]


def test_sync_tells_the_index_of_each_run_it_uploads(s3_server: Any, tmp_path: Path) -> None:
    url, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    Store(url, options).storage.write_bytes("p/other/run.json", b"{}")  # the project exists, with its index
    Store(url, options).runs("p")
    logger = TrackerLogger(url, name="p", version="off", storage_options=options, offline=True, tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert "off" not in [r.id for r in Store(url, options).runs("p")]
    reports = sync(storage_options=options)
    assert all(report.complete for report in reports.values())
    assert _kinds(Store(url, options), "off") == ["sync"]
    assert "off" in [r.id for r in Store(url, options).runs("p")]


def test_a_change_that_cannot_be_written_never_fails_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = str(tmp_path / "runs")
    (tmp_path / "runs" / "p").mkdir(parents=True)
    (tmp_path / "runs" / "p" / INDEX_DIR).write_text("a file where the index folder would be")
    with caplog.at_level(logging.WARNING):
        logger = TrackerLogger(url, name="p", version="r1", tensorboard=False)
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
    assert any("could not tell the index" in r.getMessage() for r in caplog.records)
    assert [(r.id, r.status) for r in Store(url).runs("p")] == [("r1", "finished")]  # read from the folders
