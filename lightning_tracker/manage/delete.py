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
deleted, and ``rm`` again (:func:`pending_deletions` finds the marks) finishes the job, or
``rm --undo`` (:func:`undo_deletion`) takes it back while ``run.json`` is there. A writer
refuses to start or resume a run whose mark is there (``writers/resume.py``).

A run whose writer may still write is refused unless forced: one whose ``run.json`` says
``running`` with a heartbeat younger than :data:`LIVE_MARGIN_S` (10 minutes; a heartbeat
merely stale because the writer is on another host, or its uploads are late, counts as
live). The heartbeat is read again just before the mark is written (the plan may have
waited at the prompt), and the run folder is listed again once it is emptied: an object
that appeared meanwhile keeps the mark, and ``rm`` says the run is still being written.
The spooled copy of a run on this machine (a remote store's local spool) goes too, so that
``sync`` never uploads a deleted run again.

A live run deleted by force keeps its mark, and its spool folder: its writer finds the mark
at its heartbeat cadence, publishes nothing more, keeps what it logs in its spool, and when
it closes removes what it published before it knew and then the mark
(:mod:`lightning_tracker.writers.deletion`). A writer that never closes leaves the mark, so
the run reads as deleted and ``rm`` again finishes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lightning_tracker.exceptions import AmbiguousRunError, InvalidArgumentError, RunNotFoundError, StoreChangedError
from lightning_tracker.format import codec
from lightning_tracker.format.documents import run_state
from lightning_tracker.format.edits import new_tombstone
from lightning_tracker.format.layout import EDITS_DIR, RUN_FILE, TOMBSTONE_FILE
from lightning_tracker.format.status import RUNNING
from lightning_tracker.read.edits import project_edits
from lightning_tracker.read.store import Run, Store
from lightning_tracker.storage import Storage
from lightning_tracker.storage.changes import record_change
from lightning_tracker.writers.deletion import remove_empty_folders, remove_run_objects
from lightning_tracker.writers.spool import remove_spooled_run, spool_run_dir

__all__ = [
    "LIVE_MARGIN_S",
    "Doomed",
    "delete_run",
    "pending_deletions",
    "plan_deletion",
    "resolve_targets",
    "undo_deletion",
]

LIVE_MARGIN_S = 600.0
"""A ``running`` run whose last heartbeat is younger than this is not deleted unless forced: a
reader calls it crashed after three heartbeat intervals, but a writer on another host, or
one whose uploads are late, may still be writing."""


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
    force: bool = False  # delete it even if its writer may still write

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
    for target in targets:
        _check_target(target)
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
        named = [r for r in store.runs(project, archived=None) if r.name == target] if whole else []
        if whole and whole[0].id == target and any(r.path != whole[0].path for r in named):
            other = next(r for r in named if r.path != whole[0].path)
            raise AmbiguousRunError(
                f"{target!r} is the id of run {whole[0].id} and the name of run {other.id} (project "
                f"{other.project}) in {store.storage.url}; delete by a longer form of the id you mean, or rename "
                f"run {other.id} first"
            )
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


def _check_target(target: str) -> None:
    """Raises for an empty target: an id prefix ``""`` would match every run (an unset shell variable)."""
    if not isinstance(target, str) or not target.strip():
        raise InvalidArgumentError(
            f"run={target!r}: the run id is empty (an unset shell variable?); give a run id, id prefix or name "
            "(lightning-tracker runs lists them)"
        )


def _key(item: Run | tuple[str, str]) -> tuple[str, str]:
    return (item.project, item.id) if isinstance(item, Run) else item


def plan_deletion(store: Store, items: Iterable[Run | tuple[str, str]], *, force: bool = False) -> list[Doomed]:
    """What deleting ``items`` removes: each run with its objects and their sizes (nothing is deleted).

    Args:
        store: the store the runs are in.
        items: runs, and ``(project, run id)`` of deletions left half-way.
        force: also delete runs whose writer may still write: ``running`` with a heartbeat
            younger than :data:`LIVE_MARGIN_S`, a deletion left half-way included.

    Raises:
        InvalidArgumentError: such a run is there and ``force`` is False; the message names it.
    """
    plan = []
    for item in items:
        if isinstance(item, Run):
            project, run_id, name, status = item.project, item.id, item.name, item.status
            if not force:  # read now: the project index may hold an older heartbeat than run.json
                _refuse_live(store.storage, project, run_id)
        else:  # a deletion left half-way: its writer may have resumed it behind the mark
            (project, run_id), name, status = item, None, "deleting"
            if not force:
                _refuse_live(store.storage, project, run_id)
        plan.append(Doomed(project, run_id, name, status, _objects(store.storage, project, run_id), force))
    return plan


def _refuse_live(storage: Storage, project: str, run_id: str) -> None:
    """Raises when the run's writer may still write (:func:`_live`).

    Raises:
        InvalidArgumentError: naming the run, how old its heartbeat is and the fix.
    """
    why = _live(storage, project, run_id)
    if why is not None:
        raise InvalidArgumentError(why)


def _live(storage: Storage, project: str, run_id: str) -> str | None:
    """Why the run's writer may still write, with the fix; None when it may not: its ``run.json``
    (read now) says ``running`` with a heartbeat younger than :data:`LIVE_MARGIN_S`."""
    try:
        loaded = codec.loads(storage.read_bytes(f"{project}/{run_id}/{RUN_FILE}"))
    except FileNotFoundError:
        return None  # removed already: a deletion past its first step
    except ValueError:
        return None  # unreadable: no writer keeps a damaged run.json
    doc = loaded if isinstance(loaded, dict) else {}
    beat = doc.get("heartbeat") or doc.get("start_time")
    if doc.get("status", RUNNING) != RUNNING or not isinstance(beat, (int, float)):
        return None
    age = max(0.0, time.time() - float(beat))
    if age >= LIVE_MARGIN_S:
        return None
    ago = f"{age / 60:.0f} minutes" if age >= 60 else f"{age:.0f} s"
    name = f" ({doc['name']})" if isinstance(doc.get("name"), str) else ""
    if run_state(doc) == RUNNING:
        why = f"is running: its heartbeat was written {ago} ago"
    else:
        why = (
            f"may still be running: its last heartbeat was written {ago} ago, less than "
            f"{LIVE_MARGIN_S / 60:.0f} minutes, and its writer may be on another host"
        )
    return (
        f"run {run_id}{name} of project {project} {why}; stop its writer first, or pass --force (force=True) to "
        "delete it while it writes"
    )


def _objects(storage: Storage, project: str, run_id: str) -> dict[str, int]:
    objects = {}
    for base in (f"{project}/{run_id}", f"{project}/{EDITS_DIR}/{run_id}"):
        objects.update({f"{base}/{rel}": size for rel, size in storage.find(base).items()})
    return objects


def delete_run(storage: Storage, doomed: Doomed, *, spool_root: str | None = None) -> int:
    """Deletes one run of :func:`plan_deletion`, safe to interrupt; returns the bytes freed.

    Raises:
        InvalidArgumentError: the run's writer may still write (see :data:`LIVE_MARGIN_S`) and
            the plan was not forced; nothing is deleted.
        StoreChangedError: objects appeared in the run folder while it was deleted (a writer
            wrote on); the mark stays, so the run reads as deleted, and ``rm`` again finishes.
        StorageError, TransientStoreError: the store failed; the run reads as deleted and
            calling this again (``rm`` again) finishes.
    """
    project, run_id = doomed.project, doomed.run_id
    folder, edits = f"{project}/{run_id}", f"{project}/{EDITS_DIR}/{run_id}"
    mark = f"{edits}/{TOMBSTONE_FILE}"
    live = _live(storage, project, run_id)  # read again: the plan may have waited at the prompt
    if live is not None and not doomed.force:
        raise InvalidArgumentError(live)
    if not doomed.resumed:
        storage.write_bytes(mark, codec.dumps(new_tombstone(time.time(), run_id, live=live is not None)))
    record_change(storage, project, run_id, "delete")
    # listed again: a deletion left half-way removed some, a live run (--force) wrote more
    remove_run_objects(storage, project, run_id)
    if live is not None:  # its writer finds the mark, and removes what it writes meanwhile, then the mark
        return doomed.size
    appeared = storage.find(folder)
    if appeared:  # a writer wrote on while the run was deleted: the mark stays, so it still reads as deleted
        raise StoreChangedError(
            f"run {run_id} of project {project} in {storage.url} is still being written; rm again once its writer "
            f"stopped ({len(appeared)} objects appeared while it was deleted, e.g. {sorted(appeared)[0]}; it reads "
            "as deleted until then)"
        )
    storage.rm(mark)  # last: until now a reader took the run as deleted
    for base in (folder, edits):
        remove_empty_folders(storage, base)
    if not storage.is_local:
        spooled = spool_run_dir(storage, project, run_id, spool_root)
        if os.path.isdir(spooled):
            remove_spooled_run(spooled)
    return doomed.size


def undo_deletion(storage: Storage, project: str, run_id: str) -> None:
    """Takes back a deletion that removed nothing yet (its mark is there, and so is ``run.json``).

    Raises:
        InvalidArgumentError: the run has no deletion mark, or its ``run.json`` is gone (part of
            it is deleted: only ``rm`` again can finish it).
    """
    mark = f"{project}/{EDITS_DIR}/{run_id}/{TOMBSTONE_FILE}"
    try:
        found = codec.loads(storage.read_bytes(mark))
    except FileNotFoundError:
        raise InvalidArgumentError(
            f"run {run_id} of project {project} is not being deleted; nothing to take back"
        ) from None
    except ValueError:
        found = None  # a damaged mark: judged by run.json below
    if isinstance(found, dict) and found.get("live") is True:  # its writer may have re-written run.json since
        raise InvalidArgumentError(
            f"cannot take back the deletion of run {run_id} of project {project}: it was deleted while it trained "
            f"(rm --force), its objects are removed and its writer finishes the deletion when it ends"
        )
    if not storage.exists(f"{project}/{run_id}/{RUN_FILE}"):
        raise InvalidArgumentError(
            f"cannot take back the deletion of run {run_id} of project {project}: its {RUN_FILE} is gone, so part "
            f"of it is deleted already; finish with `lightning-tracker rm {run_id} -s {storage.url}`"
        )
    storage.rm(mark)
    record_change(storage, project, run_id, "edit")  # the project index reads the run again
