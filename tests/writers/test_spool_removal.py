"""The spool does not only grow: a run's spool folder is removed once its upload is confirmed
and the logger is done (garbage-collected, or the process exits), kept when asked or when the
upload is incomplete, and removed by ``sync`` once it completes one (moto S3 on 127.0.0.1)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.writers.sync import spooled_runs, sync
from tests.conftest import S3Server
from tests.helpers import REPO, lightning, tiny_model, trainer
from tests.servers import GatedProxy, hung_store_options


def _fit(url: str, options: dict[str, Any], spool: Path, **kwargs: Any) -> tuple[str, str, str]:
    """Fits with top-2 checkpoints uploaded; returns the run id, its spool folder and the best checkpoint."""
    pl = lightning("pytorch_lightning")
    kwargs = {"log_model": True, **kwargs}
    logger = TrackerLogger(url, name="p", storage_options=options, spool_dir=spool, **kwargs)
    ckpt = pl.callbacks.ModelCheckpoint(monitor="val/loss", save_top_k=2)
    fit = trainer(logger, max_epochs=3, enable_checkpointing=True, callbacks=[ckpt])
    fit.fit(tiny_model())
    assert os.path.isfile(ckpt.best_model_path)  # after fit's finalize, "best" is still there for test()
    fit.test(ckpt_path="best", verbose=False)
    return logger.version, logger.log_dir, ckpt.best_model_path


def test_a_confirmed_upload_removes_the_spool_folder_once_the_logger_is_done(
    s3_server: S3Server, tmp_path: Path
) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    spool = tmp_path / "spool"
    run_id, local_dir, _ = _fit(url, s3_server.storage_options, spool)
    gc.collect()  # the trainer and the logger are gone: the writer is done
    assert not os.path.exists(local_dir)
    assert [str(p.relative_to(spool)) for p in spool.rglob("*")] == ["s3"]  # the store's folders went too
    run = Store(url, s3_server.storage_options).run(run_id)
    assert run.status == "finished" and "test/loss" in run.summary and len(run.metrics()) > 0
    assert len(run.checkpoints) == 2
    for ref in run.checkpoints:
        assert os.path.getsize(ref.download(tmp_path / ref.name)) > 0  # verified against the manifest
    assert spooled_runs(spool_root=str(spool)) == []


@pytest.mark.parametrize("how", ["argument", "setting"])
def test_keep_spool_keeps_the_spool_folder_after_a_confirmed_upload(
    how: str, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    kwargs: dict[str, Any] = {"keep_spool": True} if how == "argument" else {}
    if how == "setting":
        monkeypatch.setenv("LIGHTNING_TRACKER_KEEP_SPOOL", "1")
    run_id, local_dir, best = _fit(url, s3_server.storage_options, tmp_path / "spool", **kwargs)
    gc.collect()
    assert os.path.isfile(os.path.join(local_dir, "spool.json")) and os.path.isfile(best)
    assert Store(url, s3_server.storage_options).run(run_id).status == "finished"


def test_an_incomplete_upload_keeps_the_spool_folder_until_sync_completes_it(
    s3_server: S3Server, tmp_path: Path
) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    spool = tmp_path / "spool"
    proxy = GatedProxy()  # accepts connections and never answers: a hung store
    try:
        logger = TrackerLogger(
            url, name="p", storage_options=hung_store_options(proxy), spool_dir=spool, finalize_timeout=1
        )
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
        local_dir = logger.log_dir
        del logger
        gc.collect()
        assert os.path.isfile(os.path.join(local_dir, "spool.json"))
        assert spooled_runs(spool_root=str(spool)) == [local_dir]
    finally:
        proxy.close()
    reports = sync(spool_root=str(spool), storage_options=s3_server.storage_options)
    assert [r.complete for r in reports.values()] == [True]
    assert not os.path.exists(local_dir) and spooled_runs(spool_root=str(spool)) == []
    run_id = os.path.basename(local_dir)
    assert list(Store(url, s3_server.storage_options).run(run_id).metrics(["loss"])["loss"]) == [1.0]


def test_a_finished_process_leaves_no_spool_behind(s3_server: S3Server, tmp_path: Path) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    spool = tmp_path / "spool"
    script = textwrap.dedent(f"""
        from lightning_tracker import TrackerLogger
        logger = TrackerLogger({url!r}, name="p", version="r1", storage_options={s3_server.storage_options!r},
                               spool_dir={str(spool)!r})
        logger.log_metrics({{"loss": 1.0}}, step=0)
        logger.finalize("success")
        print(logger.log_dir, flush=True)
    """)  # the logger is still referenced when the interpreter exits
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    local_dir = done.stdout.strip()
    assert local_dir.startswith(str(spool)) and not os.path.exists(local_dir)
    assert Store(url, s3_server.storage_options).run("r1").status == "finished"


def test_a_run_resumed_in_the_same_process_keeps_its_spool_until_the_last_logger_is_done(tmp_path: Path) -> None:
    url, spool = "memory://spool-removal/resumed", tmp_path / "spool"
    first = TrackerLogger(url, name="p", version="r1", spool_dir=spool)
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("success")  # confirmed: the store holds it all
    second = TrackerLogger(url, name="p", version="r1", spool_dir=spool)
    second.log_metrics({"loss": 0.5}, step=1)  # the same spool folder, open again
    local_dir = second.log_dir
    del first
    gc.collect()  # the first logger is done; the second still writes into the folder
    assert os.path.isfile(os.path.join(local_dir, "spool.json"))
    second.log_metrics({"loss": 0.25}, step=2)
    second.finalize("success")
    del second
    gc.collect()
    assert not os.path.exists(local_dir)
    assert list(Store(url).run("r1").metrics(["loss"])["loss"]) == [1.0, 0.5, 0.25]


def test_a_finished_logger_collected_while_a_second_one_resumes_its_run_leaves_the_spool_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first writer may be collected at any moment; here, just after the second one
    downloaded the run into the shared spool folder and before it wrote there."""
    from lightning_tracker.writers import resume, run_writer

    url, spool = "memory://spool-removal/collected", tmp_path / "spool"
    first = TrackerLogger(url, name="p", version="r1", spool_dir=spool)
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("success")  # confirmed: the store holds it all, so its folder may go when it is done
    loaded = resume.load_existing

    def then_collected(*args: Any, **kwargs: Any) -> Any:
        found = loaded(*args, **kwargs)
        gc.collect()  # the first logger, dropped below, is done right now
        return found

    monkeypatch.setattr(run_writer, "load_existing", then_collected)
    gc.disable()  # its writer goes only when collected, not when dropped
    try:
        del first
        second = TrackerLogger(url, name="p", version="r1", spool_dir=spool)
        second.log_metrics({"loss": 0.5}, step=1)
        second.finalize("success")
    finally:
        gc.enable()
    assert list(Store(url).run("r1").metrics(["loss"])["loss"]) == [1.0, 0.5]


def test_files_the_store_does_not_hold_stay_when_the_spool_copy_goes(s3_server: S3Server, tmp_path: Path) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    spool = tmp_path / "spool"
    _, log_dir, _ = _fit(url, s3_server.storage_options, spool, log_model=False)  # Lightning's files only
    local_dir = Path(log_dir)
    kept = sorted(p.name for p in (local_dir / "checkpoints").iterdir())
    assert len(kept) == 2
    (local_dir / "plots").mkdir()
    (local_dir / "plots" / "mine.txt").write_text("the user's own")  # a folder the mirror never publishes
    gc.collect()
    left = sorted(str(p.relative_to(local_dir)) for p in local_dir.rglob("*"))
    assert left == ["checkpoints", *(f"checkpoints/{n}" for n in kept), "plots", "plots/mine.txt"]
    assert spooled_runs(spool_root=str(spool)) == []  # nothing left to upload: not a spooled run any more
