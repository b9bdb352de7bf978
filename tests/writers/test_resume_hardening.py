"""Resuming and syncing under pressure: two writers of one run, a hung store, a full disk, wrong sync paths."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker._settings import PROBE_TIMEOUT_S
from lightning_tracker.cli import main as cli
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.writers import checkpoints as checkpoints_module
from lightning_tracker.writers.sync import sync
from tests.conftest import S3Server
from tests.helpers import REPO, lightning, tiny_model, trainer
from tests.servers import GatedProxy, hung_store_options, late_store

_RESUMER = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from lightning_tracker import TrackerLogger
save_dir, options, run_id, key, go, spool = sys.argv[1], json.loads(sys.argv[2]), *sys.argv[3:]
logger = TrackerLogger(save_dir, name="p", version=run_id, storage_options=options, flush_interval=0.05,
                       spool_dir=spool)
logger.log_metrics({{key: -1.0}}, step=0)  # the run is open: both processes hold their session now
print("READY", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
for step in range(1, 301):
    logger.log_metrics({{key: float(step)}}, step=step)
    time.sleep(0.001)
logger.finalize("success")
print("DONE", flush=True)
"""


@pytest.mark.parametrize("where", ["local", "s3-shared-spool", "s3-separate-spools"])
def test_two_processes_resuming_one_run_at_once_lose_no_point(where: str, tmp_path: Path, s3_server: S3Server) -> None:
    if where == "local":
        save_dir, options = str(tmp_path / "runs"), {}
    else:
        save_dir, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    first = TrackerLogger(save_dir, name="p", storage_options=options, spool_dir=tmp_path / "spool-0")
    for step in range(5):
        first.log_metrics({"a": float(step), "b": float(step)}, step=step)
    first.finalize("success")
    go = tmp_path / "go"
    procs = []
    for i, key in enumerate(("a", "b")):
        spool = tmp_path / ("spool-0" if where != "s3-separate-spools" else f"spool-{i + 1}")
        args = [save_dir, json.dumps(options), first.version, key, str(go), str(spool)]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _RESUMER.format(root=REPO), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "READY", proc.stderr
        go.touch()
        outputs = [proc.communicate(timeout=180) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    run = Store(save_dir, options).run(first.version)
    history = run.metrics()
    for key in ("a", "b"):  # each process's own metric, all 300 points, after the first session's
        values = history[key].dropna().tolist()
        assert values[:1] == [-1.0] and values[1:] == [float(s) for s in range(1, 301)], (key, len(values))
    assert len({s["writer_key"] for s in run.doc["sessions"] if "writer_key" in s}) >= 2


def test_a_hung_store_never_blocks_a_named_run_from_starting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    proxy = GatedProxy()  # accepts connections, never answers
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
            logger = TrackerLogger(
                "s3://hung/exp",
                name="p",
                version="given-name",
                spool_dir=tmp_path / "spool",
                storage_options=hung_store_options(proxy),
                finalize_timeout=1.0,
            )
            logger.log_metrics({"a": 1.0}, step=0)  # the first step: the resume probe happens here
        first_step = time.monotonic() - started
        logger.finalize("success")
        assert first_step < PROBE_TIMEOUT_S.get() + 10, f"the first step waited {first_step:.1f} s"
        assert "did not answer within" in caplog.text and caplog.text.count("did not answer within") == 1
        assert Store(logger.save_dir).run("given-name").summary["a"]["last"] == 1.0  # kept in the spool
    finally:
        proxy.close()


def test_a_stored_run_that_answers_late_is_merged_into_the_resumed_one(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    first = TrackerLogger(url, name="p", storage_options=s3_server.storage_options, spool_dir=tmp_path / "machine-1")
    first.log_hyperparams({"lr": 0.1})
    for step in range(10):
        first.log_metrics({"loss": float(10 - step)}, step=step)
    first.finalize("success")
    with late_store(s3_server, monkeypatch) as (proxy, options):
        second = TrackerLogger(
            url,
            name="p",
            version=first.version,
            storage_options=options,
            flush_interval=0.1,
            spool_dir=tmp_path / "machine-2",
            finalize_timeout=60,
        )
        second.log_metrics({"loss": 0.5}, step=10)  # another machine: nothing of the run in its spool
        proxy.open()
        for step in range(11, 20):
            second.log_metrics({"loss": 0.5 - step / 100}, step=step)
            time.sleep(0.05)
        second.finalize("success")
    run = Store(url, s3_server.storage_options).run(first.version)
    assert run.metrics()["step"].tolist() == list(range(20))
    assert len(run.doc["sessions"]) == 2 and run.config == {"lr": 0.1}
    summary = run.summary["loss"]
    assert (summary["count"], summary["max"], summary["max_step"]) == (20, 10.0, 0)


def test_log_model_across_filesystems_copies_off_the_training_thread_and_a_full_disk_never_stops_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temporary folder")
    pl = lightning("pytorch_lightning")
    other_fs = Path("/dev/shm") / f"ckpts-{os.getpid()}-{time.monotonic_ns()}"
    copies_on: list[str] = []  # the thread of each copy made while training ran
    training = {"on": True}
    real_copy = checkpoints_module.shutil.copyfileobj

    def copy(src: Any, dst: Any, length: int = 0) -> None:
        import threading

        if training["on"]:
            copies_on.append(threading.current_thread().name)
        if len(copies_on) > 1 or not training["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_copy(src, dst, length)

    class TrainingEnds(pl.Callback):
        def on_train_end(self, *_: Any) -> None:
            training["on"] = False  # finalize may store the last checkpoint on the caller's thread

    monkeypatch.setattr(checkpoints_module.shutil, "copyfileobj", copy)
    try:
        logger = TrackerLogger(tmp_path / "runs", name="p", log_model="all")
        ckpt = pl.callbacks.ModelCheckpoint(dirpath=other_fs, every_n_train_steps=4, save_top_k=-1)
        with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
            trainer(
                logger, "pytorch_lightning", max_steps=12, enable_checkpointing=True, callbacks=[ckpt, TrainingEnds()]
            ).fit(tiny_model("pytorch_lightning"))
        assert copies_on and set(copies_on) == {"lightning-tracker-flush"}, "copied on the training thread"
        stored = Store(tmp_path / "runs").run(logger.version).checkpoints
        assert len(stored) == 1, "the copy that fit was stored"
        assert "No space left" in caplog.text and "is not stored" in caplog.text
    finally:
        import shutil

        shutil.rmtree(other_fs, ignore_errors=True)


def test_sync_of_a_path_without_spooled_runs_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = TrackerLogger(tmp_path / "runs", name="p")  # a local store: written in place, nothing to sync
    local.log_metrics({"a": 1.0}, step=0)
    local.finalize("success")
    offline = TrackerLogger("memory://sync-paths/exp", name="p", offline=True, spool_dir=tmp_path / "spool")
    offline.log_metrics({"a": 1.0}, step=0)
    offline.finalize("success")
    for path in (local.log_dir, str(tmp_path / "runs")):
        with pytest.raises(InvalidArgumentError, match="holds no spooled run"):
            sync([path])
        assert cli(["sync", path]) == 2
        assert path in capsys.readouterr().err.replace("\n", "")
    with pytest.raises(InvalidArgumentError, match="is not a folder"):
        sync([str(tmp_path / "nope")])
    assert sync([]) == {}
    assert list(sync([str(tmp_path / "spool")])) == [offline.log_dir]  # the offline run, and only it
    assert Store("memory://sync-paths/exp").run(offline.version).summary["a"]["last"] == 1.0
