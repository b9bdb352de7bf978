"""The project index's deltas: a fold writes bytes in proportion to the runs it changed.

Sizes are measured on the objects in the store, requests at a moto S3 server
(:mod:`tests.read.counting_s3`), races with real processes (:mod:`tests.read.index_racers`);
every check compares the table read through the index with the one read from every
``run.json`` (``Store(..., index=False)``).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store
from lightning_tracker.format.codec import dumps
from lightning_tracker.format.edits import new_edit
from lightning_tracker.format.index import RUNS_DIR, parse_index_file_name
from lightning_tracker.format.layout import EDITS_DIR, INDEX_DIR, change_name, edit_name
from lightning_tracker.read import index as project_index
from lightning_tracker.storage import Storage
from tests.read.counting_s3 import CountingS3Server
from tests.read.index_racers import fold_together
from tests.read.test_index import truth, view, write_runs
from tests.storage.racers import run_race


def index_files(storage: Storage) -> dict[str, int]:
    """The index files in the store now, name -> size in bytes."""
    found = storage.find(f"p/{INDEX_DIR}/{RUNS_DIR}")
    return {name: size for name, size in found.items() if parse_index_file_name(name) is not None}


def written(storage: Storage, before: dict[str, int]) -> dict[str, int]:
    """The index files written since ``before`` was taken, name -> size."""
    return {name: size for name, size in index_files(storage).items() if name not in before}


def test_a_fold_of_a_few_changed_runs_writes_bytes_in_proportion_to_them_not_the_whole_index(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, [f"r{i:04d}" for i in range(2000)])
    store.table("p")
    [full] = index_files(store.storage).values()
    for fold in range(4):  # a sweep: a few runs end at a time, each refresh folds them
        before = index_files(store.storage)
        write_runs(store.storage, [f"r{fold * 5 + i:04d}" for i in range(5)], loss=0.25)
        Store(url).table("p")
        new = written(store.storage, before)
        assert sum(new.values()) < full / 20, f"a fold of 5 runs wrote {new}; the whole index is {full} bytes"
        assert len(new) == 1 and all(parse_index_file_name(name).delta for name in new)  # type: ignore[union-attr]
    assert view(Store(url)) == truth(store)


def test_deltas_stay_a_short_chain_and_a_new_compacted_file_follows_when_they_grow(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, [f"r{i:03d}" for i in range(400)])
    store.table("p")
    kinds = []
    for fold in range(12):  # 4 runs a fold: after ~10 folds the deltas weigh 10% of the 400 runs
        before = index_files(store.storage)
        write_runs(store.storage, [f"n{fold:02d}-{i}" for i in range(4)], loss=0.25)
        Store(url).table("p")
        [name] = written(store.storage, before)
        file = parse_index_file_name(name)
        assert file is not None
        kinds.append("delta" if file.delta else "full")
        chain = project_index._chain(sorted(filter(None, map(parse_index_file_name, index_files(store.storage)))))
        assert chain is not None and chain[-1] == file and len(chain) <= 1 + project_index.MAX_DELTAS
        assert view(Store(url)) == truth(store)
    assert kinds[0] == "delta" and "full" in kinds, kinds


def test_a_damaged_delta_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, [f"r{i:03d}" for i in range(100)])
    store.table("p")
    before = index_files(store.storage)
    write_runs(store.storage, ["r001"], loss=0.25)
    Store(url).table("p")
    [delta] = written(store.storage, before)
    path = f"p/{INDEX_DIR}/{RUNS_DIR}/{delta}"
    store.storage.write_bytes(path, store.storage.read_bytes(path)[:100])
    write_runs(store.storage, ["r002"], change=False, loss=0.125)  # the folders changed: a rebuild shows it
    assert view(Store(url)) == truth(store)
    rows = {rid: loss for rid, *_, loss in view(Store(url))}
    assert (rows["r001"], rows["r002"]) == (0.25, 0.125)


def test_a_delta_whose_parent_was_removed_is_passed_over_for_the_greatest_whole_chain(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, [f"r{i:03d}" for i in range(100)])
    store.table("p")
    [base] = index_files(store.storage)
    write_runs(store.storage, ["x"], loss=0.25)
    Store(url).table("p")
    [delta] = written(store.storage, {base: 0})
    store.reindex("p")  # a compacted file above both
    top = max(filter(None, map(parse_index_file_name, index_files(store.storage))))
    # a delta written beside it on the old base (another reader), whose base a compaction then removed
    late = project_index.new_index_file(top.generation + 1, time.time_ns(), "0abc", parse_index_file_name(base))
    root = f"p/{INDEX_DIR}/{RUNS_DIR}"
    store.storage.write_bytes(f"{root}/{late.name}", store.storage.read_bytes(f"{root}/{delta}"))
    store.storage.rm(f"{root}/{base}")
    before = index_files(store.storage)
    assert view(Store(url)) == truth(store)
    assert written(store.storage, before) == {}  # read from the whole chain, not rebuilt


def test_two_readers_folding_at_once_lose_no_change(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, [f"r{i:03d}" for i in range(300)])
    store.table("p")
    results = run_race(fold_together, (url, None), processes=3, trials=3)
    assert [r for r in results if r[2] != "done"] == []
    assert any(parse_index_file_name(name).delta for name in index_files(store.storage))  # type: ignore[union-attr]
    indexed = view(Store(url))
    assert {rid for rid, *_ in indexed} >= {f"f{me}-{trial}" for me in range(3) for trial in range(3)}
    assert indexed == truth(store)


def test_a_change_only_the_losing_delta_folded_is_folded_again_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, [f"r{i:03d}" for i in range(100)])
    first, second = Store(url), Store(url)
    first.table("p")
    second.table("p")  # both hold the compacted file
    write_runs(store.storage, ["x"], loss=0.25)
    made, create = project_index.new_index_file, first.storage.create_bytes

    def ahead(generation: int, time_ns: int, token: str, parent: Any = None) -> Any:
        return made(generation, time_ns + 3600 * 10**9, token, parent)  # a machine whose clock runs ahead

    def racing(rel: str, data: bytes) -> None:
        # between the first reader's last listing and its write, the second folds a later change
        monkeypatch.setattr(project_index, "new_index_file", made)
        write_runs(store.storage, ["y"], loss=0.125)
        second.table("p")
        create(rel, data)

    monkeypatch.setattr(project_index, "new_index_file", ahead)
    monkeypatch.setattr(first.storage, "create_bytes", racing)
    first.table("p")
    files = sorted(filter(None, map(parse_index_file_name, index_files(store.storage))))
    assert [(f.generation, f.delta) for f in files] == [(1, False), (2, True), (2, True)]  # two deltas on one base
    winner = project_index._chain(files)
    assert winner is not None and winner[-1] == files[-1]  # the first's: it lacks y, which the loser folded
    rows = {rid: loss for rid, *_, loss in view(Store(url))}
    assert (rows["x"], rows["y"]) == (0.25, 0.125)
    assert view(Store(url)) == truth(store)


def test_an_unchanged_project_with_a_chain_of_deltas_costs_at_most_ten_requests_cold_and_its_new_delta_warm(
    counting_s3: CountingS3Server,
) -> None:
    url, options = f"s3://{counting_s3.new_bucket()}/exp", counting_s3.storage_options
    store = Store(url, options)
    write_runs(store.storage, [f"r{i:03d}" for i in range(700)])
    dashboard = Store(url, options)  # a warm process: reads each index file once
    dashboard.table("p")
    sizes = [2**k for k in reversed(range(project_index.MAX_DELTAS))]  # 16, 8, ... 1: no delta merges
    for fold, size in enumerate(sizes):
        write_runs(store.storage, [f"n{fold}-{i}" for i in range(size)], loss=0.25)
        Store(url, options).table("p")
    chain = project_index._chain(sorted(filter(None, map(parse_index_file_name, index_files(store.storage)))))
    assert chain is not None and len(chain) == 1 + project_index.MAX_DELTAS  # the longest chain there is
    before = counting_s3.count()
    cold = Store(url, options).table("p")
    cost = counting_s3.count(before)
    assert len(cold) == 700 + sum(sizes)
    assert cost <= 10, "\n".join(map(str, counting_s3.requests[before:]))
    dashboard.table("p")  # reads the files it lacks
    write_runs(store.storage, ["last"], loss=0.125)
    Store(url, options).table("p")
    before = counting_s3.count()
    table = dashboard.table("p")
    reads = [path for method, path in counting_s3.requests[before:] if method == "GET" and f"/{RUNS_DIR}/" in path]
    assert len(table) == 700 + sum(sizes) + 1
    assert len(reads) == 1, reads  # the new delta alone: the compacted file and the chain below it are in memory
    assert view(dashboard) == truth(store)


def test_an_edit_whose_process_died_before_its_change_object_shows_at_the_next_read(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, ["a", "b"])
    assert list(store.table("p")["tags"]) == ["t", "t"]
    # Run.add_tags as read.edits.add_edit writes it, killed before record_change
    now = time.time_ns()
    name = edit_name(now, secrets.token_hex(4))
    store.storage.write_bytes(f"p/{EDITS_DIR}/b/{name}", dumps(new_edit(now / 1e9, add_tags=["best"])))
    tags = dict(zip(*(Store(url).table("p")[c] for c in ("id", "tags")), strict=True))
    assert tags == {"a": "t", "b": "t,best"}
    assert view(Store(url)) == truth(store)


def test_edits_seen_by_the_index_cost_no_request_and_no_write(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, ["a", "b"])
    store.runs("p")
    store.runs("p")[1].add_tags("best")  # the edit and its change object: folded once
    Store(url).table("p")
    before = index_files(store.storage)
    assert list(Store(url).table("p")["tags"]) == ["t", "t,best"]
    assert written(store.storage, before) == {}  # its row names the edit: nothing to fold again


def test_a_reader_whose_chain_lost_its_base_while_it_folded_writes_nothing_and_loses_no_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "runs")
    store = Store(url)
    write_runs(store.storage, [f"r{i:03d}" for i in range(100)])
    store.table("p")
    [base] = index_files(store.storage)
    write_runs(store.storage, ["x"], loss=0.25)
    Store(url).table("p")
    [delta] = written(store.storage, {base: 0})
    # a compacted file of the same generation as the delta, written just before it: the delta's chain wins
    before = index_files(store.storage)
    store.reindex("p")
    [compacted] = written(store.storage, before)
    root = f"p/{INDEX_DIR}/{RUNS_DIR}"
    tie = parse_index_file_name(delta)
    assert tie is not None
    rival = project_index.new_index_file(tie.generation, tie.time_ns - 1, "0abc")
    store.storage.write_bytes(f"{root}/{rival.name}", store.storage.read_bytes(f"{root}/{compacted}"))
    store.storage.rm(f"{root}/{compacted}")
    # a run whose change object is older than the grace period (a slow mirror, or a clock behind)
    write_runs(store.storage, ["y"], change=False, loss=0.125)
    old = time.time_ns() - int(2 * project_index.GRACE_S * 1e9)
    store.storage.write_bytes(
        f"p/{INDEX_DIR}/changes/{change_name(old, 'y', secrets.token_hex(4))}",
        dumps({"run": "y", "kind": "end", "time": old / 1e9}),
    )
    reader = Store(url)
    load = reader._load_runs

    def then_base_removed(*args: Any, **kwargs: Any) -> Any:
        store.storage.rm(f"{root}/{base}")  # another reader's clean-up, while this one reads the runs again
        return load(*args, **kwargs)

    monkeypatch.setattr(reader, "_load_runs", then_base_removed)
    before = index_files(store.storage)
    reader.table("p")
    assert written(store.storage, before) == {}, "a delta on a chain whose base is gone is no index at all"
    assert view(Store(url)) == truth(store)
