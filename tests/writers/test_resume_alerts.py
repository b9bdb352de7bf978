"""A remote run resumed on another machine (a fresh spool) keeps the alerts of its earlier sessions.

Real ``TrackerLogger`` writers on a real moto S3 server on 127.0.0.1, each session with its own
spool folder, as two machines have; the run is read back with ``Store``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from tests.servers import GatedProxy


def _session(save_dir: str, options: dict[str, Any], spool: Path, title: str, **kwargs: Any) -> None:
    logger = TrackerLogger(
        save_dir, name="p", version="r1", storage_options=options, spool_dir=spool, tensorboard=False, **kwargs
    )
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.alert(title, f"{title} happened")
    logger.finalize("success")


def test_a_run_resumed_on_another_machine_keeps_the_alerts_of_its_first_session(s3_server: Any, tmp_path: Path) -> None:
    save_dir, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    _session(save_dir, options, tmp_path / "machine-a", "first")
    assert [a["title"] for a in Store(save_dir, options).run("r1").alerts] == ["first"]
    _session(save_dir, options, tmp_path / "machine-b", "second")
    run = Store(save_dir, options).run("r1")
    assert len(run.doc["sessions"]) == 2
    assert [a["title"] for a in run.alerts] == ["first", "second"]


def test_a_resume_whose_store_answers_late_keeps_the_alerts_of_its_first_session(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_dir, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    _session(save_dir, options, tmp_path / "machine-a", "first")
    monkeypatch.setenv("LIGHTNING_TRACKER_PROBE_TIMEOUT_S", "0.5")
    proxy = GatedProxy(s3_server.port)  # the store hangs now and answers once training started
    try:
        second = TrackerLogger(
            save_dir,
            name="p",
            version="r1",
            storage_options={**options, "endpoint_url": proxy.endpoint},
            spool_dir=tmp_path / "machine-b",
            flush_interval=0.1,
            tensorboard=False,
            finalize_timeout=60,
        )
        second.log_metrics({"loss": 0.5}, step=1)
        second.alert("second", "second happened")  # before the store answered
        proxy.open()
        for step in range(2, 12):
            second.log_metrics({"loss": 0.5}, step=step)
            time.sleep(0.05)
        second.alert("third", "third happened")
        second.finalize("success")
    finally:
        proxy.close()
    run = Store(save_dir, options).run("r1")
    assert len(run.doc["sessions"]) == 2
    assert [a["title"] for a in run.alerts] == ["first", "second", "third"]
