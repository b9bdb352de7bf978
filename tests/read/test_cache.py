"""The read cache: a dashboard refresh reads only new chunks and rebuilds only changed runs.

Runs are written straight in the published format (``lightning_tracker.format``), so the
chunk names, and hence compaction, are under the test's control.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightning_tracker import Store
from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import new_run
from lightning_tracker.format.layout import HISTOGRAMS_DIR, METRICS_DIR, RUN_FILE, chunk_name, live_chunks
from lightning_tracker.format.schemas import METRICS
from lightning_tracker.read.cache import ReadCache
from lightning_tracker.report import Dashboard
from lightning_tracker.storage import Storage

RUN = "p/r1"


def _write_table(storage: Storage, rel: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(rel, buf.getvalue())


def write_run(storage: Storage, path: str = RUN, **fields: Any) -> None:
    project, run_id = path.split("/")
    doc = new_run(run_id, project, run_id, group=None, tags=[], notes=None, heartbeat_interval_s=2.0, url=path)
    doc.update(fields)
    storage.write_bytes(f"{path}/{RUN_FILE}", dumps(doc))


def write_metrics(storage: Storage, first: int, last: int, steps: range, key: str = "loss", path: str = RUN) -> None:
    """Chunk ``first..last`` of session 0: ``key`` = 10 * step at each step."""
    table = pa.table(
        {
            "step": list(steps),
            "time": [float(s) for s in steps],
            "key": [key] * len(steps),
            "value": [10.0 * s for s in steps],
        }
    )
    _write_table(storage, f"{path}/{METRICS_DIR}/{chunk_name(0, first, last)}", table.cast(METRICS))


def write_histograms(storage: Storage, seq: int, step: int) -> None:
    """A histogram chunk with only some columns: the reader fills the others with nulls."""
    table = pa.table(
        {"step": [step], "time": [0.0], "tensor": ["w"], "kind": ["gradient"], "edges": [[0.0, 1.0]], "counts": [[3]]}
    )
    _write_table(storage, f"{RUN}/{HISTOGRAMS_DIR}/{chunk_name(0, seq, seq)}", table)


def count_opens(storage: Storage) -> list[str]:
    """Records every path ``storage.open`` is asked for (the instance's own method still opens it)."""
    opened: list[str] = []
    original = storage.open

    def counting(rel: str) -> Any:
        opened.append(rel)
        return original(rel)

    storage.open = counting  # type: ignore[method-assign]  # instrumentation of this one instance
    return opened


@pytest.fixture
def dashboard(store_target: tuple[str, Any]) -> Any:
    """A dashboard that refreshes on every ``data()`` call, never served (no socket traffic needed)."""
    save_dir, options = store_target
    dash = Dashboard(Store(save_dir, options), port=0, refresh=1e-9)
    yield dash
    dash.stop()


def refresh(dash: Dashboard) -> dict[str, Any]:
    return json.loads(dash.data())  # type: ignore[no-any-return]


def test_a_refresh_shows_the_points_of_chunks_written_since_the_last_one(dashboard: Dashboard) -> None:
    storage = dashboard.store.storage
    write_run(storage)
    write_metrics(storage, 0, 0, range(0, 5))
    first = refresh(dashboard)
    assert first["series"][RUN]["loss"]["step"] == [0, 1, 2, 3, 4] and RUN not in first["histograms"]
    write_metrics(storage, 1, 1, range(5, 8))
    write_metrics(storage, 2, 2, range(0, 3), key="acc")
    write_histograms(storage, 0, step=7)
    second = refresh(dashboard)
    assert second["series"][RUN]["loss"]["step"] == list(range(8))
    assert second["series"][RUN]["loss"]["y"] == [10.0 * s for s in range(8)]
    assert second["series"][RUN]["acc"]["step"] == [0, 1, 2]
    assert second["histograms"][RUN]["w (gradient)"]["step"] == [7]


def test_a_refresh_with_nothing_new_opens_no_chunk_but_shows_the_new_status(dashboard: Dashboard) -> None:
    storage = dashboard.store.storage
    write_run(storage)
    write_run(storage, "p/r2")
    for seq in range(3):
        write_metrics(storage, seq, seq, range(seq * 10, seq * 10 + 10))
        write_metrics(storage, seq, seq, range(seq), key="acc", path="p/r2")
    write_histograms(storage, 0, step=1)
    opened = count_opens(storage)
    first = refresh(dashboard)
    assert sorted(opened) == sorted(
        [f"{RUN}/{METRICS_DIR}/{chunk_name(0, s, s)}" for s in range(3)]
        + [f"p/r2/{METRICS_DIR}/{chunk_name(0, s, s)}" for s in range(3)]
        + [f"{RUN}/{HISTOGRAMS_DIR}/{chunk_name(0, 0, 0)}"]
    ), "each chunk is opened once"
    opened.clear()
    write_run(storage, status="finished", end_time=2e9)  # run.json changes, no chunk does
    second = refresh(dashboard)
    assert opened == [], "no chunk file is opened again"
    assert {r["key"]: r["status"] for r in second["runs"]} == {RUN: "finished", "p/r2": "running"}
    assert second["series"] == first["series"] and second["histograms"] == first["histograms"]
    write_metrics(storage, 3, 3, range(30, 31))
    third = refresh(dashboard)
    assert opened == [f"{RUN}/{METRICS_DIR}/{chunk_name(0, 3, 3)}"], "only the new chunk is read"
    assert third["series"][RUN]["loss"]["n"] == 31 and third["series"]["p/r2"] == first["series"]["p/r2"]


def test_a_compacted_run_reads_the_same_points_after_a_refresh(dashboard: Dashboard) -> None:
    storage = dashboard.store.storage
    write_run(storage)
    chunks = [(0, 0, range(0, 4)), (1, 1, range(4, 6)), (2, 2, range(3, 9))]  # step 3..5 written twice
    for first, last, steps in chunks:
        write_metrics(storage, first, last, steps)
    before = refresh(dashboard)
    # compaction: the covering chunk first (same rows, same read order), then the covered ones go
    whole = [s for _, _, steps in chunks for s in steps]
    table = pa.table(
        {
            "step": whole,
            "time": [float(s) for s in whole],
            "key": ["loss"] * len(whole),
            "value": [10.0 * s for s in whole],
        }
    )
    _write_table(storage, f"{RUN}/{METRICS_DIR}/{chunk_name(0, 0, 2)}", table.cast(METRICS))
    during = refresh(dashboard)
    for first, last, _ in chunks:
        storage.rm(f"{RUN}/{METRICS_DIR}/{chunk_name(0, first, last)}")
    assert live_chunks(storage.listdir(f"{RUN}/{METRICS_DIR}")) == [chunk_name(0, 0, 2)]
    after = refresh(dashboard)
    assert before["series"] == during["series"] == after["series"]
    assert after["series"][RUN]["loss"]["step"] == list(range(9))


def test_a_cached_store_reads_a_history_like_an_uncached_one(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    cached = Store(save_dir, options, cache=ReadCache())
    write_run(cached.storage)
    write_metrics(cached.storage, 0, 0, range(0, 50))
    opened = count_opens(cached.storage)
    run = cached.run("r1")
    pd.testing.assert_frame_equal(run.metrics(), Store(save_dir, options).run("r1").metrics())
    write_metrics(cached.storage, 1, 1, range(40, 60))  # a resume logs steps 40..49 again
    opened.clear()
    history = run.metrics(wide=False)
    assert opened == [f"{RUN}/{METRICS_DIR}/{chunk_name(0, 1, 1)}"]
    pd.testing.assert_frame_equal(history, Store(save_dir, options).run("r1").metrics(wide=False))
    assert history["step"].tolist() == list(range(60)) and history["value"].tolist() == [10.0 * s for s in range(60)]


def test_stop_returns_when_the_dashboard_never_served(tmp_path: Any) -> None:
    dash = Dashboard(Store(str(tmp_path)), port=0)
    dash.stop()  # used to wait forever for a serve_forever loop that never ran
