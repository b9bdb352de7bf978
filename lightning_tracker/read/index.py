"""A project's index: the runs of a project in a few requests, whatever their number.

The run folders are the truth; the index (``<project>/.index/``, names and schema in
:mod:`lightning_tracker.format.index`) is a cache of their ``run.json`` documents that any
reader can rebuild. Writers never touch it: each change of a run adds one small immutable
change object (:mod:`lightning_tracker.storage.changes`). A reader:

1. lists ``.index/`` (one request: the index files and the change objects);
2. reads the index: the greatest compacted file or delta whose chain of parents down to a
   compacted file is all listed, and that chain (one request per file, at most
   1 + :data:`MAX_DELTAS`; none for a file this process read already);
3. lists the project's ``.edits/`` (one request): the runs whose deletion has begun are
   left out of the answer, even when ``rm`` stopped before telling the index, and a run
   with an edit object its row has not seen is read again, even when the edit's process
   died before its change object;
4. reads again the ``run.json`` of each run a change names that the index has not
   folded, and of each run that was live when folded (so its status and summary are
   current; a run whose heartbeat went stale is folded as crashed and no longer read);
5. when it folded something new, lists again and writes the result under a new name
   (never over one another reader may be reading): a delta holding only the runs it
   changed, on top of the index it read, or a new compacted file when the deltas would
   weigh more than :data:`DELTA_SHARE` of it. A delta merges the smaller deltas at the
   top of its chain into itself, so chains stay short and each run is rewritten a few
   times before the next compacted file. Then it removes the change objects and the
   index files outside its chain older than :data:`GRACE_S`.

Two readers folding at once both write a file one generation above what they listed;
the greater wins and the other is ignored: the changes only the loser folded are not
named by the winner, so they are news again for the next reader (nothing is dropped).

A missing or damaged index file (unreadable, another version, the wrong schema, a delta
naming another base) is never trusted: the reader reads every run folder and writes a new
compacted file. A reader that may not write (a read-only store) folds in memory and
answers all the same. An index file that vanished between the listing and the read
(another reader removed it) makes the reader list again.
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

from lightning_tracker.format import codec
from lightning_tracker.format.documents import run_state
from lightning_tracker.format.index import (
    CHANGES_DIR,
    INDEX_DIR,
    RUNS_DIR,
    IndexFile,
    change_run,
    new_index_file,
    parse_index_file_name,
)
from lightning_tracker.format.layout import EDITS_DIR, TOMBSTONE_FILE
from lightning_tracker.format.status import RUNNING
from lightning_tracker.read.cache import ReadCache
from lightning_tracker.read.edits import RunEdits
from lightning_tracker.read.index_files import ROW_FIELDS, Part, decode, encode, stack, without
from lightning_tracker.read.run import Run
from lightning_tracker.read.table import cells, concat
from lightning_tracker.storage import Storage

__all__ = ["DELTA_SHARE", "GRACE_S", "MAX_DELTAS", "Folded", "Loader", "ProjectIndex"]

log = logging.getLogger(__name__)

GRACE_S = 600.0
"""Seconds a superseded index file and a folded change object are kept: a reader that
listed them may still be reading. A fold that took longer than half of it (from its
last listing to its write) is not written: a faster reader may have removed what it lacks."""

MAX_DELTAS = 5
"""The most deltas on one compacted file: a process that remembers nothing reads an
unchanged project in at most 10 requests (the listing of ``.index/``, the compacted file
and these, the listing of ``.edits/``: one request, three on S3 when it does not exist)."""

DELTA_SHARE = 0.1
"""A fold whose deltas would hold more runs than this share of their compacted file's
writes a new compacted file instead (a small project: every time)."""

_LIST_ATTEMPTS = 3  # an index file removed under a reader makes it list again, this often
_REMOVE_AT_ONCE = 1000  # one S3 DeleteObjects request

Loader = Callable[[list[str] | None], dict[str, Run]]
"""Reads runs of the project from their folders: the ids given (None: every run folder),
as ``{id: Run}``; a run whose ``run.json`` is missing is left out."""


class _Snapshot(NamedTuple):
    """The index as read: its chain (the compacted file, then its deltas) and all of it stacked."""

    state: Part
    chain: tuple[Part, ...]


class _Listing(NamedTuple):
    """``.index/`` as listed: index files (ascending), changes (name -> (time, run id))."""

    files: list[IndexFile]
    changes: dict[str, tuple[int, str]]


class _Marks(NamedTuple):
    """``.edits/`` as listed: the runs with a deletion mark, and each run's edit object names."""

    deleted: frozenset[str]
    edits: dict[str, frozenset[str]]


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


