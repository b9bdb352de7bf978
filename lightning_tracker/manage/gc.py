"""Garbage collection: remove what no reader of a store will ever read.

:func:`collect_garbage` removes four kinds of garbage, each by the rule that makes it one:

- **spool copies** (:data:`SPOOL_COPY`): the local copy of a run of this store whose upload
  is complete, checked against the store itself: every file every session rewrites
  (``run.json``, ``config.json``, ``models.json``, ``meta.json``, ``git.diff``) has its bytes
  there, and every other file the mirror publishes is in the mirror's own record
  (``.mirror.json``: sent as it is now, by size and mtime) and in the store with its size.
  A copy that differs is kept and reported (run ``lightning-tracker sync`` first). The
  logger removes its own spool folder once a ``finalize`` upload was confirmed and the logger is done, unless
  ``$LIGHTNING_TRACKER_KEEP_SPOOL`` or ``keep_spool=True`` kept it; ``gc`` removes those
  kept, and those of crashed processes that ``sync`` completed with ``--keep``.
  Lightning's checkpoints the store does not hold stay (``writers.spool.remove_spooled_run``).
- **covered chunks** (:data:`COVERED_CHUNK`): chunks of ``metrics/``, ``histograms/`` and
  ``media/`` that another chunk of the store covers (:func:`~lightning_tracker.format.layout.covered_chunks`):
  a compaction wrote their replacement and was cut off before it deleted them. A reader
  already ignores them.
- **unreferenced objects** (:data:`MEDIA_OBJECT`, :data:`CHECKPOINT`): files of
  ``media-files/`` that no row of the media index names (as object or preview), and
  files of ``models/`` that ``models.json`` does not list.
- **temporary files** (:data:`TEMPORARY`) a crash left in a local store.

What is never touched: a run whose ``run.json`` is missing or damaged (not fully in the
store, or not ours to judge), a live run (fresh heartbeat: its writer compacts and retires
on its own), a run whose copy in this machine's spool is not uploaded completely, and a
run with checkpoints staged but not stored. Writers write an object before the document
or index chunk that names it, so an unreferenced object (or temporary file) is removed only
once it is older than ``grace_s`` (a day by default): an upload in flight on another
machine, after an outage, has that long to name it. Liveness read from a heartbeat is a
guess (a writer stalled past its stale time uploads on), so the unreferenced files of a
run whose heartbeat is younger than :data:`RECENT_HEARTBEAT_S` (a day) are kept while
younger than :data:`MIN_AGE_S` (an hour), whatever ``grace_s`` says; the CLI refuses a
``--grace`` below :data:`SAFE_GRACE_S` without ``--force``. Right before removing a run's
garbage its ``run.json`` and references are read again, so a run resumed meanwhile keeps
everything. Every step is one ``rm`` of one object, each safe on its own: a ``gc`` killed
half-way leaves less garbage and nothing missing, and ``gc`` again finishes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from lightning_tracker.exceptions import ProjectNotFoundError, StorageError
from lightning_tracker.format.documents import run_state
from lightning_tracker.format.layout import (
    DATA_DIRS,
    DOCUMENTS,
    GIT_DIFF_FILE,
    MEDIA_DIR,
    MEDIA_FILES_DIR,
    MEDIA_OBJECT_RE,
    META_FILE,
    MODELS_DIR,
    RUN_FILE,
    STAGING_DIR,
    covered_chunks,
    is_private,
    parse_staged_name,
)
from lightning_tracker.format.schemas import MEDIA
from lightning_tracker.format.status import RUNNING
from lightning_tracker.format.validate import parse_run
from lightning_tracker.read.cache import read_chunks
from lightning_tracker.read.checkpoints import read_manifest
from lightning_tracker.read.store import Store
from lightning_tracker.storage import Storage
from lightning_tracker.storage.base import FileInfo
from lightning_tracker.storage.local import is_temporary
from lightning_tracker.writers.mirror import Mirror
from lightning_tracker.writers.spool import find_spooled_runs, read_spool, remove_spooled_run

__all__ = [
    "CHECKPOINT",
    "COVERED_CHUNK",
    "DEFAULT_GRACE_S",
    "GcReport",
    "Garbage",
    "MEDIA_OBJECT",
    "MIN_AGE_S",
    "RECENT_HEARTBEAT_S",
    "SAFE_GRACE_S",
    "SPOOL_COPY",
    "TEMPORARY",
    "collect_garbage",
]

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 86_400.0
"""How old an unreferenced object must be before it is garbage: a day."""

SAFE_GRACE_S = 300.0
"""The least ``--grace`` the CLI takes without ``--force``: below it, an upload in flight is at risk."""

RECENT_HEARTBEAT_S = 86_400.0
"""A run whose last heartbeat is younger than this may have a writer still at work on another host."""

MIN_AGE_S = 3_600.0
"""How old an unreferenced object of a run with a recent heartbeat must be, whatever ``grace_s`` says."""

SPOOL_COPY = "spool copy of an uploaded run"
COVERED_CHUNK = "covered chunk"
MEDIA_OBJECT = "unreferenced media object"
CHECKPOINT = "unreferenced checkpoint"
TEMPORARY = "temporary file"


@dataclass(frozen=True)
class Garbage:
    """One thing ``gc`` removes (or would remove).

    Attributes:
        path: the file's path in the store, or the local folder of a spool copy.
        size: its bytes (a spool copy: the bytes of the files removed).
        reason: why it is garbage (:data:`SPOOL_COPY`, :data:`COVERED_CHUNK`, ...).
        url: where it is, printable: the store's URL of ``path``, or the local folder.
    """

    path: str
    size: int
    reason: str
    url: str


@dataclass
class GcReport:
    """What :func:`collect_garbage` did.

    Attributes:
        removed: what was removed (with ``dry_run``: what would be), in the order it went.
        kept: runs and spool copies left alone, with why: ``(where, why)``.
        dry_run: nothing was removed.
    """

    removed: list[Garbage] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def bytes(self) -> int:
        """The bytes freed (or that would be)."""
        return sum(g.size for g in self.removed)


def _folder_bytes(folder: str) -> int:
    total = 0
    for path, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(path, name)).st_size
            except FileNotFoundError:
                continue
    return total


# files every session rewrites in place: a copy of the same size may hold other bytes
_REWRITTEN = (*DOCUMENTS, META_FILE, GIT_DIFF_FILE)


def _staged(names: list[str]) -> bool:
    """Whether a staging folder's names hold a checkpoint staged but not stored yet."""
    return any(parse_staged_name(name) is not None for name in names)


