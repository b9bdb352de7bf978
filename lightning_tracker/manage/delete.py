"""Deleting runs: every object of a run goes, and a deletion cut off half-way reads as done.

A run's objects are its folder (documents, metric/histogram/media chunks, media objects,
stored checkpoints, TensorBoard event files) and its edits (``<project>/.edits/<run id>/``).
Object stores delete one object at a time, so a deletion is made safe to interrupt by a
mark (:data:`~lightning_tracker.format.layout.TOMBSTONE_FILE`, beside the run's edits):

1. the mark is written first: from then on every reader (``Store.runs``, ``Store.run``,
   the report, the dashboard) treats the run as deleted, and a ``delete`` change object
   tells the project index to drop it;
2. ``run.json`` goes, then every other object of the run folder, then the edits;
3. the mark goes last.

Killed (or cut off by an outage) before 1, the run is intact; after it, the run reads as
deleted, and ``rm`` again (:func:`pending_deletions` finds the marks) finishes the job.
The spooled copy of a run on this machine (a remote store's local spool) goes too, so that
``sync`` never uploads a deleted run again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lightning_tracker.exceptions import AmbiguousRunError, InvalidArgumentError, RunNotFoundError
from lightning_tracker.format import codec
from lightning_tracker.format.edits import new_tombstone
from lightning_tracker.format.layout import EDITS_DIR, RUN_FILE, TOMBSTONE_FILE
from lightning_tracker.read.edits import project_edits
from lightning_tracker.read.store import Run, Store
from lightning_tracker.storage import Storage
from lightning_tracker.storage.changes import record_change
from lightning_tracker.writers.spool import prune_empty, remove_spooled_run, spool_run_dir

__all__ = ["Doomed", "delete_run", "pending_deletions", "plan_deletion", "resolve_targets"]

_WORKERS = 8  # objects deleted at once: an object store deletes one object per request


@dataclass
class Doomed:
    """One run to delete and every object it has, with sizes.

    Attributes:
        project: its project.
        run_id: its id.
        name: its name (None for a deletion left half-way: ``run.json`` may be gone).
        status: its status then (``"deleting"`` for a deletion left half-way).
        objects: every object of the run, as store-relative paths mapped to sizes.
    """

    project: str
    run_id: str
    name: str | None
    status: str
    objects: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Bytes the deletion frees."""
        return sum(self.objects.values())

    @property
    def resumed(self) -> bool:
        """Whether a deletion of this run was started before (its mark is there)."""
        return self.status == "deleting"


def pending_deletions(store: Store, project: str | None = None) -> list[tuple[str, str]]:
    """``(project, run id)`` of every run whose deletion was started and not finished."""
    projects = [project] if project is not None else store.projects()
    return [(p, rid) for p in projects for rid, e in sorted(project_edits(store.storage, p).items()) if e.deleted]


def resolve_targets(store: Store, targets: Sequence[str], project: str | None) -> list[Run | tuple[str, str]]:
    """The runs ``targets`` name (ids, id prefixes or names, as ``Store.run`` takes them), archived ones included.

    A deletion left half-way is named by its id or an id prefix and given as ``(project, run id)``.

    Raises:
        RunNotFoundError: a target names no run.
        AmbiguousRunError: a target names several runs; the message names them.
    """
    pending = pending_deletions(store, project)
    found: list[Run | tuple[str, str]] = []
    for target in targets:
        half = [p for p in pending if p[1] == target] or [p for p in pending if p[1].startswith(target)]
        try:
            whole: list[Run] = [store.run(target, project)]
        except RunNotFoundError:
            if not half:
                raise
            whole = []
        matches: list[Run | tuple[str, str]] = [*whole, *half]
        if len(matches) > 1:
            ids = ", ".join(m.id if isinstance(m, Run) else m[1] for m in matches)
            raise AmbiguousRunError(
                f"{target!r} matches {len(matches)} runs in {store.storage.url} ({ids}); give more of the id"
            )
        key = _key(matches[0])
        if all(_key(m) != key for m in found):
            found.append(matches[0])
    return found


def _key(item: Run | tuple[str, str]) -> tuple[str, str]:
    return (item.project, item.id) if isinstance(item, Run) else item


def plan_deletion(store: Store, items: Iterable[Run | tuple[str, str]], *, force: bool = False) -> list[Doomed]:
    """What deleting ``items`` removes: each run with its objects and their sizes (nothing is deleted).

    Args:
        store: the store the runs are in.
        items: runs, and ``(project, run id)`` of deletions left half-way.
        force: also delete runs that are running (their heartbeat is fresh).

    Raises:
        InvalidArgumentError: a run is running and ``force`` is False; the message names it.
    """
    plan = []
    for item in items:
        if isinstance(item, Run):
            if item.status == "running" and not force:
                raise InvalidArgumentError(
                    f"run {item.id} ({item.name}) is running: its heartbeat is fresh; stop it first, or pass "
                    "--force (force=True) to delete it while it writes"
                )
            project, run_id, name, status = item.project, item.id, item.name, item.status
        else:
            (project, run_id), name, status = item, None, "deleting"
        plan.append(Doomed(project, run_id, name, status, _objects(store.storage, project, run_id)))
    return plan


def _objects(storage: Storage, project: str, run_id: str) -> dict[str, int]:
    objects = {}
    for base in (f"{project}/{run_id}", f"{project}/{EDITS_DIR}/{run_id}"):
        objects.update({f"{base}/{rel}": size for rel, size in storage.find(base).items()})
    return objects


def delete_run(storage: Storage, doomed: Doomed, *, spool_root: str | None = None) -> int:
    """Deletes one run of :func:`plan_deletion`, safe to interrupt; returns the bytes freed.

    Raises:
        StorageError, TransientStoreError: the store failed; the run reads as deleted and
            calling this again (``rm`` again) finishes.
    """
    project, run_id = doomed.project, doomed.run_id
    folder, edits = f"{project}/{run_id}", f"{project}/{EDITS_DIR}/{run_id}"
    mark = f"{edits}/{TOMBSTONE_FILE}"
    if not doomed.resumed:
        storage.write_bytes(mark, codec.dumps(new_tombstone(time.time(), run_id)))
    record_change(storage, project, run_id, "delete")
    # listed again: a deletion left half-way removed some, a live run (--force) wrote more
    rest = sorted(f"{folder}/{rel}" for rel in storage.find(folder) if rel != RUN_FILE)
    storage.rm(f"{folder}/{RUN_FILE}")  # first: a reader that knows no marks stops listing the run
    with ThreadPoolExecutor(_WORKERS) as pool:
        list(pool.map(storage.rm, rest))
        list(pool.map(storage.rm, [f"{edits}/{rel}" for rel in storage.find(edits) if rel != TOMBSTONE_FILE]))
    storage.rm(mark)  # last: until now a reader took the run as deleted
    for base in (folder, edits):
        _remove_empty_folders(storage, base)
    if not storage.is_local:
        spooled = spool_run_dir(storage, project, run_id, spool_root)
        if os.path.isdir(spooled):
            remove_spooled_run(spooled)
    return doomed.size


def _remove_empty_folders(storage: Storage, rel: str) -> None:
    """A local store's folders left empty below and at ``rel`` (an object store has none)."""
    path = storage.local_path(rel)
    if path is None or not os.path.isdir(path):
        return
    for folder, _, _ in os.walk(path, topdown=False):
        try:
            os.rmdir(folder)
        except OSError:  # not empty: something was written since
            continue
    prune_empty(os.path.dirname(path), storage.local_path(rel.split("/", 1)[0]) or path)