def _rows(runs: list[Run], marks: _Marks) -> pa.Table:
    """The index rows of ``runs``, in their order (``marks``: the edit objects listed before they were read)."""
    return pa.table(
        {
            "id": [run.id for run in runs],
            "__doc": [codec.dumps(run.doc) for run in runs],
            # the edits' problems are the edits' own: a Run built from the row adds them again
            "__problems": [[p for p in run.problems if p not in run.edits.problems] for run in runs],
            # live as its writer left it: read again until it ends, or its heartbeat goes stale
            "__watch": [_live(run) for run in runs],
            "__tags": [run.tags for run in runs],
            "__edits": [
                codec.dumps(
                    {
                        "edits": run.edits.edits,
                        "problems": run.edits.problems,
                        "names": sorted(marks.edits.get(run.id, ())),
                    }
                )
                for run in runs
            ],
            "__archived": [run.archived for run in runs],
        },
        schema=ROW_FIELDS,
    )


def _live(run: Run) -> bool:
    return bool(run.doc) and run_state(run.doc) == RUNNING


def _sorted_runs(runs: Iterable[Run]) -> list[Run]:
    return sorted(runs, key=lambda r: (r.start_time or 0.0, r.id))


def _ids_in(table: pa.Table, ids: Iterable[str]) -> pa.Table:
    """The rows of ``table`` of the run ids ``ids``."""
    return table.filter(pc.is_in(table.column("id"), value_set=pa.array(sorted(ids), pa.string())))


