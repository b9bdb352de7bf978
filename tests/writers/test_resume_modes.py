"""``TrackerLogger(resume="allow" | "must" | "never")`` with a real Trainer on a local folder, memory:// and S3."""

from __future__ import annotations

import logging
import os
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError, RunExistsError, RunNotFoundError, StorageError
from tests.conftest import S3Server
from tests.helpers import tiny_model_class, trainer
from tests.servers import GatedProxy, free_port, hung_store_options, late_store

NEW_RUN_WARNING = "starting a new run with that id"


class _CountingModel(tiny_model_class()):  # type: ignore[misc]
    """The tiny model, counting its training steps."""

    steps = 0

    def training_step(self, batch: Any, index: int) -> Any:
        type(self).steps += 1
        return super().training_step(batch, index)


def _fit(logger: TrackerLogger) -> _CountingModel:
    _CountingModel.steps = 0
    model = _CountingModel()
    trainer(logger, max_epochs=1).fit(model)
    return model


def _stored_files(save_dir: str, options: Any) -> dict[str, bytes]:
    storage = Store(save_dir, options).storage
    # the project index (.index/) is a cache any reader may write: not the runs' files
    return {rel: storage.read_bytes(rel) for rel in sorted(storage.find("")) if "/.index/" not in f"/{rel}"}


def _first_run(save_dir: str, options: Any) -> str:
    logger = TrackerLogger(save_dir, name="p", storage_options=options, flush_interval=0.2)
    _fit(logger)
    return logger.version


