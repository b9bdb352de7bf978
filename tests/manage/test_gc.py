"""``gc``: garbage goes (spool copies of uploaded runs, covered chunks a cut-off compaction left,
unreferenced media objects and checkpoints, temporary files), and nothing a reader reads is lost:
every run reads back identically afterwards. On a local folder and moto S3 on 127.0.0.1."""

from __future__ import annotations

import gc as python_gc
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import ProjectNotFoundError
from lightning_tracker.format.layout import chunk_name, live_chunks, parse_chunk_name
from lightning_tracker.manage.gc import (
    CHECKPOINT,
    COVERED_CHUNK,
    MEDIA_OBJECT,
    SPOOL_COPY,
    TEMPORARY,
    collect_garbage,
)
from lightning_tracker.writers.sync import spooled_runs, sync
from tests.helpers import lightning, local_or_s3, start_training, tiny_model, trainer

TARGETS = ["local", "s3"]


class _Samples(lightning("pytorch_lightning").Callback):  # type: ignore[misc]
    def on_validation_epoch_end(self, fit: Any, module: Any) -> None:
        rng = np.random.default_rng(fit.current_epoch)
        fit.logger.log_image("val/samples", [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)], step=fit.global_step)


def _fit(url: str, options: dict[str, Any] | None) -> str:
    pl = lightning("pytorch_lightning")
    logger = TrackerLogger(url, name="p", storage_options=options, log_model=True)
    ckpt = pl.callbacks.ModelCheckpoint(monitor="val/loss", save_top_k=2)
    trainer(logger, max_epochs=3, enable_checkpointing=True, callbacks=[ckpt, _Samples()]).fit(tiny_model())
    return logger.version


def record(url: str, options: dict[str, Any] | None) -> str:
    """A real run: a Trainer fit with metrics, images and top-2 stored checkpoints; returns its id."""
    run_id = _fit(url, options)
    python_gc.collect()  # the logger is done: it removes its own spool copy of an uploaded run
    assert spooled_runs() == []
    return run_id


def read_all(url: str, options: dict[str, Any] | None, run_id: str, tmp_path: Path) -> dict[str, Any]:
    """Everything a reader reads of a run: histories, media index and objects, verified checkpoints."""
    run = Store(url, options).run(run_id)
    media = run.media()
    images = [np.asarray(run.read_media(r.key, r.step, r.index)).tolist() for r in media.itertuples()]
    checkpoints = {}
    for ref in run.checkpoints:  # download checks size and sha256 against the manifest
        with open(ref.download(tmp_path / f"dl-{ref.name}"), "rb") as f:
            checkpoints[ref.name] = hashlib.sha256(f.read()).hexdigest()
    return {"metrics": run.metrics(), "media": media, "images": images, "checkpoints": checkpoints}


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    pd.testing.assert_frame_equal(before["metrics"], after["metrics"])
    pd.testing.assert_frame_equal(before["media"], after["media"])
    assert before["images"] == after["images"] and before["checkpoints"] == after["checkpoints"]
    assert len(before["checkpoints"]) == 2 and len(before["images"]) == 4  # the sanity check, then 3 epochs


def plant(store: Store, run_id: str, *, objects: int = 1) -> dict[str, str]:
    """What a crash leaves behind in a run: path in the store -> why it is garbage."""
    storage, path = store.storage, f"p/{run_id}"
    planted: dict[str, str] = {}
    chunks = live_chunks(storage.listdir(f"{path}/metrics"))
    wide = next(c for c in map(parse_chunk_name, chunks) if c is not None and c.last > c.first)
    covered = chunk_name(wide.session, wide.first, wide.first, wide.writer)  # compaction cut off before deleting it
    storage.write_bytes(f"{path}/metrics/{covered}", storage.read_bytes(f"{path}/metrics/{chunks[0]}"))
    planted[f"{path}/metrics/{covered}"] = COVERED_CHUNK
    for i in range(objects):  # uploaded, but the index chunk naming it never was
        data = f"orphan image {i}".encode()
        planted[f"{path}/media-files/{hashlib.sha256(data).hexdigest()}.png"] = MEDIA_OBJECT
        storage.write_bytes(f"{path}/media-files/{hashlib.sha256(data).hexdigest()}.png", data)
    storage.write_bytes(f"{path}/models/epoch=9-step=99.ckpt", b"unlisted weights")
    planted[f"{path}/models/epoch=9-step=99.ckpt"] = CHECKPOINT
    if storage.is_local:
        storage.write_bytes(f"{path}/media/.tmp-0123abcd.part", b"half a chunk")
        planted[f"{path}/media/.tmp-0123abcd.part"] = TEMPORARY
    return planted


