"""Crashes and storage outages: nothing flushed is lost, training never waits on the network."""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main as cli
from lightning_tracker.format.layout import live_chunks
from lightning_tracker.integration._compat import Callback
from lightning_tracker.storage import Storage
from lightning_tracker.writers.spool import spool_dir_for
from tests.conftest import S3Server
from tests.helpers import TinyModel, loader, start_training, trainer


def _assert_all_files_readable(run_dir: str) -> None:
    for name in live_chunks(os.listdir(os.path.join(run_dir, "metrics"))):
        pq.read_table(os.path.join(run_dir, "metrics", name))
    for name in os.listdir(run_dir):
        if name.endswith(".json"):
            with open(os.path.join(run_dir, name)) as f:
                json.load(f)
    EventAccumulator(run_dir).Reload()


@pytest.mark.parametrize("trial", range(7))
def test_sigkill_keeps_every_flushed_point_and_reads_as_crashed(trial: int, tmp_path: Any) -> None:
    rng = random.Random(trial)
    save_dir = str(tmp_path / "runs")
    proc, run_id = start_training(save_dir, tmp_path / "out", dict(os.environ))
    time.sleep(rng.uniform(0.1, 1.5))  # any moment: between, during or right after a flush
    store = Store(save_dir)
    flushed = len(store.run(run_id).metrics(wide=False))
    proc.kill()
    proc.wait()
    assert flushed > 0
    run = store.run(run_id)
    assert run.status == "crashed"
    steps = list(run.metrics()["step"])
    assert len(run.metrics(wide=False)) >= flushed
    assert steps == list(range(len(steps))), "a gap in the flushed history"
    _assert_all_files_readable(os.path.join(save_dir, "p", run_id))


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_on_s3_during_event_file_rotation_then_sync(trial: int, tmp_path: Any, s3_server: Any) -> None:
    rng = random.Random(100 + trial)
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/exp"
    spool = tmp_path / "spool"
    env = {
        **os.environ,
        "LIGHTNING_TRACKER_SPOOL": str(spool),
        "LIGHTNING_TRACKER_TB_ROTATE_S": "0.3",
        "LIGHTNING_TRACKER_STORAGE_OPTIONS": json.dumps(s3_server.storage_options),
    }
    proc, run_id = start_training(url, tmp_path / "out", env)
    store_spool = Path(spool_dir_for(Storage(url), str(spool)))
    run_dir = store_spool / "p" / run_id
    deadline = time.monotonic() + 60  # a loaded machine flushes late: wait for two rotations
    while len(list(run_dir.glob("events.out.tfevents.*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    proc.kill()
    proc.wait()
    local = Store(str(store_spool)).run(run_id)
    local_history = local.metrics()
    assert len(local_history) > 0
    options = json.dumps(s3_server.storage_options)
    assert cli(["sync", str(spool), "--storage-options", options]) == 0
    remote = Store(url, s3_server.storage_options).run(run_id)
    assert remote.status == "crashed"
    pd.testing.assert_frame_equal(remote.metrics(), local_history)
    download = tmp_path / "download"
    remote.storage.fs.get(f"{remote.storage.root}/{remote.path}/", str(download), recursive=True)
    assert len([n for n in os.listdir(download) if n.startswith("events.out")]) >= 2, "event files rotated"
    _assert_all_files_readable(str(download))
    # sync is idempotent
    assert cli(["sync", str(spool), "--storage-options", options]) == 0
    pd.testing.assert_frame_equal(Store(url, s3_server.storage_options).run(run_id).metrics(), local_history)


def test_resume_after_a_crash_is_one_continuous_history(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    proc, run_id = start_training(save_dir, tmp_path / "out", dict(os.environ))
    time.sleep(0.8)
    proc.kill()
    proc.wait()
    crashed = Store(save_dir).run(run_id)
    last = int(crashed.metrics()["step"].iloc[-1])
    # resumed from a checkpoint ten steps before the crash: those steps are logged again
    logger = TrackerLogger(save_dir, name="p", version=run_id)
    for step in range(last - 10, last + 30):
        logger.log_metrics({"train/loss": -float(step)}, step=step)
    logger.finalize("success")
    run = Store(save_dir).run(run_id)
    history = run.metrics()
    assert run.status == "finished"
    assert list(history["step"]) == list(range(last + 30)), "one value per step, no gap"
    assert (history["train/loss"].iloc[last - 10 :] == [-float(s) for s in range(last - 10, last + 30)]).all()
    assert (history["train/loss"].iloc[: last - 10] >= 0).all(), "earlier steps keep their first value"


class _Outage(Callback):
    """Stops the S3 server at one step and starts it again at another; times every step."""

    def __init__(self, server: S3Server, down_at: int, up_at: int) -> None:
        self.server, self.down_at, self.up_at = server, down_at, up_at
        self.step_times: list[float] = []
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, *_: Any) -> None:
        now = time.perf_counter()
        self.step_times.append(now - self._t)
        step = trainer.global_step
        if step == self.down_at:
            self.server.stop()
        elif step == self.up_at:
            self.server.start()
        time.sleep(0.02)
        self._t = time.perf_counter()


class _LongModel(TinyModel):
    def train_dataloader(self) -> Any:
        return loader(8 * 150, 8)


def test_s3_outage_mid_training_loses_nothing_and_never_blocks() -> None:
    with S3Server() as server:
        url = f"s3://{server.new_bucket()}/exp"
        logger = TrackerLogger(url, name="p", storage_options=server.storage_options, flush_interval=0.2)
        outage = _Outage(server, down_at=20, up_at=120)
        t = trainer(logger, max_epochs=1, callbacks=[outage])
        t.fit(_LongModel())
        run = Store(url, server.storage_options).run(logger.version)
        assert run.status == "finished"
        assert list(run.metrics()["step"]) == list(range(150))
        assert run.summary["train/loss"]["count"] == 150
        # an upload attempt against a dead endpoint takes seconds; no step may wait for it
        assert max(outage.step_times[1:]) < 1.0, max(outage.step_times)


def test_store_down_at_finalize_returns_in_time_then_sync_completes(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_KEEP_SPOOL", "1")  # the spool copy is compared with the store below
    with S3Server() as server:
        url = f"s3://{server.new_bucket()}/exp"
        logger = TrackerLogger(
            url, name="p", storage_options=server.storage_options, flush_interval=0.2, finalize_timeout=3.0
        )
        logger.log_metrics({"a": 0.0}, step=0)
        logger.flush()
        server.stop()
        for step in range(1, 200):
            logger.log_metrics({"a": float(step)}, step=step)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            logger.finalize("success")
        assert time.monotonic() - started < 6.0
        message = " ".join(r.getMessage() for r in caplog.records)
        assert logger.log_dir in message and "lightning-tracker sync" in message
        server.start()
        options = json.dumps(server.storage_options)
        assert cli(["sync", logger.log_dir, "--storage-options", options]) == 0
        remote = Store(url, server.storage_options).run(logger.version)
        assert remote.status == "finished"
        local = Store(logger.save_dir).run(logger.version)
        pd.testing.assert_frame_equal(remote.metrics(), local.metrics())
        assert list(remote.metrics()["a"]) == [float(s) for s in range(200)]
        assert remote.summary == local.summary


def test_resume_after_an_outage_keeps_the_spooled_session(tmp_path: Any) -> None:
    with S3Server() as server:
        url = f"s3://{server.new_bucket()}/exp"
        first = TrackerLogger(url, name="p", storage_options=server.storage_options, finalize_timeout=1.0)
        first.log_metrics({"a": 0.0}, step=0)
        first.flush()
        assert first._writer is not None and first._writer.upload(timeout=10)  # step 0 is in the store
        server.stop()
        for step in range(1, 5):
            first.log_metrics({"a": float(step)}, step=step)
        first.finalize("failed")  # the store is down: steps 1-4 stay in the spool
        server.start()
        second = TrackerLogger(url, name="p", version=first.version, storage_options=server.storage_options)
        second.log_metrics({"a": 9.0}, step=9)
        second.finalize("success")
        run = Store(url, server.storage_options).run(first.version)
        assert list(run.metrics()["step"]) == [0, 1, 2, 3, 4, 9]
        assert len({s["index"] for s in run.doc["sessions"]}) == len(run.doc["sessions"]) == 2


def test_offline_resume_never_reuses_a_session(tmp_path: Any) -> None:
    first = TrackerLogger("memory://offline-resume", name="p", version="r1", offline=True)
    for step in range(5):
        first.log_metrics({"a": float(step)}, step=step)
    first.finalize("failed")
    second = TrackerLogger("memory://offline-resume", name="p", version="r1", offline=True)
    for step in range(5, 8):
        second.log_metrics({"a": float(step)}, step=step)
    second.finalize("success")
    local = Store(first.save_dir).run("r1")
    assert list(local.metrics()["step"]) == list(range(8))
    assert cli(["sync", first.log_dir]) == 0
    assert list(Store("memory://offline-resume").run("r1").metrics()["step"]) == list(range(8))


def test_an_unreachable_store_at_start_does_not_stop_training(tmp_path: Any) -> None:
    from tests.conftest import free_port

    # an address where nothing listens
    options = {"key": "k", "secret": "s", "endpoint_url": f"http://127.0.0.1:{free_port()}"}
    logger = TrackerLogger(
        "s3://nowhere/exp", name="p", version="given-id", storage_options=options, finalize_timeout=1.0
    )
    started = time.monotonic()
    logger.log_metrics({"a": 1.0}, step=0)  # looks the run up remotely, fails, goes on from the spool
    logger.finalize("success")
    assert time.monotonic() - started < 60
    assert Store(logger.save_dir).run("given-id").summary["a"]["last"] == 1.0


def test_values_the_format_cannot_hold_are_skipped_not_fatal(tmp_path: Any) -> None:
    import numpy as np

    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.1)
    logger.log_metrics({"big": 2**70, "ok": 1.0}, step=np.int64(0))
    logger.log_metrics({"bad\udc80key": 1.0, "ok": 2.0}, step=1.0)
    logger.log_metrics({"ok": 3.0}, step=np.int32(2))
    time.sleep(0.5)
    logger.finalize("success")
    run = Store(tmp_path).run(logger.version)
    assert run.status == "finished"
    history = run.metrics()
    assert list(history["ok"]) == [1.0, 2.0, 3.0]
    assert history["big"].iloc[0] == float(2**70)


def test_a_missing_bucket_is_reported_not_mistaken_for_compaction(
    s3_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logger = TrackerLogger(
        "s3://no-such-bucket-here/exp", name="p", storage_options=s3_server.storage_options, finalize_timeout=2.0
    )
    logger.log_metrics({"a": 1.0}, step=0)
    with caplog.at_level(logging.WARNING):
        logger.finalize("success")
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "bucket" in message.lower() and "timed out" not in message


def test_a_30_second_outage_keeps_memory_bounded_and_every_point_lands() -> None:
    with S3Server() as server:
        url = f"s3://{server.new_bucket()}/exp"
        logger = TrackerLogger(
            url, name="p", storage_options=server.storage_options, flush_interval=0.5, finalize_timeout=120
        )
        logger.experiment  # noqa: B018 - opens the run
        writer = logger._writer
        assert writer is not None
        metrics_dir = os.path.join(logger.log_dir, "metrics")
        step, worst_call, max_buffered, max_chunks = 0, 0.0, 0, 0
        started = time.monotonic()
        phase_end = {"before": 3.0, "outage": 33.0, "after": 36.0}
        for phase, end in phase_end.items():
            if phase == "outage":
                server.stop()
            elif phase == "after":
                server.start()
            while time.monotonic() - started < end:
                t0 = time.perf_counter()
                logger.log_metrics({f"m{i}": float(step + i) for i in range(8)}, step=step)
                worst_call = max(worst_call, time.perf_counter() - t0)
                step += 1
                if phase == "outage":
                    max_buffered = max(max_buffered, writer.buffered_points())
                    max_chunks = max(max_chunks, len(os.listdir(metrics_dir)))
                time.sleep(0.01)
        logger.finalize("success")
        run = Store(url, server.storage_options).run(logger.version)
        assert run.status == "finished"
        history = run.metrics()
        assert list(history["step"]) == list(range(step)), "every point landed"
        assert history["m7"].tolist() == [float(s + 7) for s in range(step)]
        # during 30 s at ~90 steps/s only about two flush intervals of points were ever in memory;
        # the backlog was on disk as chunks in the spool
        assert max_buffered < 200 * 8, max_buffered
        assert max_chunks >= 10, max_chunks
        assert worst_call < 0.05, f"a log_metrics call waited {worst_call:.3f} s"


def test_a_full_spool_disk_warns_keeps_training_and_loses_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno

    from lightning_tracker.writers import chunks as chunks_module

    real_write = chunks_module.write_chunk
    disk_full = {"on": False}

    def write_chunk(table: Any, path: str, schema: Any) -> None:
        if disk_full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real_write(table, path, schema)

    monkeypatch.setattr(chunks_module, "write_chunk", write_chunk)
    logger = TrackerLogger(tmp_path, name="p", flush_interval=300)
    for step in range(10):
        logger.log_metrics({"a": float(step)}, step=step)
    logger.flush()
    disk_full["on"] = True
    with caplog.at_level(logging.WARNING):
        for step in range(10, 30):
            logger.log_metrics({"a": float(step)}, step=step)  # training goes on
            if step % 5 == 0:
                logger.flush()
    assert any("No space left" in r.getMessage() and "kept in memory" in r.getMessage() for r in caplog.records)
    assert Store(tmp_path).run(logger.version).metrics()["a"].tolist() == [float(s) for s in range(10)]
    disk_full["on"] = False  # space is back
    logger.finalize("success")
    history = Store(tmp_path).run(logger.version).metrics()
    assert history["a"].tolist() == [float(s) for s in range(30)]


def test_sync_beside_a_live_run_is_safe(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/exp"
    logger = TrackerLogger(url, name="p", storage_options=s3_server.storage_options, flush_interval=0.1)
    puts: list[str] = []
    original = type(logger._storage).put_file

    def counting_put(self: Any, local: str, rel: str, *args: Any, **kwargs: Any) -> None:
        puts.append(rel)
        original(self, local, rel, *args, **kwargs)

    monkeypatch.setattr(type(logger._storage), "put_file", counting_put)
    for step in range(300):
        logger.log_metrics({"a": float(step)}, step=step)
        if step % 60 == 0:  # another process (or the user) syncs while the run writes
            assert cli(["sync", logger.log_dir, "--storage-options", json.dumps(s3_server.storage_options)]) == 0
        time.sleep(0.002)
    logger.finalize("success")
    run = Store(url, s3_server.storage_options).run(logger.version)
    assert run.status == "finished"
    assert run.metrics()["a"].tolist() == [float(s) for s in range(300)]
    events = [p for p in puts if "events.out.tfevents" in p]
    assert len(events) == len(set(events)), "a growing event file was uploaded, then uploaded again"


def test_a_sync_beside_a_live_run_does_not_fail_on_files_the_run_writes_meanwhile(
    s3_server: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_tracker.storage.remote import FsspecStorage
    from lightning_tracker.writers.sync import sync_run

    url = f"s3://{s3_server.new_bucket()}/exp"
    logger = TrackerLogger(
        url,
        name="p",
        storage_options=s3_server.storage_options,
        offline=True,
        tensorboard=False,
        spool_dir=str(tmp_path / "spool"),
    )
    logger.log_metrics({"a": 1.0}, step=0)
    logger.flush()  # the run stays open: live, its heartbeat fresh
    original, late = FsspecStorage.put_file, os.path.join(logger.log_dir, "metrics", "000-zz-00000099-00000099.parquet")

    def put_while_the_run_writes(self: Any, local: str, rel: str) -> None:
        if not os.path.exists(late):  # the live run's flusher writes a chunk during the sync round
            with open(local, "rb") as src, open(late, "wb") as dst:
                dst.write(src.read())
        original(self, local, rel)

    monkeypatch.setattr(FsspecStorage, "put_file", put_while_the_run_writes)
    report = sync_run(logger.log_dir, s3_server.storage_options)
    assert report.complete and report.uploaded, report
    assert "metrics/000-zz-00000099-00000099.parquet" not in report.uploaded, "written after the round started"
    monkeypatch.setattr(FsspecStorage, "put_file", original)
    logger.finalize("success")