@pytest.mark.parametrize(
    ("resume_arg", "version", "message"),
    [
        ("yes", "r1", "resume='yes' is not allowed; pass 'allow'"),
        (True, "r1", "resume=True is not allowed; pass 'allow'"),
        (None, "r1", "resume=None is not allowed"),
        ("must", None, "resume='must' needs the id of the run to resume: pass version="),
    ],
)
def test_resume_is_checked_at_construction(resume_arg: Any, version: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as err:
        TrackerLogger(tmp_path, name="p", version=version, resume=resume_arg)
    if version is not None:
        assert "'must'" in str(err.value) and "'never'" in str(err.value)
    assert not os.listdir(tmp_path)


def test_must_on_a_mistyped_id_raises_before_any_training_step_and_writes_no_run(
    store_target: tuple[str, Any], tmp_path: Path
) -> None:
    save_dir, options = store_target
    first = _first_run(save_dir, options)
    before = _stored_files(save_dir, options)
    typo = first[:-1] + ("x" if first[-1] != "x" else "y")
    logger = TrackerLogger(save_dir, name="p", version=typo, resume="must", storage_options=options)
    _CountingModel.steps = 0
    with pytest.raises(RunNotFoundError, match=f"resume='must': there is no run {typo} in .*p; check the id") as err:
        trainer(logger, max_epochs=1).fit(_CountingModel())
    assert isinstance(err.value, FileNotFoundError)
    assert _CountingModel.steps == 0
    assert _stored_files(save_dir, options) == before
    assert [r.id for r in Store(save_dir, options).runs("p")] == [first]
    assert not os.path.exists(logger.log_dir), "nothing of the mistyped run in the spool either"


def test_must_on_an_existing_id_resumes_it(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    first = _first_run(save_dir, options)
    logger = TrackerLogger(save_dir, name="p", version=first, resume="must", storage_options=options)
    assert _fit(logger).steps == 8
    run = Store(save_dir, options).run(first)
    assert run.status == "finished" and len(run.doc["sessions"]) == 2


def test_never_on_an_existing_id_raises_and_leaves_the_run_unchanged(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    first = _first_run(save_dir, options)
    before = _stored_files(save_dir, options)
    logger = TrackerLogger(save_dir, name="p", version=first, resume="never", storage_options=options)
    _CountingModel.steps = 0
    with pytest.raises(RunExistsError, match=f"resume='never': run {first} already exists in .*p; pass another"):
        trainer(logger, max_epochs=1).fit(_CountingModel())
    assert _CountingModel.steps == 0
    assert _stored_files(save_dir, options) == before


def test_never_on_a_new_id_trains_and_a_copy_of_the_open_logger_does_not_check_again(
    store_target: tuple[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    save_dir, options = store_target
    logger = TrackerLogger(save_dir, name="p", version="fresh-run", resume="never", storage_options=options)
    with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
        assert _fit(logger).steps == 8
    assert NEW_RUN_WARNING not in caplog.text  # a run that must be new is not warned about being new
    # a ddp_spawn copy or a forked child reopens the run this logger created: that is no "existing run"
    clone = pickle.loads(pickle.dumps(logger))
    clone.log_metrics({"late": 1.0}, step=100)
    clone.finalize("success")
    assert Store(save_dir, options).run("fresh-run").summary["late"]["last"] == 1.0


def test_allow_on_a_new_id_warns_once_and_trains(
    store_target: tuple[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    save_dir, options = store_target
    with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
        logger = TrackerLogger(save_dir, name="p", version="my-new-run", storage_options=options)  # "allow"
        assert _fit(logger).steps == 8
        logger.log_metrics({"after": 1.0}, step=100)  # reopens the finished run: no second warning
        logger.finalize("success")
    assert caplog.text.count(NEW_RUN_WARNING) == 1, caplog.text
    assert "no run my-new-run in " in caplog.text
    assert Store(save_dir, options).run("my-new-run").status == "finished"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
        _fit(TrackerLogger(save_dir, name="p", storage_options=options))  # a generated id is new by definition
        _fit(TrackerLogger(save_dir, name="p", version="my-new-run", storage_options=options))  # exists now
    assert NEW_RUN_WARNING not in caplog.text


@pytest.mark.parametrize("mode", ["must", "never"])
def test_a_store_that_cannot_answer_is_an_error_naming_it(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_CHECK_TIMEOUT_S", "1")
    proxy = GatedProxy()  # accepts connections, never answers
    try:
        logger = TrackerLogger(
            "s3://hung/exp",
            name="p",
            version="some-run",
            resume=mode,
            storage_options=hung_store_options(proxy),
            spool_dir=tmp_path / "spool",
        )
        started = time.monotonic()
        _CountingModel.steps = 0
        with pytest.raises(
            StorageError,
            match=rf"resume='{mode}' needs to know whether run some-run exists in "
            r"s3://hung/exp/p, but the store could not tell \(no answer within",
        ):
            trainer(logger, max_epochs=1).fit(_CountingModel())
        assert time.monotonic() - started < 10 and _CountingModel.steps == 0
    finally:
        proxy.close()
    # an address where nothing listens: the store's own error is named
    options = {
        "key": "k",
        "secret": "s",
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    logger = TrackerLogger(
        "s3://nowhere/exp",
        name="p",
        version="some-run",
        resume=mode,
        storage_options=options,
        spool_dir=tmp_path / "spool",
    )
    with pytest.raises(StorageError, match=r"s3://nowhere/exp/p, but the store could not tell \(\w+"):
        logger.log_metrics({"a": 1.0}, step=0)
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").rglob("run.json"))


def test_offline_must_asks_the_store_and_fetches_nothing(s3_server: S3Server, tmp_path: Path) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    first = TrackerLogger(url, name="p", storage_options=s3_server.storage_options, spool_dir=tmp_path / "one")
    first.log_metrics({"a": 1.0}, step=0)
    first.finalize("success")
    logger = TrackerLogger(
        url,
        name="p",
        version=first.version,
        resume="must",
        offline=True,
        storage_options=s3_server.storage_options,
        spool_dir=tmp_path / "two",
    )
    logger.log_metrics({"a": 2.0}, step=1)
    logger.finalize("success")
    with pytest.raises(RunNotFoundError):
        TrackerLogger(
            url,
            name="p",
            version="not-" + first.version,
            resume="must",
            offline=True,
            storage_options=s3_server.storage_options,
            spool_dir=tmp_path / "two",
        ).log_metrics({"a": 1.0})
    with pytest.raises(RunExistsError, match="spool holds it"):  # offline, not uploaded yet
        TrackerLogger(
            url,
            name="p",
            version=first.version,
            resume="never",
            offline=True,
            storage_options=s3_server.storage_options,
            spool_dir=tmp_path / "two",
        ).log_metrics({"a": 1.0})


def test_allow_warns_once_when_a_slow_store_answers_late_that_the_run_is_new(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    run_id = f"late-{uuid.uuid4().hex[:6]}"
    with late_store(s3_server, monkeypatch) as (proxy, options):
        with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
            logger = TrackerLogger(
                url, name="p", version=run_id, storage_options=options, flush_interval=0.1, spool_dir=tmp_path / "spool"
            )
            logger.log_metrics({"a": 0.0}, step=0)
            assert NEW_RUN_WARNING not in caplog.text  # not known yet
            proxy.open()
            for step in range(1, 10):
                logger.log_metrics({"a": float(step)}, step=step)
                time.sleep(0.05)
            logger.finalize("success")
    assert caplog.text.count(NEW_RUN_WARNING) == 1, caplog.text
    assert Store(url, s3_server.storage_options).run(run_id).summary["a"]["count"] == 10


@pytest.mark.parametrize("own_monitor", [None, "val/acc"])
def test_the_monitor_survives_a_late_merge_and_a_session_s_own_monitor_wins(
    own_monitor: str | None, tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from tests.helpers import lightning

    url = f"s3://{s3_server.new_bucket()}/exp"
    first = TrackerLogger(url, name="p", storage_options=s3_server.storage_options, spool_dir=tmp_path / "machine-1")
    checkpoint = lightning().callbacks.ModelCheckpoint(monitor="val/loss", mode="min")
    trainer(first, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint]).fit(_CountingModel())
    with late_store(s3_server, monkeypatch) as (proxy, options):
        second = TrackerLogger(
            url,
            name="p",
            version=first.version,
            storage_options=options,
            flush_interval=0.1,
            spool_dir=tmp_path / "machine-2",
        )
        second.log_metrics({"loss": 0.5}, step=100)  # opens the run before the store answered
        if own_monitor is not None:  # what Lightning hands over: a ModelCheckpoint (here its two fields)
            second.after_save_checkpoint(SimpleNamespace(monitor=own_monitor, mode="max"))
        proxy.open()
        for step in range(101, 110):
            second.log_metrics({"loss": 0.5}, step=step)
            time.sleep(0.05)
        second.finalize("success")
    run = Store(url, s3_server.storage_options).run(first.version)
    assert len(run.doc["sessions"]) == 2, "the late answer was merged"
    expected = {"name": "val/loss", "mode": "min"} if own_monitor is None else {"name": own_monitor, "mode": "max"}
    assert run.monitor == expected
