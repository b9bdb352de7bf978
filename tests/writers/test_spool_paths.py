"""Each store has a spool folder of its own: stores whose names differ only in characters a
folder name cannot keep (``team:a`` and ``team_a``) never share one, so a run never resumes
another store's run; runs spooled under the old naming are still synced and resumed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.storage import Storage
from lightning_tracker.writers.spool import spool_dir_for
from lightning_tracker.writers.sync import sync
from tests.conftest import S3Server

ROOTS = ["bkt/team:a", "bkt/team_a", "bkt/Team_a", "bkt/a/b", "bkt/a_b", "bkt/a", "bkt/a/../b", "bkt/a/%2E%2E/b",
         "bkt/a//b", "bkt/" + "x" * 300, "bkt/" + "x" * 301, "bkt/é", "bkt/e"]  # fmt: skip


def test_every_store_gets_a_spool_folder_of_its_own_and_none_inside_another(tmp_path: Path) -> None:
    folders = [spool_dir_for(Storage(f"memory://{root}"), str(tmp_path)) for root in ROOTS]
    assert len(set(folders)) == len(ROOTS)
    for a in folders:
        assert os.path.dirname(a) == str(tmp_path / "memory")  # one level: no store's folder inside another's
        assert len(os.path.basename(a).encode()) < 255
    s3 = spool_dir_for(Storage("s3://bkt/team:a"), str(tmp_path))
    assert s3 != spool_dir_for(Storage("s3://bkt/team_a"), str(tmp_path)) and "team_a" in s3  # readable


def _two_stores(scheme: str, s3_server: S3Server) -> tuple[str, str, dict | None]:
    if scheme == "memory":
        return "memory://spool-paths/team:a", "memory://spool-paths/team_a", None
    bucket = s3_server.new_bucket()
    return f"s3://{bucket}/team:a", f"s3://{bucket}/team_a", s3_server.storage_options


@pytest.mark.parametrize("scheme", ["memory", "s3"])
def test_a_new_run_in_the_second_store_does_not_resume_the_first_stores_run(
    scheme: str, tmp_path: Path, s3_server: S3Server
) -> None:
    first, second, options = _two_stores(scheme, s3_server)
    spool = tmp_path / "spool"
    a = TrackerLogger(first, name="p", version="r1", storage_options=options, spool_dir=spool, finalize_timeout=20)
    a.log_metrics({"loss": 1.0}, step=0)
    a.finalize("success")
    b = TrackerLogger(second, name="p", version="r1", storage_options=options, spool_dir=spool, resume="never")
    b.log_metrics({"acc": 0.5}, step=0)  # resume="never" in an empty store opens (it raised before)
    b.finalize("success")
    assert a.log_dir != b.log_dir
    run_a = Store(first, options).run("r1")
    run_b = Store(second, options).run("r1")
    assert list(run_a.metrics(["loss"])["loss"]) == [1.0] and "acc" not in run_a.summary
    assert list(run_b.metrics(["acc"])["acc"]) == [0.5] and "loss" not in run_b.summary
    assert len(run_b.doc["sessions"]) == 1  # a run of its own, not a second session of the first store's


def test_a_run_spooled_under_the_old_naming_is_synced_and_resumed(tmp_path: Path) -> None:
    url = "memory://spool-legacy/team:a"
    spool = tmp_path / "spool"
    logger = TrackerLogger(url, name="p", version="r1", spool_dir=spool, offline=True)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    legacy = spool / "memory" / "spool-legacy" / "team_a" / "p" / "r1"  # where earlier versions put it
    legacy.parent.mkdir(parents=True)
    shutil.move(logger.log_dir, legacy)
    # another store whose old folder was the same: its run must not be taken for this one
    other = spool / "memory" / "spool-legacy" / "team_a" / "p" / "r2"
    shutil.copytree(legacy, other)
    spool_json = json.loads((other / "spool.json").read_text())
    (other / "spool.json").write_text(json.dumps({**spool_json, "url": "memory://spool-legacy/team_a"}))

    resumed = TrackerLogger(url, name="p", version="r1", spool_dir=spool, offline=True, resume="must")
    resumed.log_metrics({"loss": 0.5}, step=1)
    resumed.finalize("success")
    assert not legacy.exists() and other.exists()
    assert (Path(resumed.log_dir) / "spool.json").exists()
    reports = sync(spool_root=str(spool))
    assert sorted(reports) == sorted([resumed.log_dir, str(other)]) and all(r.complete for r in reports.values())
    run = Store(url).run("r1")
    assert list(run.metrics(["loss"])["loss"]) == [1.0, 0.5]
    assert Store("memory://spool-legacy/team_a").run("r1").summary["loss"]["last"] == 1.0  # r2's copy, own store
