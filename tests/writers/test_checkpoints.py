"""Checkpoint upload (``log_model``): retention, aliases, integrity, crashes, outages, resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main as cli
from lightning_tracker.exceptions import (
    CheckpointIntegrityError,
    CheckpointNotFoundError,
    InvalidArgumentError,
    ObjectMissingError,
    RunNotFoundError,
)
from lightning_tracker.storage import Storage
from lightning_tracker.writers.spool import spool_dir_for
from tests.conftest import S3Server
from tests.helpers import REPO, lightning, tiny_model, tiny_model_class, trainer
from tests.servers import TcpProxy


def _sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _local_ckpts(folder: str) -> dict[str, str]:
    """File name -> sha256 of the checkpoints ModelCheckpoint left in ``folder``."""
    return {n: _sha(os.path.join(folder, n)) for n in os.listdir(folder) if n.endswith(".ckpt")}


def _stored(store: Store, run_id: str) -> dict[str, str]:
    """File name -> sha256 of the run's stored checkpoints, each downloaded and verified."""
    run = store.run(run_id)
    out = {}
    objects = store.storage.find(f"{run.path}/models")
    assert sorted(objects) == sorted(c.name for c in run.checkpoints), "objects and manifest differ"
    for ref in run.checkpoints:
        path = ref.download(os.path.join(tempfile.mkdtemp(), ref.name))
        out[ref.entry["file"]] = _sha(path)
    return out


def _s3(server: S3Server, **kwargs: Any) -> tuple[str, TrackerLogger]:
    url = f"s3://{server.new_bucket()}/exp"
    return url, TrackerLogger(url, name="p", storage_options=server.storage_options, **kwargs)


SCORES = [0.3, 0.9, 0.5, 0.7]


def _scored_model(package: str) -> Any:
    """The tiny model, logging a chosen ``score`` per epoch (the aliases must follow it)."""

    class Scored(tiny_model_class(package)):  # type: ignore[misc]
        def on_validation_epoch_end(self) -> None:
            self.log("score", SCORES[self.current_epoch])

    return Scored()


@pytest.mark.parametrize("value", [1, "yes", None, "ALL", 0.5])
def test_log_model_is_validated_at_construction(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"log_model=.*False.*True.*'all'"):
        TrackerLogger("memory://ckpt-validate", log_model=value)


