"""The writer stores rollups as chunks are compacted and at finalize, named for the chunks they cover."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format import rollups
from lightning_tracker.format.layout import METRICS_DIR, live_chunks, parse_chunk_name
from lightning_tracker.format.schemas import METRICS
from lightning_tracker.storage import Storage
from lightning_tracker.writers.chunks import COMPACT_FANIN
from lightning_tracker.writers.metrics import MetricsProducer
from lightning_tracker.writers.mirror import Mirror


def _stored(folder: str) -> pa.Table:
    (name,) = os.listdir(folder)
    return pq.read_table(os.path.join(folder, name)).cast(rollups.ROLLUPS)


def _points(run_dir: str) -> pa.Table:
    folder = os.path.join(run_dir, METRICS_DIR)
    return pa.concat_tables(
        [pq.read_table(os.path.join(folder, n)).cast(METRICS) for n in live_chunks(os.listdir(folder))]
    )


def test_a_compaction_stores_the_rollup_of_every_chunk_of_the_session_so_far(tmp_path: Path) -> None:
    metrics = MetricsProducer(str(tmp_path), session=0, writer="kqfbxzab")
    for flush in range(COMPACT_FANIN + 2):
        metrics.write([("loss", flush * 10 + i, 0.0, 1000.0 if flush * 10 + i == 77 else float(i)) for i in range(10)])
        metrics.compact()
    (name,) = os.listdir(metrics.rollups_dir)
    # written at the compaction after flush 15: it covers chunks 0..15, the later two stay raw
    assert parse_chunk_name(name) == (0, 0, COMPACT_FANIN - 1, "kqfbxzab")
    stored = _stored(metrics.rollups_dir)
    assert stored.column("count").to_pylist() and sum(stored.column("count").to_pylist()) == 10 * COMPACT_FANIN
    assert max(stored.column("max").to_pylist()) == 1000.0, "the spike is in the envelope"
    metrics.compact(final=True)
    (final,) = os.listdir(metrics.rollups_dir)  # the older rollup is deleted after the new one is stored
    assert parse_chunk_name(final) == (0, 0, COMPACT_FANIN + 1, "kqfbxzab")
    assert _stored(metrics.rollups_dir).equals(rollups.from_points(_points(str(tmp_path))))


def test_a_step_logged_again_in_a_session_keeps_its_last_value_in_the_rollup(tmp_path: Path) -> None:
    metrics = MetricsProducer(str(tmp_path), session=0, writer="kqfbxzab")
    metrics.write([(key, step, 0.0, 1.0) for step in range(100) for key in ("loss", "acc")])
    metrics.write([("loss", 40, 1.0, -7.0), ("acc", 100, 1.0, 3.0)])  # loss at step 40 again: -7 replaces 1
    metrics.compact(final=True)
    stored = _stored(metrics.rollups_dir)
    assert sum(stored.column("count").to_pylist()) == 201 and min(stored.column("min").to_pylist()) == -7.0
    assert stored.equals(rollups.from_points(_points(str(tmp_path))))


def test_a_finalized_run_has_one_rollup_per_session_and_the_store_gets_it(tmp_path: Path) -> None:
    url = f"memory://rollup-writer-{os.getpid()}"
    for session in range(2):  # a new run, then a resume that goes on from step 500
        logger = TrackerLogger(url, name="p", version="r1", spool_dir=tmp_path / "spool", tensorboard=False)
        for step in range(session * 500, (session + 1) * 500):
            logger.log_metrics({"loss": float(step)}, step=step)
            if step % 50 == 0:
                logger.flush()
        logger.finalize("success")
    storage = Store(url).storage
    names = storage.listdir(f"p/r1/{rollups.ROLLUPS_DIR}")
    assert [parse_chunk_name(n).session for n in names] == [0, 1]  # type: ignore[union-attr]
    plan = rollups.plan(storage.listdir(f"p/r1/{METRICS_DIR}"), names)
    assert plan == rollups.Plan(names, []), "every stored chunk is covered by a stored rollup"


def test_the_mirror_uploads_a_rollup_after_the_chunks_it_covers_and_retires_the_one_it_replaces(tmp_path: Path) -> None:
    storage = Storage(f"memory://rollup-mirror-{os.getpid()}")
    metrics = MetricsProducer(str(tmp_path), session=0, writer="kqfbxzab")
    mirror = Mirror(str(tmp_path), storage, "p/r1")
    for step in range(COMPACT_FANIN):
        metrics.write([("loss", step, 0.0, float(step))])
    metrics.compact()
    first = mirror.run_once()
    assert first.complete and first.uploaded == [
        f"{METRICS_DIR}/000-kqfbxzab-00000000-{COMPACT_FANIN - 1:08d}.parquet",
        f"{rollups.ROLLUPS_DIR}/000-kqfbxzab-00000000-{COMPACT_FANIN - 1:08d}.parquet",
    ]
    for step in range(COMPACT_FANIN, 2 * COMPACT_FANIN):
        metrics.write([("loss", step, 0.0, float(step))])
    metrics.compact(final=True)
    second = mirror.run_once()
    assert second.complete and [r.split("/")[0] for r in second.uploaded] == [METRICS_DIR, rollups.ROLLUPS_DIR]
    assert storage.listdir(f"p/r1/{rollups.ROLLUPS_DIR}") == [
        f"000-kqfbxzab-00000000-{2 * COMPACT_FANIN - 1:08d}.parquet"
    ]