def _spool_incomplete(local_dir: str, storage: Storage, prefix: str) -> str | None:
    """Why the spool copy in ``local_dir`` is not all in the store; None when it is."""
    try:
        with open(os.path.join(local_dir, RUN_FILE), "rb") as f:
            doc = parse_run(f.read()).doc
    except FileNotFoundError:
        doc = {}
    if doc and run_state(doc) == RUNNING:
        return "its run is live"
    staging = os.path.join(local_dir, STAGING_DIR)
    if _staged(os.listdir(staging) if os.path.isdir(staging) else []):
        return "it holds checkpoints staged but not stored; run lightning-tracker sync"
    mirror = Mirror(local_dir, storage, prefix)
    local, pending = mirror.local_files(), set(mirror.pending())
    remote = storage.find(prefix)
    # an immutable file is in the store when the mirror's own record says it sent it as it is now
    # (size and mtime), and the store lists it with that size
    missing = sorted(
        rel for rel, (size, _) in local.items() if rel not in _REWRITTEN and (rel in pending or remote.get(rel) != size)
    )
    # a rewritten file (a resumed session's meta.json) keeps its size: only its bytes tell
    rewritten = [name for name in _REWRITTEN if name in local]
    stored = storage.read_many([f"{prefix}/{name}" for name in rewritten])
    for name in rewritten:
        with open(os.path.join(local_dir, name), "rb") as f:
            if stored.get(f"{prefix}/{name}") != f.read():
                missing.append(name)
    if missing:
        return (
            f"{len(missing)} of its files are not in the store ({', '.join(missing[:3])}); run lightning-tracker sync"
        )
    return None