def age(store: Store, paths: list[str], seconds: float) -> None:
    """Makes local files older (an object store's write times cannot be set: those tests age the heartbeat
    and pass grace_s=0)."""
    for rel in paths:
        local = store.storage.local_path(rel)
        if local is not None and os.path.exists(local):
            os.utime(local, (time.time() - seconds, time.time() - seconds))


def age_heartbeat(store: Store, run_id: str, seconds: float) -> None:
    """Makes a run's last heartbeat older: a run that ended ``seconds`` ago (what ``gc`` usually meets)."""
    doc = json.loads(store.storage.read_bytes(f"p/{run_id}/run.json"))
    beat = time.time() - seconds
    doc["heartbeat"] = beat
    for session in doc.get("sessions") or []:
        session["heartbeat"] = beat
    store.storage.write_bytes(f"p/{run_id}/run.json", json.dumps(doc).encode())


@pytest.mark.parametrize("target", TARGETS)
def test_gc_removes_what_a_crash_left_and_every_run_reads_the_same(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, options = local_or_s3(target, tmp_path, request)
    run_id = record(url, options)
    store = Store(url, options)
    age_heartbeat(store, run_id, 2 * 86_400)  # ended long ago: grace_s alone decides (objects cannot be aged on S3)
    before = read_all(url, options, run_id, tmp_path)
    planted = plant(store, run_id)
    listed = set(store.storage.find())
    dry = collect_garbage(store, dry_run=True, grace_s=0)
    assert {g.path: g.reason for g in dry.removed} == planted and set(store.storage.find()) == listed
    report = collect_garbage(store, grace_s=0)
    assert {g.path: g.reason for g in report.removed} == planted
    assert report.bytes == sum(g.size for g in report.removed) > 0
    assert set(store.storage.find()) == listed - set(planted)
    assert_same(before, read_all(url, options, run_id, tmp_path))
    assert collect_garbage(store, grace_s=0).removed == []  # nothing left to do


def test_gc_keeps_unreferenced_objects_younger_than_the_grace_period(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    run_id = record(url, None)
    store = Store(url)
    planted = plant(store, run_id)
    young = {p for p, why in planted.items() if why != COVERED_CHUNK}
    report = collect_garbage(store)  # a day of grace: a writer names an object after writing it
    assert {g.path for g in report.removed} == set(planted) - young  # the covered chunk never needs grace
    assert young <= set(f"p/{run_id}/{p}" for p in store.storage.find(f"p/{run_id}"))
    age(store, sorted(young), 2 * 86_400)
    assert {g.path for g in collect_garbage(store).removed} == young


def test_gc_never_touches_a_live_run(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    proc, run_id = start_training(url, tmp_path / "out", dict(os.environ))
    try:
        store = Store(url)
        orphan = f"p/{run_id}/models/orphan.ckpt"
        store.storage.write_bytes(orphan, b"weights")
        age(store, [orphan], 2 * 86_400)
        report = collect_garbage(store)
        assert report.removed == [] and store.storage.exists(orphan)
        assert [(where, why.split(" (")[0]) for where, why in report.kept] == [(f"p/{run_id}", "it is live")]
    finally:
        proc.kill()
        proc.wait()


def test_gc_leaves_a_run_without_run_json_or_with_a_damaged_one(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    for run_id, doc in (("arriving", None), ("damaged", b'{"format_version": 3, "status": 7}')):
        if doc is not None:
            store.storage.write_bytes(f"p/{run_id}/run.json", doc)
        store.storage.write_bytes(f"p/{run_id}/models/x.ckpt", b"w")
        age(store, [f"p/{run_id}/models/x.ckpt"], 2 * 86_400)
    report = collect_garbage(store)
    assert report.removed == [] and sorted(where for where, _ in report.kept) == ["p/arriving", "p/damaged"]
    assert "not all of it is in the store" in dict(report.kept)["p/arriving"]
    assert "run.json is damaged" in dict(report.kept)["p/damaged"]


def test_gc_removes_kept_spool_copies_of_uploaded_runs_and_keeps_unuploaded_ones(
    s3_server: Any, tmp_path: Path
) -> None:
    url, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    spool = tmp_path / "spool"
    kept = TrackerLogger(url, name="p", storage_options=options, keep_spool=True)
    kept.log_metrics({"loss": 1.0}, step=0)
    kept.finalize("success")
    offline = TrackerLogger(url, name="p", storage_options=options, offline=True)
    offline.log_metrics({"loss": 2.0}, step=0)
    offline.finalize("success")
    kept_dir, offline_dir, kept_id = kept.log_dir, offline.log_dir, kept.version
    del kept, offline
    python_gc.collect()
    assert sorted(spooled_runs(spool_root=str(spool))) == sorted([kept_dir, offline_dir])
    store = Store(url, options)
    report = collect_garbage(store, spool_root=str(spool))
    assert [(g.path, g.reason) for g in report.removed] == [(kept_dir, SPOOL_COPY)] and report.bytes > 0
    assert not os.path.exists(kept_dir) and os.path.isfile(os.path.join(offline_dir, "spool.json"))
    assert offline_dir in dict(report.kept) and "run lightning-tracker sync" in dict(report.kept)[offline_dir]
    assert list(store.run(kept_id).metrics(["loss"])["loss"]) == [1.0]
    sync([offline_dir], storage_options=options, keep=True)  # uploaded, and kept
    assert [g.reason for g in collect_garbage(store, spool_root=str(spool)).removed] == [SPOOL_COPY]
    assert spooled_runs(spool_root=str(spool)) == []


def test_gc_never_touches_a_run_whose_spool_copy_is_not_uploaded(s3_server: Any, tmp_path: Path) -> None:
    url, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    logger = TrackerLogger(url, name="p", storage_options=options, keep_spool=True)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    store = Store(url, options)
    # a file the store lost since (or one still to upload): the spool copy is all there is
    store.storage.rm(f"p/{logger.version}/config.json")
    orphan = f"p/{logger.version}/models/orphan.ckpt"
    store.storage.write_bytes(orphan, b"w")
    report = collect_garbage(store, grace_s=0)
    assert report.removed == [] and store.storage.exists(orphan) and os.path.isdir(logger.log_dir)
    assert "config.json" in dict(report.kept)[logger.log_dir]
    assert "not all in the store" in dict(report.kept)[f"p/{logger.version}"]


def test_gc_of_a_missing_project_is_a_usage_error(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    logger = TrackerLogger(url, name="p")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    with pytest.raises(ProjectNotFoundError, match=r"no project 'q' in .*; its projects: p"):
        collect_garbage(Store(url), "q")
    assert main(["gc", "-s", url, "-p", "q"]) == 2
    assert main(["gc", "-s", url, "--grace", "-1"]) == 2


def _same_size_other_bytes(path: str) -> None:
    """Rewrites a file with bytes of the same length that differ (a newer session's copy, never uploaded)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[-2] = ord("1") if data[-2] != ord("1") else ord("2")
    with open(path, "wb") as f:
        f.write(bytes(data))


@pytest.mark.parametrize("rel", ["meta.json", "git.diff", "metrics"])
def test_gc_keeps_a_spool_copy_whose_file_differs_from_the_store_with_the_same_size(
    rel: str, s3_server: Any, tmp_path: Path
) -> None:
    url, options = f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options
    spool = tmp_path / "spool"
    logger = TrackerLogger(url, name="p", storage_options=options, keep_spool=True, tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    store, local_dir, run_id = Store(url, options), logger.log_dir, logger.version
    if rel == "git.diff":  # a session started in a dirty work tree uploaded its diff
        Path(local_dir, rel).write_text("diff --git a/x b/x\n+1\n")
        store.storage.write_bytes(f"p/{run_id}/{rel}", Path(local_dir, rel).read_bytes())
        sync([local_dir], storage_options=options, keep=True)  # the mirror's record knows it, as a writer's would
    if rel == "metrics":  # a chunk rewritten in place: the mirror's record says it is not the one uploaded
        rel = f"metrics/{sorted(os.listdir(os.path.join(local_dir, 'metrics')))[0]}"
    _same_size_other_bytes(os.path.join(local_dir, rel))
    stored = store.storage.read_bytes(f"p/{run_id}/{rel}")
    assert len(stored) == os.path.getsize(os.path.join(local_dir, rel))
    report = collect_garbage(store, spool_root=str(spool))
    assert report.removed == [] and os.path.isfile(os.path.join(local_dir, rel))
    assert rel in dict(report.kept)[local_dir] and "run lightning-tracker sync" in dict(report.kept)[local_dir]
    sync([local_dir], storage_options=options, keep=True)  # the newer copy goes up; then gc may remove it
    assert store.storage.read_bytes(f"p/{run_id}/{rel}") != stored
    assert [g.reason for g in collect_garbage(store, spool_root=str(spool)).removed] == [SPOOL_COPY]


def test_gc_keeps_young_unreferenced_objects_of_a_run_with_a_recent_heartbeat_whatever_the_grace(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "runs")
    logger = TrackerLogger(url, name="p", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    store, run_id = Store(url), logger.version
    # its writer lives on another host, stalled a minute: it reads as crashed, yet uploads on
    doc = json.loads(store.storage.read_bytes(f"p/{run_id}/run.json"))
    doc.update(status="running", end_time=None, heartbeat=time.time() - 60)
    doc["writer"] = {**(doc.get("writer") or {}), "host": "gpu-node-7"}
    store.storage.write_bytes(f"p/{run_id}/run.json", json.dumps(doc).encode())
    assert store.run(run_id).status == "crashed"
    obj = f"p/{run_id}/media-files/{'ab' * 32}.png"  # uploaded a minute ago; its index chunk comes next
    store.storage.write_bytes(obj, b"x" * 100)
    age(store, [obj], 60)
    report = collect_garbage(store, grace_s=0)
    assert report.removed == [] and store.storage.exists(obj)
    assert "younger than 1 h" in dict(report.kept)[f"p/{run_id}"]
    age(store, [obj], 2 * 3600)  # named by now, or never will be
    assert [g.path for g in collect_garbage(store, grace_s=0).removed] == [obj]


def test_gc_removes_young_unreferenced_objects_of_a_run_that_ended_long_ago_with_grace_0(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    logger = TrackerLogger(url, name="p", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    store, run_id = Store(url), logger.version
    age_heartbeat(store, run_id, 2 * 86_400)
    orphan = f"p/{run_id}/models/orphan.ckpt"
    store.storage.write_bytes(orphan, b"weights")
    assert [g.path for g in collect_garbage(store, grace_s=0).removed] == [orphan]


def test_gc_refuses_a_grace_below_five_minutes_without_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url = str(tmp_path / "runs")
    logger = TrackerLogger(url, name="p", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    orphan = f"p/{logger.version}/models/orphan.ckpt"
    Store(url).storage.write_bytes(orphan, b"weights")
    age(Store(url), [orphan], 2 * 3600)
    capsys.readouterr()
    assert main(["gc", "-s", url, "--grace", "10"]) == 2 and Store(url).storage.exists(orphan)
    err = capsys.readouterr().err.strip()
    assert "--grace=10" in err and "--grace 300" in err and "--force" in err and len(err.splitlines()) == 1, err
    assert main(["gc", "-s", url, "--grace", "10", "--force"]) == 0 and not Store(url).storage.exists(orphan)
