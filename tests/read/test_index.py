"""The project index: a runs table costs a few requests whatever the number of runs.

Requests are counted at a moto S3 server (:mod:`tests.read.counting_s3`). The run folders
stay the truth: every check compares the table read through the index with the table read
from every ``run.json`` (``Store(..., index=False)``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from lightning_tracker import Store
from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import new_run
from lightning_tracker.format.index import RUNS_DIR
from lightning_tracker.format.layout import INDEX_DIR
from lightning_tracker.read import index as project_index
from lightning_tracker.storage import Storage
from lightning_tracker.storage.changes import record_change
from tests.read.counting_s3 import CountingS3Server

RUNS = 300


def run_doc(rid: str, *, status: str = "finished", loss: float = 0.5, heartbeat: float | None = None) -> bytes:
    doc = new_run(rid, "p", f"name-{rid}", group="g", tags=["t"], notes=None, heartbeat_interval_s=2.0, url="/x")
    now = time.time()
    doc.update(
        status=status,
        start_time=now - 100,
        end_time=None if status == "running" else now - 1,
        heartbeat=now if heartbeat is None else heartbeat,
        params={"lr": 0.1, "width": 8},
        summary={"loss": {"count": 1, "last": loss, "last_step": 0, "min": loss, "max": loss}},
    )
    return dumps(doc)


def write_runs(storage: Storage, ids: list[str], *, change: bool = True, **fields: Any) -> None:
    """Writes runs as their writers leave them: ``run.json``, then (``change``) a change object."""
    files = {f"p/{rid}/run.json": run_doc(rid, **fields) for rid in ids}
    if storage.protocol == "s3":  # one concurrent batch: setting up hundreds of runs stays quick
        storage.fs.pipe({f"{storage.root}/{rel}": data for rel, data in files.items()})  # type: ignore[attr-defined]
    else:
        for rel, data in files.items():
            storage.write_bytes(rel, data)
    for rid in ids if change else []:
        record_change(storage, "p", rid, "start")


def view(store: Store) -> list[tuple[Any, ...]]:
    """What a runs table shows of each run."""
    runs = store.runs("p")
    return sorted((r.id, r.name, r.status, r.group, tuple(r.tags), r.summary.get("loss", {}).get("last")) for r in runs)


def truth(store: Store) -> list[tuple[Any, ...]]:
    return view(Store(store.storage.url, store.storage.storage_options, index=False))


@pytest.fixture
def s3_store(counting_s3: CountingS3Server) -> Store:
    bucket = counting_s3.new_bucket()
    return Store(f"s3://{bucket}/exp", counting_s3.storage_options)


def test_a_runs_table_of_an_unchanged_project_costs_a_few_requests_whatever_the_number_of_runs(
    counting_s3: CountingS3Server, s3_store: Store
) -> None:
    write_runs(s3_store.storage, [f"r{i:04d}" for i in range(RUNS)])
    first = counting_s3.count()
    assert len(s3_store.table("p")) == RUNS  # builds the index (a full read, once)
    built = counting_s3.count(first)
    before = counting_s3.count()
    fresh = Store(s3_store.storage.url, s3_store.storage.storage_options)  # another process: nothing in memory
    table = fresh.table("p")
    cost = counting_s3.count(before)
    assert len(table) == RUNS and set(table["status"]) == {"finished"}
    assert cost <= 10, f"{cost} requests for an unchanged project of {RUNS} runs: {counting_s3.requests[before:]}"
    assert built > 2 * RUNS / 3  # the first read read the runs: the index is what made the second cheap
    before = counting_s3.count()
    Store(s3_store.storage.url, s3_store.storage.storage_options, index=False).table("p")
    assert counting_s3.count(before) > RUNS  # without the index: every run.json


def test_each_run_changed_since_costs_at_most_three_more_requests(
    counting_s3: CountingS3Server, s3_store: Store
) -> None:
    write_runs(s3_store.storage, [f"r{i:04d}" for i in range(RUNS)])
    s3_store.table("p")
    changed = 7
    write_runs(s3_store.storage, [f"n{i:02d}" for i in range(changed)], loss=0.25)
    write_runs(s3_store.storage, ["r0003"], loss=0.125)  # a run rewritten (resumed), and told
    before = counting_s3.count()
    fresh = Store(s3_store.storage.url, s3_store.storage.storage_options)
    runs = {r.id: r for r in fresh.runs("p")}
    cost = counting_s3.count(before)
    assert len(runs) == RUNS + changed and runs["r0003"].summary["loss"]["last"] == 0.125
    assert cost <= 10 + 3 * (changed + 1), "\n".join(map(str, counting_s3.requests[before:]))
    before = counting_s3.count()
    assert view(Store(s3_store.storage.url, s3_store.storage.storage_options)) == truth(s3_store)
    assert counting_s3.count(before) > RUNS  # (the truth read every run)


def test_a_live_run_shows_its_current_status_and_summary_and_a_stale_one_reads_crashed(
    counting_s3: CountingS3Server, s3_store: Store
) -> None:
    storage = s3_store.storage
    write_runs(storage, [f"r{i:02d}" for i in range(20)])
    write_runs(storage, ["live"], status="running", loss=1.0)
    write_runs(storage, ["dead"], status="running", heartbeat=time.time() - 3600)
    s3_store.table("p")
    # the live run's writer uploads new heartbeats and summaries without telling the index
    write_runs(storage, ["live"], change=False, status="running", loss=0.75)
    runs = {r.id: r for r in Store(storage.url, storage.storage_options).runs("p")}
    assert (runs["live"].status, runs["live"].summary["loss"]["last"]) == ("running", 0.75)
    assert runs["dead"].status == "crashed"
    before = counting_s3.count()
    Store(storage.url, storage.storage_options).runs("p")
    reads = [path for method, path in counting_s3.requests[before:] if method == "GET" and "/dead/" in path]
    assert reads == []  # a long-dead run is not read again and again
    assert any("/live/" in path for _, path in counting_s3.requests[before:])
    write_runs(storage, ["live"], change=True, status="finished", loss=0.5)  # its end is told
    runs = {r.id: r for r in Store(storage.url, storage.storage_options).runs("p")}
    assert (runs["live"].status, runs["live"].summary["loss"]["last"]) == ("finished", 0.5)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_local_and_memory_stores_read_through_the_same_index(tmp_path: Any, kind: str) -> None:
    import uuid

    url = str(tmp_path / "runs") if kind == "local" else f"memory://index-{uuid.uuid4().hex}"
    store = Store(url)
    write_runs(store.storage, ["a", "b"])
    assert view(store) == truth(store)
    assert any(rel.startswith(f"{RUNS_DIR}/") for rel in store.storage.find(f"p/{INDEX_DIR}"))
    write_runs(store.storage, ["b"], change=False, loss=9.0)  # changed behind the index's back
    assert [v[-1] for v in view(Store(url))] == [0.5, 0.5]  # the index answers, not the folders
    write_runs(store.storage, ["c"], loss=0.25)
    assert [v[0] for v in view(Store(url))] == ["a", "b", "c"]
    store.reindex("p")
    assert view(Store(url)) == truth(store)


def test_a_run_copied_in_by_hand_is_found_after_the_index_command(tmp_path: Any) -> None:
    import subprocess
    import sys

    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, ["a"])
    assert [r.id for r in store.runs("p")] == ["a"]
    write_runs(store.storage, ["copied"], change=False)  # aws s3 sync, cp -r: no change object
    assert [r.id for r in Store(url).runs("p")] == ["a"]
    done = subprocess.run(
        [sys.executable, "-m", "lightning_tracker.cli", "index", "-s", url, "-p", "p"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "p: 2 runs indexed" in done.stdout
    assert [r.id for r in Store(url).runs("p")] == ["a", "copied"]


@pytest.mark.parametrize("damage", [b"", b"PAR1 not parquet", "truncated", "another schema"])
def test_a_damaged_index_is_rebuilt_not_trusted(tmp_path: Any, damage: Any) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, ["a", "b"])
    store.runs("p")
    [rel] = [rel for rel in store.storage.find(f"p/{INDEX_DIR}") if rel.startswith(f"{RUNS_DIR}/")]
    path = f"p/{INDEX_DIR}/{rel}"
    good = store.storage.read_bytes(path)
    if damage == "truncated":
        damage = good[: len(good) // 2]
    elif damage == "another schema":
        sink = io.BytesIO()
        pq.write_table(pa.table({"id": ["a"]}), sink)
        damage = sink.getvalue()
    store.storage.write_bytes(path, damage)
    write_runs(store.storage, ["b"], change=False, loss=0.25)  # the folders changed: a rebuild shows it
    assert view(Store(url)) == truth(store)
    assert [v[-1] for v in view(Store(url))] == [0.5, 0.25]


def test_a_reader_without_write_permission_still_reads_and_folds(
    counting_s3: CountingS3Server, s3_store: Store
) -> None:
    storage = s3_store.storage
    write_runs(storage, ["a", "b"])
    counting_s3.read_only = True
    try:
        assert view(Store(storage.url, storage.storage_options)) == truth(s3_store)  # no index, none written
        assert not any(rel.startswith(f"{RUNS_DIR}/") for rel in storage.find(f"p/{INDEX_DIR}"))
    finally:
        counting_s3.read_only = False
    s3_store.runs("p")  # a writer builds it
    write_runs(storage, ["c"], loss=0.25)
    counting_s3.read_only = True
    try:
        assert view(Store(storage.url, storage.storage_options)) == truth(s3_store)  # folded in memory
    finally:
        counting_s3.read_only = False


def test_folded_changes_and_superseded_index_files_are_removed_after_the_grace_period(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, ["a", "b"])
    store.runs("p")
    write_runs(store.storage, ["c"])
    Store(url).runs("p")
    assert len(store.storage.find(f"p/{INDEX_DIR}")) == 5  # kept while a reader may be reading them
    monkeypatch.setattr(project_index, "GRACE_S", 4.0)
    time.sleep(4.0)  # everything there is older than the grace period now
    write_runs(store.storage, ["d"])
    Store(url).runs("p")
    left = sorted(store.storage.find(f"p/{INDEX_DIR}"))
    assert len(left) == 2 and left[0].startswith("changes/") and "-d-" in left[0] and left[1].startswith(RUNS_DIR)
    assert view(Store(url)) == truth(store)


def _mixed_run(rid: str, params: dict[str, Any], *, tags: list[str], group: str | None, **fields: Any) -> bytes:
    doc = new_run(rid, "p", f"n-{rid}", group=group, tags=tags, notes=None, heartbeat_interval_s=2.0, url="/x")
    now = time.time()
    doc.update(status="finished", start_time=now - 50, end_time=now - 1, heartbeat=now - 1, params=params)
    doc["summary"] = {
        "loss": {"count": 2, "last": 0.5, "last_step": 1, "min": "NaN", "max": "Infinity"},
        f"only/{rid}": {"count": 1, "last": 1.0, "last_step": 0, "min": 1.0, "max": 1.0},
    }
    doc.update(fields)
    return dumps(doc)


@pytest.mark.parametrize(
    "filters", [{}, {"tags": ["x"]}, {"status": "finished"}, {"group": "g"}, {"status": ["running", "damaged"]}]
)
def test_the_runs_table_through_the_index_equals_the_one_read_from_every_run_json(
    tmp_path: Any, filters: dict[str, Any]
) -> None:
    import pandas as pd

    url = str(tmp_path / "runs")
    storage = Storage(url)
    docs = {
        "a": _mixed_run("a", {"lr": 0.1, "n": 3, "opt": "sgd", "flag": True}, tags=["x"], group="g"),
        "b": _mixed_run("b", {"lr": "auto", "n": 4, "layers": [1, 2]}, tags=["x", "y"], group=None),
        "c": _mixed_run(
            "c", {"lr": 0.01, "flag": 1}, tags=[], group="g", status="running", end_time=None, heartbeat=time.time()
        ),
        "d": _mixed_run("d", {"n": None}, tags=["y"], group="h", status="running", heartbeat=time.time() - 9999),
        "e": b"{not json",
    }
    for rid, data in docs.items():
        storage.write_bytes(f"p/{rid}/run.json", data)
    Store(url).runs("p")  # the index is built
    storage.write_bytes("p/f/run.json", _mixed_run("f", {"lr": 1, "opt": 7, "new": "z"}, tags=["x"], group="g"))
    record_change(storage, "p", "f", "start")  # folded: types that differ from those in the index
    for store in (Store(url), Store(url)):  # folding, then from the compacted file alone
        indexed, scanned = store.table("p", **filters), Store(url, index=False).table("p", **filters)
        pd.testing.assert_frame_equal(indexed, scanned, check_like=False)
        assert indexed.attrs["scope"] == scanned.attrs["scope"]