class _Collector:
    """One ``gc`` pass over a store; see :func:`collect_garbage`."""

    def __init__(
        self,
        store: Store,
        dry_run: bool,
        grace_s: float,
        on_removed: Callable[[Garbage], None] | None,
    ) -> None:
        self.store = store
        self.storage = store.storage
        self.report = GcReport(dry_run=dry_run)
        self.now = time.time()
        self.cutoff = self.now - grace_s
        self.on_removed = on_removed
        self.protected: dict[str, str] = {}  # run path -> why its spool copy keeps it whole
        self._run_cutoff = self.cutoff  # of the run being collected, set by _uncollectable

    def _remove(self, garbage: Garbage, remove: Callable[[], object]) -> None:
        if not self.report.dry_run:
            remove()
        self.report.removed.append(garbage)
        if self.on_removed is not None:
            self.on_removed(garbage)

    # -- the spool --------------------------------------------------------------------------
    def spool(self, spool_root: str | None, project: str | None) -> None:
        for local_dir in find_spooled_runs(spool_root):
            try:
                spool = read_spool(local_dir)
            except StorageError as err:  # damaged: sync reports it; never removed blindly
                self.report.kept.append((local_dir, str(err)))
                continue
            if spool is None or spool.url != self.storage.url:
                continue
            if project is not None and spool.prefix.split("/", 1)[0] != project:
                continue
            why = _spool_incomplete(local_dir, self.storage, spool.prefix)
            if why is not None:
                self.protected[spool.prefix] = f"its spool copy {local_dir} is not all in the store: {why}"
                self.report.kept.append((local_dir, why))
                continue
            size = _folder_bytes(local_dir)
            if self.report.dry_run:
                self._remove(Garbage(local_dir, size, SPOOL_COPY, local_dir), lambda: None)
                continue
            remove_spooled_run(local_dir)
            freed = size - (_folder_bytes(local_dir) if os.path.isdir(local_dir) else 0)
            self._remove(Garbage(local_dir, freed, SPOOL_COPY, local_dir), lambda: None)

    # -- the store --------------------------------------------------------------------------
    def _uncollectable(self, path: str) -> str | None:
        """Why the run at ``path`` must be left alone now (read from its ``run.json``); None to collect it."""
        if path in self.protected:
            return self.protected[path]
        try:
            data = self.storage.read_bytes(f"{path}/{RUN_FILE}")
        except FileNotFoundError:
            return f"it has no {RUN_FILE}: not all of it is in the store"
        run = parse_run(data)
        if run.problems or not run.doc:
            return f"its {RUN_FILE} is damaged ({'; '.join(run.problems) or 'not a document'})"
        if run_state(run.doc) == RUNNING:
            return "it is live (its heartbeat is fresh); its writer compacts on its own"
        self._run_cutoff = self._cutoff(run.doc)
        return None

    def _cutoff(self, doc: dict[str, object]) -> float:
        """The newest write time an unreferenced object of the run with ``run.json`` ``doc`` may have."""
        beat = doc.get("heartbeat") or doc.get("start_time") or 0.0
        if isinstance(beat, (int, float)) and self.now - float(beat) < RECENT_HEARTBEAT_S:
            # liveness read from a heartbeat is a guess: a writer on another host, stalled past
            # its stale time, may still name what it uploaded, so its young objects stay
            return min(self.cutoff, self.now - MIN_AGE_S)
        return self.cutoff

    def _old(self, info: FileInfo) -> bool:
        # a backend that does not say when an object was written never loses a young one
        return info.modified is not None and info.modified <= self.cutoff

    def _media_references(self, path: str) -> set[str]:
        table = read_chunks(self.storage, f"{path}/{MEDIA_DIR}", MEDIA, None, what="media index")
        names = set(table.column("object").to_pylist()) | set(table.column("thumbnail").to_pylist())
        return {name for name in names if name}

    def _garbage(self, path: str, files: dict[str, FileInfo]) -> tuple[list[Garbage], int]:
        """The run's garbage by the listing ``files`` (paths in the run), and how many unreferenced
        files older than ``grace_s`` the run's recent heartbeat keeps; its documents are read as needed."""
        out: list[Garbage] = []
        held = 0

        def add(rel: str, reason: str) -> None:
            nonlocal held
            modified = files[rel].modified
            if reason != COVERED_CHUNK and modified is not None and modified > self._run_cutoff:
                held += 1
                return
            out.append(Garbage(f"{path}/{rel}", files[rel].size, reason, self.storage.full_url(f"{path}/{rel}")))

        by_folder: dict[str, dict[str, FileInfo]] = {}
        for rel, info in files.items():
            folder, _, name = rel.rpartition("/")
            by_folder.setdefault(folder, {})[name] = info
        for folder in DATA_DIRS:
            for name in covered_chunks(list(by_folder.get(folder, {}))):
                add(f"{folder}/{name}", COVERED_CHUNK)
        for rel, info in sorted(files.items()):
            if is_temporary(rel.rpartition("/")[2]) and self._old(info):
                add(rel, TEMPORARY)
        media = [
            n for n, i in by_folder.get(MEDIA_FILES_DIR, {}).items() if MEDIA_OBJECT_RE.fullmatch(n) and self._old(i)
        ]
        if media:
            named = self._media_references(path)
            for name in sorted(set(media) - named):
                add(f"{MEDIA_FILES_DIR}/{name}", MEDIA_OBJECT)
        models = [n for n, i in by_folder.get(MODELS_DIR, {}).items() if not is_private(n) and self._old(i)]
        if models:
            listed = {entry["name"] for entry in read_manifest(self.storage, path)["checkpoints"]}
            for name in sorted(set(models) - listed):
                add(f"{MODELS_DIR}/{name}", CHECKPOINT)
        return out, held

    def run(self, path: str, files: dict[str, FileInfo]) -> None:
        why = self._uncollectable(path)
        if why is None and _staged(list(self._names_in(files, STAGING_DIR))):
            why = "it holds checkpoints staged but not stored"
        if why is not None:
            self.report.kept.append((path, why))
            return
        try:
            garbage, held = self._garbage(path, files)
            if garbage and not self.report.dry_run:
                # read again right before removing: a run resumed since, or an index that names
                # an object by now, keeps it
                why = self._uncollectable(path)
                if why is None:
                    again = {g.path for g in self._garbage(path, files)[0]}
                    garbage = [g for g in garbage if g.path in again]
        except StorageError as err:  # a damaged index or manifest: what it names is unknown
            self.report.kept.append((path, f"{err}"))
            return
        if why is not None:
            self.report.kept.append((path, why))
            return
        for item in garbage:
            self._remove(item, partial(self.storage.rm, item.path))
        if held:
            files_ = "file" if held == 1 else "files"
            why = f"{held} unreferenced {files_} younger than {MIN_AGE_S / 3600:g} h: its heartbeat is recent"
            self.report.kept.append((path, f"{why}, a writer on another host may name them yet (gc again later)"))

    @staticmethod
    def _names_in(files: dict[str, FileInfo], folder: str) -> list[str]:
        return [rel.rpartition("/")[2] for rel in files if rel.rpartition("/")[0] == folder]

    def project(self, name: str) -> None:
        runs: dict[str, dict[str, FileInfo]] = {}
        for rel, info in self.storage.find_info(name).items():  # one listing of the whole project
            run_id, _, rest = rel.partition("/")
            if rest and not is_private(run_id):
                runs.setdefault(run_id, {})[rest] = info
        for run_id in sorted(runs):
            self.run(f"{name}/{run_id}", runs[run_id])


