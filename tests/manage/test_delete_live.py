"""``rm --force`` of a run while it trains: its writer finds the deletion mark, publishes nothing
more, keeps what it has locally, and the run does not come back when training ends.

A real Lightning ``Trainer`` calls the real ``lightning-tracker rm`` in the middle of ``fit``;
stores are a local folder and a real moto S3 server on 127.0.0.1 whose requests are counted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.format.documents import heartbeat_refresh_s
from lightning_tracker.format.layout import EDITS_DIR, METRICS_DIR, SPOOL_FILE, TOMBSTONE_FILE
from lightning_tracker.storage import Storage
from lightning_tracker.writers.spool import spool_run_dir
from tests.helpers import lightning, local_or_s3, tiny_model, trainer
from tests.servers import free_port


class _RmAtStep(lightning().Callback):
    """Runs ``lightning-tracker rm --force`` on the training run once ``step`` batches are done,
    then makes each later batch last ``sleep_s`` (so the writer's own checks come round)."""

    def __init__(self, save_dir: str, options: dict[str, Any] | None, step: int, sleep_s: float = 0.0) -> None:
        self.save_dir, self.options, self.step, self.sleep_s = save_dir, options, step, sleep_s
        self.status: int | None = None
        self.ended = False  # training ended (before the logger's finalize)

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            trainer.logger.experiment.flush()
            stored, deadline = Storage(self.save_dir, self.options), time.monotonic() + 60
            while not stored.find(f"p/{trainer.logger.version}/{METRICS_DIR}"):  # the mirror lags the writer
                assert time.monotonic() < deadline, "the run never reached the store"
                time.sleep(0.05)
            self.status = main(["rm", trainer.logger.version, "-s", self.save_dir, "--yes", "--force"])
        elif trainer.global_step > self.step:
            time.sleep(self.sleep_s)

    def on_train_end(self, trainer: Any, module: Any) -> None:
        self.ended = True


def _no_trace(save_dir: str, options: dict[str, Any] | None, run_id: str) -> None:
    storage = Storage(save_dir, options)
    assert storage.find(f"p/{run_id}") == {}
    assert storage.find(f"p/{EDITS_DIR}/{run_id}") == {}  # the mark went last
    store = Store(save_dir, options)
    assert [r.id for r in store.runs("p")] == ["kept"]
    assert store.table("p")["id"].tolist() == ["kept"]  # the project index does not list it


def _deleted_warnings(caplog: pytest.LogCaptureFixture, run_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if run_id in r.getMessage() and "deleted" in r.getMessage()]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_run_deleted_while_it_trains_does_not_come_back_when_it_ends(
    where: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    save_dir, options = local_or_s3(where, tmp_path, request)
    if options:
        monkeypatch.setenv("LIGHTNING_TRACKER_STORAGE_OPTIONS", json.dumps(options))
    kept = TrackerLogger(save_dir, name="p", version="kept", storage_options=options, tensorboard=False)
    kept.log_metrics({"loss": 1.0}, step=0)
    kept.finalize("success")
    logger = TrackerLogger(save_dir, name="p", storage_options=options, flush_interval=0.1)
    rm = _RmAtStep(save_dir, options, step=3)
    with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
        trainer(logger, max_epochs=2, callbacks=[rm]).fit(tiny_model())  # must not raise
    assert rm.status == 0
    _no_trace(save_dir, options, logger.version)
    warnings = _deleted_warnings(caplog, logger.version)
    assert len(warnings) == 1 and "rm" in warnings[0] and "\n" not in warnings[0], warnings
    if where == "s3":  # what it logged is kept on this machine, where the warning says, and sync leaves it
        spooled = spool_run_dir(Storage(save_dir, options), "p", logger.version)
        assert spooled in warnings[0]
        assert os.listdir(os.path.join(spooled, METRICS_DIR)) and not os.path.exists(os.path.join(spooled, SPOOL_FILE))
        assert main(["sync"]) == 0
        _no_trace(save_dir, options, logger.version)


class _CountingS3:
    """A moto S3 server that records the method and path of every request it answers."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

        def counting(environ: dict[str, Any], start_response: Any) -> Any:
            with self._lock:
                self.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", "")))
            return app(environ, start_response)

        self.port = free_port()
        self._server = make_server("127.0.0.1", self.port, counting, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"key": "testing", "secret": "testing", "endpoint_url": f"http://127.0.0.1:{self.port}"}

    def seen(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self.requests)

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


@pytest.fixture
def counting_s3() -> Iterator[_CountingS3]:
    server = _CountingS3()
    try:
        yield server
    finally:
        server.stop()


def test_a_live_writer_stops_uploading_once_it_finds_the_deletion_mark_at_two_requests_per_heartbeat(
    counting_s3: _CountingS3, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    import s3fs

    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**counting_s3.storage_options, skip_instance_cache=True).mkdir(bucket)
    save_dir, options, interval = f"s3://{bucket}/exp", counting_s3.storage_options, 0.1
    monkeypatch.setenv("LIGHTNING_TRACKER_STORAGE_OPTIONS", json.dumps(options))
    kept = TrackerLogger(save_dir, name="p", version="kept", storage_options=options, tensorboard=False)
    kept.log_metrics({"loss": 1.0}, step=0)
    kept.finalize("success")
    logger = TrackerLogger(save_dir, name="p", storage_options=options, flush_interval=interval)
    run_prefix = f"/{bucket}/exp/p/{logger.version}/"
    mark = f"/{bucket}/exp/p/{EDITS_DIR}/{logger.version}/{TOMBSTONE_FILE}"
    noticed: list[int] = []  # requests answered when the warning was given
    while_training: list[bool] = []

    class _Noticed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if logger.version in record.getMessage() and "deleted" in record.getMessage() and not noticed:
                noticed.append(len(counting_s3.seen()))
                while_training.append(not rm.ended)

    handler = _Noticed(logging.WARNING)
    logging.getLogger("lightning_tracker").addHandler(handler)
    # 2 epochs of 8 batches: after the rm at step 2, 13 batches of 0.8 s outlast two of the writer's checks
    rm = _RmAtStep(save_dir, options, step=2, sleep_s=0.8)
    started = time.monotonic()
    fit = trainer(logger, max_epochs=2, callbacks=[rm])
    try:
        fit.fit(tiny_model())
    finally:
        logging.getLogger("lightning_tracker").removeHandler(handler)
    elapsed = time.monotonic() - started
    assert fit.global_step == 16  # training went on to its end
    _no_trace(save_dir, options, logger.version)
    assert while_training == [True], "the writer did not find the mark while it trained"
    after = counting_s3.seen()[noticed[0] :]
    # once it knew, nothing of the run was put again: only its deletion was finished (listings, deletes)
    assert [r for r in after if r[0] == "PUT" and r[1].startswith(run_prefix)] == []
    # one change object, the one that tells the index the writer finished the deletion, after its last removal
    told = [i for i, r in enumerate(after) if r[0] == "PUT" and "/.index/changes/" in r[1]]
    mark_removed = [i for i, r in enumerate(after) if r[0] == "DELETE" and r[1] == mark]
    assert len(told) == 1 and mark_removed and told[0] < mark_removed[-1], (told, mark_removed)
    assert any(r[0] in ("DELETE", "POST") and r[1] != mark for r in after[: told[0]]), "the run's objects went first"
    # the cost: one read of the mark per heartbeat refresh while it trained, and one at the end at most;
    # s3fs reads a missing object with a HEAD and a one-key listing of that key as a folder
    heads = [r for r in counting_s3.seen() if r[1] == mark and r[0] == "HEAD"]  # each read starts with one
    lists = [r for r in counting_s3.seen() if f"prefix={mark.split('/', 2)[2]}/" in unquote(r[2])]
    assert 1 <= len(lists) <= len(heads)
    assert 1 <= len(heads) <= elapsed / heartbeat_refresh_s(interval) + 2, (len(heads), elapsed)


class _StillGone(lightning().Callback):
    """Flushes the logger after each training batch and checks the run is not in the store meanwhile."""

    def __init__(self, save_dir: str, options: dict[str, Any] | None) -> None:
        self.save_dir, self.options = save_dir, options

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        trainer.logger.experiment.flush()
        assert [r.id for r in Store(self.save_dir, self.options).runs("p")] == ["kept"]
        assert Storage(self.save_dir, self.options).find(f"p/{trainer.logger.version}") == {}


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_deleted_run_is_not_reopened_by_a_later_fit_or_validate(
    where: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_dir, options = local_or_s3(where, tmp_path, request)
    if options:
        monkeypatch.setenv("LIGHTNING_TRACKER_STORAGE_OPTIONS", json.dumps(options))
    kept = TrackerLogger(save_dir, name="p", version="kept", storage_options=options, tensorboard=False)
    kept.log_metrics({"loss": 1.0}, step=0)
    kept.finalize("success")
    logger = TrackerLogger(save_dir, name="p", storage_options=options, flush_interval=0.1, log_model=True)
    model = tiny_model()
    trainer(logger, max_epochs=1, callbacks=[_RmAtStep(save_dir, options, step=3)]).fit(model)
    _no_trace(save_dir, options, logger.version)
    # Lightning logs again after finalize: a validate, and a second fit that saves checkpoints
    checkpoint = lightning().callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val/loss")
    again = trainer(
        logger, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint, _StillGone(save_dir, options)]
    )
    again.validate(model)
    again.fit(model)
    logger.alert("after", "logged after the deletion")
    logger.finalize("success")
    assert again.global_step > 0 and os.listdir(tmp_path / "ckpt")  # training itself went on
    _no_trace(save_dir, options, logger.version)


def test_rm_undo_cannot_take_back_the_forced_deletion_of_a_live_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", version="live", flush_interval=60, tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.flush()
    assert main(["rm", "live", "-s", save_dir, "--yes", "--force"]) == 0
    logger.log_metrics({"loss": 0.5}, step=1)
    logger.experiment.flush()  # its writer has not looked for the mark yet: it writes run.json again
    assert os.path.isfile(os.path.join(save_dir, "p", "live", "run.json"))
    capsys.readouterr()
    assert main(["rm", "--undo", "live", "-s", save_dir]) == 2
    assert "it was deleted while it trained (rm --force)" in capsys.readouterr().err
    assert [r.id for r in Store(save_dir).runs("p")] == []  # still reads as deleted, not as half a run
    logger.finalize("success")
    assert Storage(save_dir).find("p/live") == {}