def _chain(files: list[IndexFile]) -> list[IndexFile] | None:
    """The chain of the greatest file whose parents down to a compacted file are all in ``files``
    (ascending), compacted file first; None when no file has one."""
    by_key = {file.key: file for file in files}
    for head in reversed(files):
        chain = [head]
        while (parent := chain[-1].parent) is not None:
            found = by_key.get(parent)
            if found is None or found.generation >= chain[-1].generation:  # removed, or not a parent
                break
            chain.append(found)
        if chain[-1].parent is None:
            return chain[::-1]
    return None


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
        self._snapshot: _Snapshot | None = None  # the index read last: its files named again, not read again
        self._lock = threading.Lock()  # one fold at a time (the dashboard's threads share a store)
        self._named: tuple[str, dict[str, frozenset[str] | None]] = ("", {})  # see _unseen_edits

    @property
    def _root(self) -> str:
        return f"{self.project}/{INDEX_DIR}"

    def runs(self, rebuild: bool = False) -> list[Run]:
        """The project's runs now, in no particular order.

        Args:
            rebuild: read every run folder, whatever the index holds, and write the result.
        """
        found = self.read(rebuild)
        columns = [found.rows.column(name).to_pylist() for name in ROW_FIELDS.names]
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
            marks = self._marks()
            touched: set[str] | None = None
            if base is None:  # no index, or a damaged one, or asked to: every run folder
                fresh = self.load(None)
                runs = _sorted_runs(fresh.values())
                found = Folded(_rows(runs, marks), cells(runs), fresh)
                news = True
            else:
                found, touched, news = self._fold(base, listing, marks)
            if news and (found.rows.num_rows or listing.files):  # an empty project gets no index: it stays none
                found = self._persist(listing, found, base, touched, marks)
            return self._without_deleting(found, marks.deleted)

    def _marks(self) -> _Marks:
        """Lists the project's ``.edits/`` (one request): deletion marks and edit objects, by run."""
        deleted: set[str] = set()
        edits: dict[str, set[str]] = {}
        for rel in self.storage.find(f"{self.project}/{EDITS_DIR}"):
            rid, _, name = rel.partition("/")
            if not name or "/" in name or name.startswith("."):
                continue  # not an edit (a temporary file, a stray folder), as read.edits reads them
            if name == TOMBSTONE_FILE:
                deleted.add(rid)
            elif name.endswith(".json"):
                edits.setdefault(rid, set()).add(name)
        return _Marks(frozenset(deleted), {rid: frozenset(names) for rid, names in edits.items()})

    def _without_deleting(self, found: Folded, marked: frozenset[str]) -> Folded:
        """``found`` without the runs whose deletion has begun (``marked``), so a run reads as
        deleted from the moment its mark is written, even when ``rm`` was killed before it told the index."""
        held = marked & set(found.rows.column("id").to_pylist()) if marked else set()
        if not held:
            return found
        fresh = {rid: run for rid, run in found.fresh.items() if rid not in held}
        kept = without(found.cells, held) if found.cells.num_columns else found.cells
        return Folded(without(found.rows, held), kept, fresh)

    def _run(self, rid: str, doc: bytes, problems: list[str] | None, edits: bytes) -> Run:
        path = f"{self.project}/{rid}"
        kept = codec.loads(edits)
        found = RunEdits(edits=list(kept["edits"]), problems=list(kept["problems"]))
        return Run(
            self.storage, path, codec.loads(doc), cache=self._cache, problems=problems or (), checked=True, edits=found
        )

    def _fold(self, base: _Snapshot, listing: _Listing, marks: _Marks) -> tuple[Folded, set[str], bool]:
        """The index's rows with the runs read again: those of the changes it did not fold, the
        live ones, and those with edit objects their rows have not seen.

        Returns:
            What was found, the ids read again, and whether it holds news worth writing: a
            change, an unseen edit, or a live run that ended or went stale (no longer read each time).
        """
        rows = base.state.rows
        news = [name for name in listing.changes if name not in base.state.folded]
        watched = set(rows.filter(rows.column("__watch")).column("id").to_pylist())
        unseen = self._unseen_edits(base.state, marks)
        again = {listing.changes[name][1] for name in news} | watched | unseen
        found = self._merge(Folded(rows, base.state.cells, {}), again, marks)
        settled = any(rid not in found.fresh or not _live(found.fresh[rid]) for rid in watched)
        return found, again, bool(news) or settled or bool(unseen)

    def _unseen_edits(self, state: Part, marks: _Marks) -> set[str]:
        """The runs of ``state`` with a listed edit object their row's ``__edits`` does not name:
        an edit whose process died before its change object (a run being deleted aside)."""
        listed = {rid: names for rid, names in marks.edits.items() if rid not in marks.deleted}
        if self._named[0] != state.file.name:  # what each row names, decoded once per index read
            self._named = (state.file.name, {})
        named = self._named[1]
        if need := [rid for rid in listed if rid not in named]:
            named.update(dict.fromkeys(need))  # None: not a run of the index
            have = _ids_in(state.rows, need)
            for rid, raw in zip(have.column("id").to_pylist(), have.column("__edits").to_pylist(), strict=True):
                kept = codec.loads(raw)
                names = kept.get("names") if isinstance(kept, dict) else None
                named[rid] = frozenset(names or ())
        return {rid for rid, names in listed.items() if (seen := named[rid]) is not None and not names <= seen}

    def _merge(self, found: Folded, again: set[str], marks: _Marks) -> Folded:
        """``found`` with the runs ``again`` read from their folders (a run whose folder is gone dropped)."""
        if not again:
            return found
        loaded = self.load(sorted(again))
        runs = _sorted_runs(loaded.values())
        added = _rows(runs, marks)
        rows = pa.concat_tables([without(found.rows, again), added]) if found.rows.num_rows else added
        fresh = {**{rid: run for rid, run in found.fresh.items() if rid not in again}, **loaded}
        return Folded(rows, concat(found.cells, again, cells(runs)), fresh)

    # -- the listing and the index files ---------------------------------------------------
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
        """The listing, and the index read (None: none, damaged, or ``rebuild``)."""
        for _ in range(_LIST_ATTEMPTS):
            listing = self._list()
            chain = None if rebuild else _chain(listing.files)
            if chain is None:
                return listing, None
            known = self._snapshot
            if known is not None and known.state.file == chain[-1]:
                return listing, known
            parts = {part.file.name: part for part in known.chain} if known is not None else {}
            rels = {f"{self._root}/{RUNS_DIR}/{file.name}": file for file in chain if file.name not in parts}
            data = self.storage.read_many(list(rels))
            if len(data) < len(rels):
                continue  # superseded and removed since the listing: list again
            for rel, file in rels.items():
                try:
                    parts[file.name] = decode(data[rel], file, self.project)
                except Exception as err:  # noqa: BLE001 - whatever is wrong with it, it is rebuilt, never trusted
                    log.warning(
                        "the index %s is damaged (%s: %s); rebuilding it from the run folders",
                        self.storage.full_url(rel),
                        type(err).__name__,
                        err,
                    )
                    self._snapshot = None
                    return listing, None
            ordered = [parts[file.name] for file in chain]
            self._snapshot = _Snapshot(self._stacked(known, ordered), tuple(ordered))
            return listing, self._snapshot
        return listing, None

    @staticmethod
    def _stacked(known: _Snapshot | None, chain: list[Part]) -> Part:
        """The parts of ``chain`` stacked, from the index read last when the chain grew from it."""
        files = [part.file for part in chain]
        state, rest = chain[0], chain[1:]
        if known is not None and known.state.file in files:
            state, rest = known.state, chain[files.index(known.state.file) + 1 :]
        if not rest:
            return state
        top = rest[0]
        for part in rest[1:]:  # the small deltas first: the compacted file's rows are copied once
            top = stack(top, part)
        return stack(state, top)

    def _persist(
        self, listing: _Listing, found: Folded, base: _Snapshot | None, touched: set[str] | None, marks: _Marks
    ) -> Folded:
        """Writes ``found`` as a delta on ``base`` (``touched``: the runs read again) or a new
        compacted file, when no other reader wrote one meanwhile.

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
            return found  # another reader wrote meanwhile: its file serves as well
        if base is not None and any(part.file not in again.files for part in base.chain):
            return found  # a file of the chain read was removed meanwhile: a file on it would stand on nothing
        late = {again.changes[name][1] for name in again.changes if name not in listing.changes}
        found = self._merge(found, late, marks)
        if time.monotonic() - listed_at > GRACE_S / 2:
            log.info("the index of %s is not written: folding took longer than %g s", self.project, GRACE_S / 2)
            return found
        generation = (again.files[-1].generation if again.files else 0) + 1
        now, token = time.time_ns(), secrets.token_hex(4)
        listed = frozenset(again.changes)
        chain: tuple[Part, ...]
        plan = None if base is None or touched is None else self._delta(base, found, touched | late, listed)
        if plan is None:
            file = new_index_file(generation, now, token)
            part = Part(file, found.rows, found.cells, listed, frozenset())
            data, chain, parent = encode(part, self.project, None), (part,), None
        else:
            kept, delta = plan
            parent = kept[-1].file
            file = new_index_file(generation, now, token, parent)
            part = delta._replace(file=file)
            data, chain = encode(part, self.project, parent), (*kept, part)
        rel = f"{self._root}/{RUNS_DIR}/{file.name}"
        try:
            try:
                self.storage.create_bytes(rel, data)
            except NotImplementedError:  # a fresh random name: nobody else writes it
                self.storage.write_bytes(rel, data)
        except Exception as err:  # noqa: BLE001 - a read-only store: the answer stands, unwritten
            log.info("the index of %s is not written (%s: %s)", self.project, type(err).__name__, err)
            return found
        folded = listed | (base.state.folded if parent is not None and base is not None else frozenset())
        self._snapshot = _Snapshot(Part(file, found.rows, found.cells, folded, frozenset()), chain)
        self._remove_superseded(again, {part.file.name for part in chain})
        return found

    @staticmethod
    def _delta(
        base: _Snapshot, found: Folded, touched: set[str], listed: frozenset[str]
    ) -> tuple[tuple[Part, ...], Part] | None:
        """The delta a fold writes on ``base``: the runs it read again, the smaller deltas at the
        top of the chain merged in; with the chain it keeps. None: write a compacted file instead."""
        present = {rid for rid in touched if rid in found.fresh}
        gone = touched - present
        removed = set(_ids_in(base.state.rows, gone).column("id").to_pylist()) if gone else set()
        rows = _ids_in(found.rows, present)
        kept_cells = _ids_in(found.cells, present) if found.cells.num_columns else found.cells
        delta = Part(base.state.file, rows, kept_cells, listed - base.state.folded, frozenset(removed))
        chain = list(base.chain[1:])
        # the top delta merges in when it is no larger (each run is rewritten a few times, and
        # the chain stays at most MAX_DELTAS long: a cold read stays within its requests)
        while chain and (len(chain) >= MAX_DELTAS or chain[-1].size <= delta.size):
            delta = stack(chain.pop(), delta)
        if delta.size + sum(part.size for part in chain) > DELTA_SHARE * base.chain[0].rows.num_rows:
            return None
        return (base.chain[0], *chain), delta

    def _remove_superseded(self, listing: _Listing, keep: set[str]) -> None:
        """Removes the index files of ``listing`` outside the chain written (``keep``) and its
        change objects, those older than :data:`GRACE_S` (the chain written folds all of them)."""
        cutoff = time.time_ns() - int(GRACE_S * 1e9)
        doomed = [
            f"{self._root}/{RUNS_DIR}/{f.name}" for f in listing.files if f.time_ns < cutoff and f.name not in keep
        ]
        doomed += [f"{self._root}/{CHANGES_DIR}/{name}" for name, (t, _) in listing.changes.items() if t < cutoff]
        if not doomed:
            return
        try:
            self.storage.rm_many(doomed[:_REMOVE_AT_ONCE])
        except Exception as err:  # noqa: BLE001 - garbage left for the next fold
            log.info("could not remove superseded index objects of %s: %s", self.project, err)