def collect_garbage(
    store: Store,
    project: str | None = None,
    *,
    dry_run: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
    spool_root: str | None = None,
    on_removed: Callable[[Garbage], None] | None = None,
) -> GcReport:
    """Removes the garbage of ``store`` (or of one ``project``) and this machine's spool copies of its runs.

    See the module docstring for what counts as garbage and what is never touched.

    Args:
        store: the store.
        project: only this project.
        dry_run: only find and report; remove nothing.
        grace_s: an unreferenced object or temporary file younger than this is kept; one of a
            run whose heartbeat is younger than :data:`RECENT_HEARTBEAT_S` is kept while younger
            than :data:`MIN_AGE_S`, whatever ``grace_s`` says.
        spool_root: the spool to look in (default ``$LIGHTNING_TRACKER_SPOOL``).
        on_removed: called with each item right after it is removed (found, with ``dry_run``).

    Returns:
        What was removed and what was kept, with why.

    Raises:
        ProjectNotFoundError: ``project`` is not in the store.

    Example:
        >>> from lightning_tracker import TrackerLogger
        >>> logger = TrackerLogger("memory://doc-gc", name="p", version="r1", tensorboard=False)
        >>> logger.log_metrics({"loss": 1.0}, step=0)
        >>> logger.finalize("success")
        >>> store = Store("memory://doc-gc")
        >>> store.storage.write_bytes("p/r1/models/orphan.ckpt", b"weights")  # no manifest lists it
        >>> report = collect_garbage(store, grace_s=0)  # the run ended just now: a writer may name it yet
        >>> [g for g in report.removed if g.reason != SPOOL_COPY], report.kept[0][1].split(":")[0]
        ([], '1 unreferenced file younger than 1 h')
    """
    projects = store.projects()
    if project is not None and project not in projects:
        raise ProjectNotFoundError(
            f"no project {project!r} in {store.storage.url}; its projects: {', '.join(projects) or 'none'} "
            "(or leave out -p for all of them)"
        )
    collector = _Collector(store, dry_run, grace_s, on_removed)
    collector.spool(spool_root, project)
    for name in [project] if project is not None else projects:
        collector.project(name)
    return collector.report
