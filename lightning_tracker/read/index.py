"""A project's index: the runs of a project in a few requests, whatever their number.

The run folders are the truth; the index (``<project>/.index/``, names and schema in
:mod:`lightning_tracker.format.index`) is a cache of their ``run.json`` documents that any
reader can rebuild. Writers never touch it: each change of a run adds one small immutable
change object (:mod:`lightning_tracker.storage.changes`). A reader:

1. lists ``.index/`` (one request: the compacted files and the change objects);
2. reads the greatest compacted file (one request; none when this process read it last);
3. reads again the ``run.json`` of each run a change names that the compacted file has not
   folded, and of each run that was live when folded (so its status and summary are
   current; a run whose heartbeat went stale is folded as crashed and no longer read);
4. when it folded something new, lists again and writes the result as a new compacted
   file under a new name (never over one another reader may be reading), then removes
   the compacted files and change objects older than :data:`GRACE_S` that it supersedes.
5. lists the project's deletion marks (``.edits/<id>/deleted.json``, one request) and leaves
   out the runs whose deletion has begun, even when ``rm`` stopped before telling the index.

A missing or damaged compacted file (unreadable, another version, the wrong schema) is
never trusted: the reader reads every run folder and writes a new one. A reader that may
not write (a read-only store) folds in memory and answers all the same. A compacted file
that vanished between the listing and the read (another reader removed it) makes the
reader list again.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lightning_tracker.format import codec
from lightning_tracker.format.documents import run_state
from lightning_tracker.format.index import (
    CHANGES_DIR,
    FOLDED_KEY,
    INDEX_DIR,
    INDEX_SCHEMA,
    INDEX_VERSION,
    RUNS_DIR,
    IndexFile,
    change_run,
    index_file_name,
    parse_index_file_name,
)
from lightning_tracker.format.layout import EDITS_DIR, TOMBSTONE_FILE
from lightning_tracker.format.status import RUNNING
from lightning_tracker.read.cache import ReadCache
from lightning_tracker.read.edits import RunEdits
from lightning_tracker.read.run import Run
from lightning_tracker.read.table import cells, concat
from lightning_tracker.storage import Storage

__all__ = ["GRACE_S", "Folded", "Loader", "ProjectIndex"]

log = logging.getLogger(__name__)

GRACE_S = 600.0
"""Seconds a superseded compacted file and a folded change object are kept: a reader that
listed them may still be reading. A compaction that took longer than half of it (from its
last listing to its write) is not written: a faster reader may have removed what it lacks."""

_LIST_ATTEMPTS = 3  # a compacted file removed under a reader makes it list again, this often
_REMOVE_AT_ONCE = 1000  # one S3 DeleteObjects request

Loader = Callable[[list[str] | None], dict[str, Run]]
"""Reads runs of the project from their folders: the ids given (None: every run folder),
as ``{id: Run}``; a run whose ``run.json`` is missing is left out."""


_ROW_FIELDS = pa.schema(list(INDEX_SCHEMA))  # id, __doc, __problems, __watch, __tags, __edits, __archived


class _Snapshot(NamedTuple):
    """A compacted file as read: its name, its rows (index columns) and cells, and the change objects it folded."""

    file: IndexFile
    rows: pa.Table
    cells: pa.Table
    folded: frozenset[str]


class _Listing(NamedTuple):
    """``.index/`` as listed: compacted files (ascending), changes (name -> (time, run id))."""

    files: list[IndexFile]
    changes: dict[str, tuple[int, str]]


class Folded(NamedTuple):
    """A project's runs as one read found them: two tables of one row per run, in the same order.

    Attributes:
        rows: what rebuilds each run (the columns of :data:`~lightning_tracker.format.index.INDEX_SCHEMA`).
        cells: each run's runs-table row (:mod:`~lightning_tracker.read.table`).
        fresh: the runs read from their folders by this read (changed, live), by id.
    """

    rows: pa.Table
    cells: pa.Table
    fresh: dict[str, Run]

    def tags(self) -> dict[str, list[str]]:
        """Each run's tags, by id."""
        ids, tags = self.rows.column("id").to_pylist(), self.rows.column("__tags").to_pylist()
        return {rid: list(t or []) for rid, t in zip(ids, tags, strict=True)}

    def archived(self) -> set[str]:
        """The ids of the archived runs."""
        return set(self.rows.filter(self.rows.column("__archived")).column("id").to_pylist())