def test_checkpoints_are_uploaded_as_training_goes(s3_server: S3Server, pl_package: str) -> None:
    pl = lightning(pl_package)
    url, logger = _s3(s3_server, log_model=True)
    seen: dict[int, list[int]] = {}

    class Watch(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            if trainer.current_epoch == 0:
                return
            deadline = time.monotonic() + 30  # liveness bound only: upload happens in the background
            while time.monotonic() < deadline:
                try:
                    epochs = [c.epoch for c in Store(url, s3_server.storage_options).run(logger.version).checkpoints]
                except RunNotFoundError:  # run.json is not uploaded yet
                    epochs = []
                if trainer.current_epoch - 1 in epochs:
                    break
                time.sleep(0.05)
            seen[trainer.current_epoch] = epochs

    ckpt = pl.callbacks.ModelCheckpoint(save_top_k=-1)
    trainer(logger, pl_package, max_epochs=3, enable_checkpointing=True, callbacks=[ckpt, Watch()]).fit(
        tiny_model(pl_package)
    )
    assert seen == {1: [0], 2: [0, 1]}, "a checkpoint was not stored before finalize"
    assert _stored(Store(url, s3_server.storage_options), logger.version) == _local_ckpts(ckpt.dirpath)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_retention_mirrors_top_k(where: str, tmp_path: Any, s3_server: S3Server, pl_package: str) -> None:
    pl = lightning(pl_package)
    if where == "s3":
        url, logger = _s3(s3_server, log_model=True)
        store = Store(url, s3_server.storage_options)
    else:
        logger = TrackerLogger(tmp_path / "runs", name="p", log_model=True)
        store = Store(tmp_path / "runs")
    ckpt = pl.callbacks.ModelCheckpoint(monitor="val/loss", save_top_k=2, save_last=True)
    trainer(logger, pl_package, max_epochs=5, enable_checkpointing=True, callbacks=[ckpt]).fit(tiny_model(pl_package))
    local = _local_ckpts(ckpt.dirpath)
    assert len(local) == 3  # top 2 and last
    assert _stored(store, logger.version) == local
    names = {c.entry["file"] for c in store.run(logger.version).checkpoints}
    assert names == {os.path.basename(p) for p in ckpt.best_k_models} | {"last.ckpt"}
    if where == "local":  # the stored copy shares the bytes of Lightning's file
        run_dir = os.path.join(tmp_path, "runs", "p", logger.version)
        best = store.run(logger.version).checkpoint("best")
        assert os.path.samefile(os.path.join(run_dir, "models", best.name), ckpt.best_model_path)


def test_all_keeps_checkpoints_that_top_k_deleted_right_after_saving(s3_server: S3Server, pl_package: str) -> None:
    pl = lightning(pl_package)
    url, logger = _s3(s3_server, log_model="all")
    # every save improves "step", so top-1 deletes the previous file right after each save
    ckpt = pl.callbacks.ModelCheckpoint(monitor="step", mode="max", save_top_k=1, every_n_train_steps=2)
    trainer(logger, pl_package, max_epochs=2, enable_checkpointing=True, callbacks=[ckpt]).fit(tiny_model(pl_package))
    stored = _stored(Store(url, s3_server.storage_options), logger.version)
    assert len(_local_ckpts(ckpt.dirpath)) == 1
    assert sorted(stored) == sorted(f"epoch={(s - 1) // 8}-step={s}.ckpt" for s in range(2, 17, 2))
    assert len(set(stored.values())) == 8, "two saves stored the same bytes"


def test_aliases_follow_the_best_score_with_several_model_checkpoints(s3_server: S3Server, pl_package: str) -> None:
    pl = lightning(pl_package)
    url, logger = _s3(s3_server, log_model=True)
    store = Store(url, s3_server.storage_options)
    best_per_epoch: list[str | None] = []

    class Record(pl.Callback):
        # ModelCheckpoint runs last, so the previous epoch's saves are done when these run
        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            if trainer.current_epoch == 2:
                logger.add_checkpoint_alias("candidate", by_score.best_model_path)
            if trainer.current_epoch > 0:
                self.on_train_end(trainer, module)

        def on_train_end(self, trainer: Any, module: Any) -> None:
            logger.flush()  # store what was saved, then let the background upload catch up
            assert logger._writer is not None and logger._writer.upload(timeout=30)
            best_per_epoch.append(store.run(logger.version).checkpoint("best").epoch)

    by_score = pl.callbacks.ModelCheckpoint(monitor="score", mode="max", save_top_k=2, filename="s-{epoch}")
    every_4 = pl.callbacks.ModelCheckpoint(every_n_train_steps=4, save_top_k=-1, filename="n-{step}")
    by_loss = pl.callbacks.ModelCheckpoint(monitor="val/loss", save_top_k=1, filename="l-{epoch}")
    t = trainer(
        logger, pl_package, max_epochs=4, enable_checkpointing=True, callbacks=[by_score, every_4, by_loss, Record()]
    )
    t.fit(_scored_model(pl_package))
    # scores 0.3, 0.9, 0.5, 0.7: "best" follows the first monitoring callback
    assert best_per_epoch == [0, 1, 1, 1]
    run = store.run(logger.version)
    files = {c.entry["file"] for c in run.checkpoints}
    every_4_files = {f"n-step={s}.ckpt" for s in range(4, 33, 4)}
    assert files == {"s-epoch=1.ckpt", "s-epoch=3.ckpt", "l-epoch=3.ckpt"} | every_4_files
    assert run.checkpoint("best").entry["file"] == "s-epoch=1.ckpt"
    assert run.checkpoint("best").score == pytest.approx(0.9)
    assert run.checkpoint("best:val/loss").entry["file"] == "l-epoch=3.ckpt"
    assert run.checkpoint("candidate").entry["file"] == "s-epoch=1.ckpt"
    assert run.checkpoint("latest").step == 32
    assert run.checkpoint("n-step=8.ckpt").step == 8
    frame = run.checkpoints.to_frame()
    assert set(frame.columns) >= {"name", "step", "epoch", "monitor", "score", "size", "sha256", "aliases"}
    assert (frame["size"] > 0).all() and frame["sha256"].str.len().eq(64).all()
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint 'nope'.*aliases"):
        run.checkpoint("nope")
    with pytest.raises(InvalidArgumentError, match="alias='best'"):
        logger.add_checkpoint_alias("best")


def test_a_corrupted_or_truncated_object_is_reported_never_handed_over(tmp_path: Any, pl_package: str) -> None:
    pl = lightning(pl_package)
    url = "memory://ckpt-corrupt-" + pl_package.replace(".", "-")
    logger = TrackerLogger(url, name="p", log_model=True)
    trainer(
        logger, pl_package, max_epochs=1, enable_checkpointing=True, callbacks=[pl.callbacks.ModelCheckpoint()]
    ).fit(tiny_model(pl_package))
    store = Store(url)
    ref = store.run(logger.version).checkpoint("latest")
    rel = f"{store.run(logger.version).path}/models/{ref.name}"
    good = store.storage.read_bytes(rel)
    assert ref.download(tmp_path / "ok.ckpt") and _sha(str(tmp_path / "ok.ckpt")) == ref.sha256
    flipped = good[:100] + bytes([good[100] ^ 1]) + good[101:]
    for bad, why in ((flipped, "corrupted"), (good[:-7], "truncated")):
        store.storage.write_bytes(rel, bad)
        with pytest.raises(CheckpointIntegrityError, match=f"{ref.name!r}.*{why}.*not loaded"):
            ref.download(tmp_path / f"{why}.ckpt")
        assert not os.path.exists(tmp_path / f"{why}.ckpt")
        assert [n for n in os.listdir(tmp_path) if n.endswith(".part")] == []
    store.storage.rm(rel)
    with pytest.raises(ObjectMissingError, match="missing"):
        ref.download(tmp_path / "gone.ckpt")


def test_storage_down_during_upload_then_back(pl_package: str, caplog: pytest.LogCaptureFixture) -> None:
    pl = lightning(pl_package)
    with S3Server() as server:
        url = f"s3://{server.new_bucket()}/exp"
        fail_fast = {**server.storage_options, "config_kwargs": {"retries": {"max_attempts": 1}}}
        logger = TrackerLogger(url, name="p", storage_options=fail_fast, log_model="all", flush_interval=0.2)
        waiting: list[int] = []

        def not_stored() -> int:  # checkpoints staged or stored locally but not yet in the store
            staged = logger._checkpoints.staged() if logger._checkpoints is not None else []
            assert logger._writer is not None
            return len(staged) + len([r for r in logger._writer.pending_uploads() if r.startswith("models/")])

        class Outage(pl.Callback):
            def on_train_batch_end(self, trainer: Any, *_: Any) -> None:
                if trainer.global_step == 3:
                    server.stop()

            def on_train_end(self, trainer: Any, module: Any) -> None:
                waiting.append(not_stored())
                deadline = time.monotonic() + 60  # liveness bound: until an upload attempt has failed
                while "could not upload" not in caplog.text and time.monotonic() < deadline:
                    time.sleep(0.1)
                server.start()
                # no save and no finalize from here on: only the background retry can upload
                deadline = time.monotonic() + 90  # liveness bound: the back-off is at most 30 s
                while not_stored() and time.monotonic() < deadline:
                    time.sleep(0.1)
                waiting.append(not_stored())

        ckpt = pl.callbacks.ModelCheckpoint(every_n_train_steps=2, save_top_k=-1)
        with caplog.at_level("WARNING", logger="lightning_tracker"):
            trainer(logger, pl_package, max_steps=12, enable_checkpointing=True, callbacks=[Outage(), ckpt]).fit(
                tiny_model(pl_package)
            )
        assert "could not upload" in caplog.text
        assert waiting[0] >= 5, "no checkpoint waited for the store"
        assert waiting[1] == 0, "the uploads were not retried once the store was back"
        stored = _stored(Store(url, server.storage_options), logger.version)
        assert stored == _local_ckpts(ckpt.dirpath) and len(stored) == 6


def test_resume_from_a_stored_checkpoint_matches_uninterrupted_training(
    tmp_path: Any, s3_server: S3Server, pl_package: str
) -> None:
    pl = lightning(pl_package)
    pl.seed_everything(7)
    straight = tiny_model(pl_package)
    trainer(False, pl_package, max_epochs=4).fit(straight)

    pl.seed_everything(7)
    url, logger = _s3(s3_server, log_model=True)
    trainer(
        logger, pl_package, max_epochs=2, enable_checkpointing=True, callbacks=[pl.callbacks.ModelCheckpoint()]
    ).fit(tiny_model(pl_package))

    # the README recipe: fetch the latest checkpoint from S3, verify it, resume
    run = Store(url, s3_server.storage_options).run(logger.version)
    path = run.checkpoint("latest").download(tmp_path)
    resumed = tiny_model(pl_package)
    again = TrackerLogger(
        url, name="p", version=logger.version, storage_options=s3_server.storage_options, log_model=True
    )
    trainer(again, pl_package, max_epochs=4, enable_checkpointing=True, callbacks=[pl.callbacks.ModelCheckpoint()]).fit(
        resumed, ckpt_path=path
    )
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    # the resumed session continues the manifest; top-1 replaced the first session's file
    run = Store(url, s3_server.storage_options).run(logger.version)
    assert [(c.epoch, c.step, c.entry["seq"]) for c in run.checkpoints] == [(3, 32, 3)]
    assert run.checkpoint("latest").download(tmp_path / "final.ckpt")


class _SlowProxy(TcpProxy):
    """A TCP proxy to the S3 server that forwards uploads at ``rate`` bytes per second."""

    def __init__(self, upstream: int, rate: float) -> None:
        self.rate, self.sent = rate, 0
        super().__init__(upstream)

    def _serve(self, client: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.upstream))
        threading.Thread(target=self._pipe, args=(up, client, False), daemon=True).start()
        self._pipe(client, up, True)

    def _pipe(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                for i in range(0, len(data), 1 << 14):
                    part = data[i : i + (1 << 14)]
                    if slow:
                        time.sleep(len(part) / self.rate)
                        self.sent += len(part)
                    dst.sendall(part)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


_KILL_SCRIPT = """
import logging, sys, torch
sys.path.insert(0, {root!r})
from lightning_tracker import TrackerLogger
from tests.helpers import lightning, tiny_model_class, trainer
pl = lightning({package!r})
logging.basicConfig(stream=sys.stdout, level=logging.WARNING)

class Big(tiny_model_class({package!r})):
    def __init__(self):
        super().__init__()
        self.big = torch.nn.Parameter(torch.randn(500_000))  # a 2 MB checkpoint

class Announce(pl.Callback):
    def on_train_end(self, trainer, module):
        print("TRAINED", flush=True)

logger = TrackerLogger({url!r}, name="p", version="killed", log_model="all", finalize_timeout=600,
                       storage_options={options!r})
ckpt = pl.callbacks.ModelCheckpoint(every_n_train_steps=2, save_top_k=-1)
trainer(logger, {package!r}, max_steps=8, enable_checkpointing=True, callbacks=[ckpt, Announce()]).fit(Big())
print("FINISHED", flush=True)
"""


def test_kill_during_upload_never_lists_a_half_checkpoint_then_sync_completes(
    tmp_path: Any, s3_server: S3Server, pl_package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_KEEP_SPOOL", "1")  # what sync leaves in the spool is checked below
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/exp"
    proxy = _SlowProxy(s3_server.port, rate=3e6)
    slow = {**s3_server.storage_options, "endpoint_url": proxy.endpoint}
    root = REPO
    script = _KILL_SCRIPT.format(root=root, package=pl_package, url=url, options=slow)
    spool = tmp_path / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "LIGHTNING_TRACKER_SPOOL": str(spool)},
    )
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("TRAINED"):
                break
        mark = proxy.sent
        while proxy.sent < mark + 3e6 and proc.poll() is None:  # 1.5 checkpoints further
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
        proxy.close()
    store = Store(url, s3_server.storage_options)
    run_dir = Path(spool_dir_for(Storage(url), str(spool))) / "p" / "killed"
    local = _local_ckpts(str(run_dir / "checkpoints"))
    assert len(local) == 4
    listed = _stored(store, "killed")  # every listed checkpoint downloads and verifies
    assert 0 < len(listed) < 4, f"the kill did not land mid-upload: {sorted(listed)}"
    assert all(local[name] == sha for name, sha in listed.items())
    # stored in the run's spool folder, waiting for upload (an uploaded checkpoint leaves the spool)
    waiting = [n for n in os.listdir(run_dir / "models")] + [
        n for n in os.listdir(run_dir / ".checkpoints") if n.endswith(".ckpt")
    ]
    assert len(waiting) == 4 - len(listed)

    assert cli(["sync", str(spool), "--storage-options", json.dumps(s3_server.storage_options)]) == 0
    assert _stored(store, "killed") == local
    assert [n for n in os.listdir(run_dir / ".checkpoints") if n.endswith(".ckpt")] == []
    assert os.listdir(run_dir / "models") == []
