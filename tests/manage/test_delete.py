"""``rm``: a deleted run leaves no object behind, a live run is refused, a deletion cut off half-way
reads as deleted and ``rm`` again finishes it.

Real stores (a local folder, moto S3, fake-gcs-server, Azurite on 127.0.0.1), a real Lightning
``Trainer`` writing metrics, an image, checkpoints and TensorBoard files, a real subprocess killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import RunNotFoundError
from lightning_tracker.format.layout import (
    EDITS_DIR,
    EVENTS_PREFIX,
    MEDIA_FILES_DIR,
    MODELS_DIR,
    SPOOL_FILE,
    TOMBSTONE_FILE,
)
from lightning_tracker.storage import Storage
from lightning_tracker.writers.spool import spool_run_dir
from tests.helpers import REPO, lightning, tiny_model, trainer


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any] | None]:
    if request.param == "local":
        return str(tmp_path / "runs"), None
    server = request.getfixturevalue({"s3": "s3_server", "gcs": "gcs_server", "azure": "azure_server"}[request.param])
    protocol = {"s3": "s3", "gcs": "gs", "azure": "az"}[request.param]
    return f"{protocol}://{server.new_bucket()}/exp", server.storage_options


def _full_run(save_dir: str, options: dict[str, Any] | None, version: str, tmp_path: Path) -> None:
    """A run with every kind of object: metrics, an image, stored checkpoints, TensorBoard events, an edit."""
    logger = TrackerLogger(save_dir, name="p", version=version, storage_options=options, log_model=True)
    logger.log_image("samples", [np.zeros((4, 4, 3), np.uint8)], step=0)
    checkpoint = lightning().callbacks.ModelCheckpoint(dirpath=str(tmp_path / f"ckpt-{version}"), monitor="val/loss")
    trainer(logger, max_epochs=2, enable_checkpointing=True, callbacks=[checkpoint]).fit(tiny_model())
    Store(save_dir, options).run(version).add_tags("best")


def _cli(save_dir: str, options: dict[str, Any] | None, *argv: str) -> int:
    return main([*argv, "-s", save_dir, *(["--storage-options", json.dumps(options)] if options else [])])


def test_rm_leaves_no_object_of_the_run_behind_and_keeps_the_others(
    target: tuple[str, dict[str, Any] | None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = target
    _full_run(save_dir, options, "gone", tmp_path)
    _full_run(save_dir, options, "kept", tmp_path)
    storage = Storage(save_dir, options)
    kept_before = storage.find("p/kept")
    objects = storage.find("p/gone")
    assert {rel.split("/")[0] for rel in objects} >= {"metrics", "media", MEDIA_FILES_DIR, MODELS_DIR, "run.json"}
    assert any(rel.startswith(EVENTS_PREFIX) for rel in objects)
    size = sum(objects.values()) + sum(storage.find(f"p/{EDITS_DIR}/gone").values())
    capsys.readouterr()

    assert _cli(save_dir, options, "rm", "gone", "--dry-run", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["deleted"] is False and listed["bytes"] == size and listed["runs"][0]["id"] == "gone"
    assert storage.find("p/gone") == objects  # a dry run deletes nothing

    assert _cli(save_dir, options, "rm", "gone", "--yes") == 0
    assert storage.find("p/gone") == {} and storage.find(f"p/{EDITS_DIR}/gone") == {}
    assert "gone" not in storage.listdir("p") and "gone" not in Store(save_dir, options).run_ids("p")
    assert [r.id for r in Store(save_dir, options).runs("p")] == ["kept"]
    assert storage.find("p/kept") == kept_before and Store(save_dir, options).run("kept").tags == ["best"]
    changes = storage.find("p/.index/changes")
    kinds = [json.loads(storage.read_bytes(f"p/.index/changes/{rel}"))["kind"] for rel in changes if "-gone-" in rel]
    assert "delete" in kinds  # the project index drops it


def test_rm_with_a_selection_deletes_what_runs_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = str(tmp_path / "runs")
    for version, status in (("a", "success"), ("b", "failed"), ("c", "failed")):
        logger = TrackerLogger(save_dir, name="p", version=version, tensorboard=False)
        logger.log_metrics({"loss": {"a": 1.0, "b": 2.0, "c": 3.0}[version]}, step=0)
        logger.finalize(status)
    assert main(["rm", "-s", save_dir, "-p", "p", "--status", "failed", "--where", "loss>2.5", "--yes"]) == 0
    assert [r.id for r in Store(save_dir).runs("p")] == ["a", "b"]
    assert not (tmp_path / "runs" / "p" / "c").exists()


def test_a_running_run_is_refused_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", version="live", tensorboard=False, flush_interval=0.1)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.flush()
    try:
        assert Store(save_dir).run("live").status == "running"
        capsys.readouterr()
        assert main(["rm", "live", "-s", save_dir, "--yes"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: run live") and "is running" in err and "--force" in err and err.count("\n") == 1
        assert Store(save_dir).run("live").status == "running"
        assert main(["rm", "live", "-s", save_dir, "--yes", "--force"]) == 0
        assert Store(save_dir).runs("p") == []
    finally:
        logger.finalize("success")


def test_rm_refuses_to_ask_without_a_terminal_and_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    save_dir = str(tmp_path / "runs")
    for version in ("abc-1", "abc-2"):
        logger = TrackerLogger(save_dir, name="p", version=version, tensorboard=False)
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    capsys.readouterr()
    for argv, status, said in (
        (["rm", "abc-1"], 2, "cannot ask: stdin is not a terminal; pass --yes"),
        (["rm", "nope", "--yes"], 2, "no run 'nope'"),
        (["rm", "abc", "--yes"], 2, "'abc' matches 2 runs"),
        (["rm", "--yes"], 2, "rm needs runs"),
        (["rm", "abc-1", "--where", "loss>0", "--yes"], 2, "not both"),
        (["rm", "-p", "p", "--where", "lss>0", "--yes"], 2, "names 'lss'"),
        (["rm", "-p", "q", "--yes"], 2, "no project 'q'"),
    ):
        assert main([*argv, "-s", save_dir]) == status, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err and err.count("\n") == 1, (argv, err)
    assert main(["rm", "-p", "p", "--where", "loss>5", "--yes", "-s", save_dir]) == 1  # as `runs` does
    assert "no runs match -p p --where 'loss>5'" in capsys.readouterr().out
    assert len(Store(save_dir).runs("p")) == 2


def _put_many(storage: Storage, rel: str, n: int) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: storage.write_bytes(f"{rel}/{i:05d}.bin", b"x" * 100), range(n)))


def test_an_rm_killed_half_way_leaves_the_run_deleted_and_rm_again_finishes_it(s3_server: Any, tmp_path: Path) -> None:
    save_dir, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    for version in ("gone", "kept"):
        logger = TrackerLogger(save_dir, name="p", version=version, storage_options=options)
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
    storage = Storage(save_dir, options)
    _put_many(storage, f"p/gone/{MEDIA_FILES_DIR}", 800)  # many objects: deleting them takes a while
    env = {**os.environ, "PYTHONPATH": REPO, "LIGHTNING_TRACKER_STORAGE_OPTIONS": json.dumps(options)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_tracker.cli", "rm", "gone", "-s", save_dir, "--yes"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    mark = f"p/{EDITS_DIR}/gone/{TOMBSTONE_FILE}"
    try:
        deadline = time.monotonic() + 120
        while not storage.exists(mark) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    left = storage.find("p/gone")
    assert len(left) > 100, "the deletion was not cut off half-way"  # the kill landed in the middle
    store = Store(save_dir, options)
    assert [r.id for r in store.runs("p")] == ["kept"]  # reads as deleted, never as half a run
    with pytest.raises(RunNotFoundError):
        store.run("gone")
    assert _cli(save_dir, options, "rm", "gone", "--yes") == 0  # finishes it
    assert storage.find("p/gone") == {} and storage.find(f"p/{EDITS_DIR}/gone") == {}
    assert [r.id for r in Store(save_dir, options).runs("p")] == ["kept"]


def test_rm_removes_the_spooled_copy_so_sync_never_uploads_the_run_again(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_dir, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    logger = TrackerLogger(save_dir, name="p", version="r1", storage_options=options, keep_spool=True)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    spooled = spool_run_dir(Storage(save_dir, options), "p", "r1")
    assert os.path.isfile(os.path.join(spooled, SPOOL_FILE))
    monkeypatch.setenv("LIGHTNING_TRACKER_STORAGE_OPTIONS", json.dumps(options))
    assert main(["rm", "r1", "-s", save_dir, "--yes"]) == 0
    assert not os.path.exists(spooled)
    assert main(["sync"]) == 0
    assert Storage(save_dir, options).find("p/r1") == {}