def _rows(runs: list[Run]) -> pa.Table:
    """The index rows of ``runs``, in their order."""
    return pa.table(
        {
            "id": [run.id for run in runs],
            "__doc": [codec.dumps(run.doc) for run in runs],
            # the edits' problems are the edits' own: a Run built from the row adds them again
            "__problems": [[p for p in run.problems if p not in run.edits.problems] for run in runs],
            # live as its writer left it: read again until it ends, or its heartbeat goes stale
            "__watch": [_live(run) for run in runs],
            "__tags": [run.tags for run in runs],
            "__edits": [codec.dumps({"edits": run.edits.edits, "problems": run.edits.problems}) for run in runs],
            "__archived": [run.archived for run in runs],
        },
        schema=_ROW_FIELDS,
    )


def _live(run: Run) -> bool:
    return bool(run.doc) and run_state(run.doc) == RUNNING


def _sorted_runs(runs: Iterable[Run]) -> list[Run]:
    return sorted(runs, key=lambda r: (r.start_time or 0.0, r.id))


def _without(table: pa.Table, ids: Iterable[str]) -> pa.Table:
    gone = pa.array(sorted(ids), pa.string())
    return table.filter(pc.invert(pc.is_in(table.column("id"), value_set=gone))) if len(gone) else table


def _encode(found: Folded, project: str, folded: Iterable[str]) -> bytes:
    rest = found.cells.drop_columns(["id"]) if found.cells.num_columns else found.cells
    table = pa.Table.from_arrays(
        [*found.rows.columns, *rest.columns], names=[*found.rows.column_names, *rest.column_names]
    )
    meta = {"version": INDEX_VERSION, "project": project, "folded": sorted(folded)}
    table = table.replace_schema_metadata({**(found.cells.schema.metadata or {}), FOLDED_KEY: codec.dumps(meta)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _decode(data: bytes, file: IndexFile, project: str) -> _Snapshot:
    """A compacted file's rows; raises ``ValueError`` (or Arrow's error) when it is damaged."""
    table = pq.read_table(pa.BufferReader(data))
    meta = codec.loads((table.schema.metadata or {}).get(FOLDED_KEY, b"null"))
    if not isinstance(meta, dict) or meta.get("version") != INDEX_VERSION or meta.get("project") != project:
        raise ValueError(
            f"its metadata {FOLDED_KEY.decode()} is {str(meta)[:200]!r}, not an index of version {INDEX_VERSION} "
            f"of project {project!r}"
        )
    for field in INDEX_SCHEMA:
        if field.name not in table.column_names or not table.schema.field(field.name).type.equals(field.type):
            raise ValueError(f"its column {field.name!r} is missing or not {field.type}")
    folded = meta.get("folded")
    if not isinstance(folded, list) or not all(isinstance(name, str) for name in folded):
        raise ValueError("its list of folded changes is not a list of names")
    ids = table.column("id")
    if ids.null_count or table.column("__doc").null_count or pc.count_distinct(ids).as_py() != len(ids):
        raise ValueError("a run is missing its id or document, or is listed twice")
    rows = table.select(_ROW_FIELDS.names).replace_schema_metadata(None)
    cells = table.drop_columns(_ROW_FIELDS.names[1:])
    cells = cells.replace_schema_metadata({k: v for k, v in (table.schema.metadata or {}).items() if k != FOLDED_KEY})
    return _Snapshot(file, rows, cells, frozenset(folded))


class ProjectIndex:
    """The runs of one project, through its index.

    Args:
        storage: the store.
        project: the project's folder name.
        load: reads runs from their folders (:data:`Loader`): the store's own way of
            reading a run, so the index folds whatever a run read that way shows.
        cache: the store's chunk cache, given to every :class:`Run` built from a row.

    Example:
        >>> from lightning_tracker import Store, TrackerLogger
        >>> logger = TrackerLogger("memory://doc-index", name="p", version="r1")
        >>> logger.log_metrics({"loss": 0.5}, step=0)
        >>> logger.finalize("success")
        >>> store = Store("memory://doc-index")
        >>> [(r.id, r.status) for r in store.runs("p")]
        [('r1', 'finished')]
        >>> sorted({name.split("/")[0] for name in store.storage.find("p/.index")})
        ['changes', 'runs']
    """

    def __init__(self, storage: Storage, project: str, load: Loader, cache: ReadCache | None = None) -> None:
        self.storage = storage
        self.project = project
        self.load = load  # the store may hand a new one (another progress callback) before each read
        self._cache = cache
        self._snapshot: _Snapshot | None = None  # the compacted file read last: named again, not read again
        self._lock = threading.Lock()  # one fold at a time (the dashboard's threads share a store)

    @property
    def _root(self) -> str:
        return f"{self.project}/{INDEX_DIR}"

    def runs(self, rebuild: bool = False) -> list[Run]:
        """The project's runs now, in no particular order.

        Args:
            rebuild: read every run folder, whatever the index holds, and write the result.
        """
        found = self.read(rebuild)
        columns = [found.rows.column(name).to_pylist() for name in _ROW_FIELDS.names]
        return [
            found.fresh[rid] if rid in found.fresh else self._run(rid, doc, problems, edits)
            for rid, doc, problems, _watch, _tags, edits, _archived in zip(*columns, strict=True)
        ]

    def read(self, rebuild: bool = False) -> Folded:
        """The project's runs now, as rows and runs-table cells (:class:`Folded`).

        Args:
            rebuild: read every run folder, whatever the index holds, and write the result.
        """
        with self._lock:
            listing, base = self._base(rebuild)
            if base is None:  # no index, or a damaged one, or asked to: every run folder
                fresh = self.load(None)
                runs = _sorted_runs(fresh.values())
                found = Folded(_rows(runs), cells(runs), fresh)
                news = True
            else:
                found, news = self._fold(base, listing)
            if news and (found.rows.num_rows or listing.files):  # an empty project gets no index: it stays none
                found = self._persist(listing, found)
            return self._without_deleting(found)

    def _without_deleting(self, found: Folded) -> Folded:
        """``found`` without the runs whose deletion has begun: the project's deletion marks are
        listed on every read (one request), so a run reads as deleted from the moment its mark
        is written, even when ``rm`` was killed before it told the index."""
        marked = {
            rel.partition("/")[0]
            for rel in self.storage.find(f"{self.project}/{EDITS_DIR}")
            if rel.partition("/")[2] == TOMBSTONE_FILE
        }
        held = marked & set(found.rows.column("id").to_pylist()) if marked else set()
        if not held:
            return found
        fresh = {rid: run for rid, run in found.fresh.items() if rid not in held}
        cells = _without(found.cells, held) if found.cells.num_columns else found.cells
        return Folded(_without(found.rows, held), cells, fresh)

    def _run(self, rid: str, doc: bytes, problems: list[str] | None, edits: bytes) -> Run:
        path = f"{self.project}/{rid}"
        kept = codec.loads(edits)
        found = RunEdits(edits=list(kept["edits"]), problems=list(kept["problems"]))
        return Run(
            self.storage, path, codec.loads(doc), cache=self._cache, problems=problems or (), checked=True, edits=found
        )

    def _fold(self, base: _Snapshot, listing: _Listing) -> tuple[Folded, bool]:
        """The base's rows with the runs read again: those of the changes it did not fold, and the live ones.

        Returns:
            What was found, and whether it holds news worth writing: a change, or a live
            run that ended or went stale (no longer read each time).
        """
        news = [name for name in listing.changes if name not in base.folded]
        watched = set(base.rows.filter(base.rows.column("__watch")).column("id").to_pylist())
        found = self._merge(Folded(base.rows, base.cells, {}), {listing.changes[name][1] for name in news} | watched)
        settled = any(rid not in found.fresh or not _live(found.fresh[rid]) for rid in watched)
        return found, bool(news) or settled

    def _merge(self, found: Folded, again: set[str]) -> Folded:
        """``found`` with the runs ``again`` read from their folders (a run whose folder is gone dropped)."""
        if not again:
            return found
        loaded = self.load(sorted(again))
        runs = _sorted_runs(loaded.values())
        rows = pa.concat_tables([_without(found.rows, again), _rows(runs)]) if found.rows.num_rows else _rows(runs)
        fresh = {**{rid: run for rid, run in found.fresh.items() if rid not in again}, **loaded}
        return Folded(rows, concat(found.cells, again, cells(runs)), fresh)

    # -- the listing and the compacted file ------------------------------------------------
    def _list(self) -> _Listing:
        files, changes = [], {}
        for rel in self.storage.find(self._root):
            folder, _, name = rel.partition("/")
            if folder == RUNS_DIR and (file := parse_index_file_name(name)) is not None:
                files.append(file)
            elif folder == CHANGES_DIR and (change := change_run(name)) is not None:
                changes[name] = change
        return _Listing(sorted(files), changes)

    def _base(self, rebuild: bool) -> tuple[_Listing, _Snapshot | None]:
        """The listing, and the greatest compacted file read (None: none, damaged, or ``rebuild``)."""
        for _ in range(_LIST_ATTEMPTS):
            listing = self._list()
            if rebuild or not listing.files:
                return listing, None
            best = listing.files[-1]
            if self._snapshot is not None and self._snapshot.file == best:
                return listing, self._snapshot
            rel = f"{self._root}/{RUNS_DIR}/{best.name}"
            try:
                data = self.storage.read_bytes(rel)
            except FileNotFoundError:
                continue  # superseded and removed since the listing: list again
            try:
                self._snapshot = _decode(data, best, self.project)
            except Exception as err:  # noqa: BLE001 - whatever is wrong with it, it is rebuilt, never trusted
                log.warning(
                    "the index %s is damaged (%s: %s); rebuilding it from the run folders",
                    self.storage.full_url(rel),
                    type(err).__name__,
                    err,
                )
                self._snapshot = None
                return listing, None
            return listing, self._snapshot
        return listing, None

    def _persist(self, listing: _Listing, found: Folded) -> Folded:
        """Writes ``found`` as a new compacted file, when no other reader wrote one meanwhile.

        Lists again first: the changes added since the first listing are folded too (their
        runs read), so the file names every change listed just before it is written.

        Returns:
            ``found``, with the runs of those late changes.
        """
        try:
            again = self._list()
            listed_at = time.monotonic()
        except Exception as err:  # noqa: BLE001 - the answer stands; only the cache is not written
            log.info("the index of %s is not written: %s", self.storage.full_url(self.project), err)
            return found
        if any(file not in listing.files for file in again.files):
            return found  # another reader compacted meanwhile: its file serves as well
        found = self._merge(found, {again.changes[name][1] for name in again.changes if name not in listing.changes})
        if time.monotonic() - listed_at > GRACE_S / 2:
            log.info("the index of %s is not written: folding took longer than %g s", self.project, GRACE_S / 2)
            return found
        generation = (again.files[-1].generation if again.files else 0) + 1
        now = time.time_ns()
        file = IndexFile(generation, now, index_file_name(generation, now, secrets.token_hex(4)))
        data = _encode(found, self.project, again.changes)
        rel = f"{self._root}/{RUNS_DIR}/{file.name}"
        try:
            try:
                self.storage.create_bytes(rel, data)
            except NotImplementedError:  # a fresh random name: nobody else writes it
                self.storage.write_bytes(rel, data)
        except Exception as err:  # noqa: BLE001 - a read-only store: the answer stands, unwritten
            log.info("the index of %s is not written (%s: %s)", self.project, type(err).__name__, err)
            return found
        self._snapshot = _Snapshot(file, found.rows, found.cells, frozenset(again.changes))
        self._remove_superseded(again)
        return found

    def _remove_superseded(self, listing: _Listing) -> None:
        """Removes the compacted files and change objects of ``listing`` older than :data:`GRACE_S`
        (the new compacted file holds all of them)."""
        cutoff = time.time_ns() - int(GRACE_S * 1e9)
        doomed = [f"{self._root}/{RUNS_DIR}/{f.name}" for f in listing.files if f.time_ns < cutoff]
        doomed += [f"{self._root}/{CHANGES_DIR}/{name}" for name, (t, _) in listing.changes.items() if t < cutoff]
        if not doomed:
            return
        try:
            self.storage.rm_many(doomed[:_REMOVE_AT_ONCE])
        except Exception as err:  # noqa: BLE001 - garbage left for the next compaction
            log.info("could not remove superseded index objects of %s: %s", self.project, err)
