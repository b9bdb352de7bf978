"""The writer's side of ``lightning-tracker rm``: a live run deleted while it trains stays deleted.

``rm`` (:mod:`lightning_tracker.manage.delete`) writes the run's deletion mark
(:data:`~lightning_tracker.format.layout.TOMBSTONE_FILE`) first and removes the mark last.
When the run's writer may still write (``rm --force`` of a live run), ``rm`` leaves the mark
in place for the writer, which :class:`DeletionWatch` lets find it cheaply: one read of the
mark (:func:`being_deleted`) at the heartbeat cadence (:func:`~lightning_tracker.format.documents.heartbeat_refresh_s`,
the flush interval plus 5 s; on the mirror's thread for a remote store, never on the
flusher's), and one when the run closes. Once it is found:

- nothing more is published: the mirror puts no object, no ``run.json`` and no change
  object for the project index (training goes on; nothing is raised into it);
- one warning says so, naming the run, and where what it logs is kept: a remote store's
  spool folder stays on this machine, its ``spool.json`` removed so ``sync`` never uploads
  the deleted run again; a local store's run folder is the store's own, so it is not kept;
- when the run closes, the writer finishes the deletion (:func:`remove_run_objects`: what
  it published before it knew, then the mark), so the run does not come back.

Before it knew, a writer may have published objects behind the mark: the mark hides them from
every reader, and an ``rm`` again (``rm`` finds the mark) removes them if the writer never closes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from lightning_tracker.format.layout import EDITS_DIR, RUN_FILE, SPOOL_FILE, TOMBSTONE_FILE
from lightning_tracker.storage import Storage, remove_file
from lightning_tracker.storage.changes import record_change
from lightning_tracker.writers.spool import prune_empty

__all__ = ["DeletionWatch", "being_deleted", "mark_path", "remove_empty_folders", "remove_run_objects"]

log = logging.getLogger(__name__)

_WORKERS = 8  # objects deleted at once: an object store deletes one object per request


def mark_path(project: str, run_id: str) -> str:
    """The store path of the run's deletion mark.

    Example:
        >>> mark_path("p", "r1")
        'p/.edits/r1/deleted.json'
    """
    return f"{project}/{EDITS_DIR}/{run_id}/{TOMBSTONE_FILE}"


def being_deleted(storage: Storage, prefix: str) -> bool:
    """Whether the deletion mark of the run at ``prefix`` is there: one read of the mark (on S3
    through s3fs, a HEAD and a one-key listing; ``exists``, a listing of the parent, would list
    the project's ``.edits`` folder where the run has no edits)."""
    try:
        storage.read_bytes(mark_path(*prefix.rsplit("/", 1)))
    except FileNotFoundError:
        return False
    return True


def remove_run_objects(storage: Storage, project: str, run_id: str) -> None:
    """Removes the run's folder and its edits, its deletion mark left: ``run.json`` first (a reader
    that knows no marks stops listing the run), then the other objects as listed before, then
    the edits."""
    folder, edits = f"{project}/{run_id}", f"{project}/{EDITS_DIR}/{run_id}"
    rest = sorted(f"{folder}/{rel}" for rel in storage.find(folder) if rel != RUN_FILE)
    storage.rm(f"{folder}/{RUN_FILE}")
    with ThreadPoolExecutor(_WORKERS) as pool:
        list(pool.map(storage.rm, rest))
        list(pool.map(storage.rm, [f"{edits}/{rel}" for rel in storage.find(edits) if rel != TOMBSTONE_FILE]))


def remove_empty_folders(storage: Storage, rel: str) -> None:
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


class DeletionWatch:
    """Looks for a live run's deletion mark, and finishes the deletion once it is found.

    Args:
        storage: where the run lives.
        prefix: ``<project>/<run id>``.
        local_dir: the run's local folder (a remote store's spool folder, or the store's own).
        every_s: the least time between two looks while the run trains (:meth:`poll`).
        on_deleted: called once, on the thread that found the mark, before anything else is
            published (the writer stops its mirror there).

    Example:
        >>> store = Storage("memory://doc-deletion")
        >>> store.write_bytes("p/r1/run.json", b"{}")
        >>> watch = DeletionWatch(store, "p/r1", "/nowhere", every_s=7.0, on_deleted=lambda: None)
        >>> watch.poll(), watch.deleted
        (False, False)
        >>> store.write_bytes(mark_path("p", "r1"), b"{}")
        >>> watch.poll()  # looked less than 7 s ago
        False
        >>> watch.check(), sorted(store.find("p"))
        (True, ['.edits/r1/deleted.json', 'r1/run.json'])
        >>> watch.settle(time.monotonic() + 5), [rel.rsplit("/", 1)[0] for rel in store.find("p")]
        (True, ['.index/changes'])
    """

    def __init__(
        self, storage: Storage, prefix: str, local_dir: str, every_s: float, on_deleted: Callable[[], None]
    ) -> None:
        self.storage, self.prefix, self.local_dir = storage, prefix, local_dir
        self.every_s = every_s
        self.on_deleted = on_deleted
        self.deleted = False  # the mark was found: sticky, whatever happens to the mark afterwards
        self._due = time.monotonic()  # the first look comes with the first round
        self._lock = threading.Lock()

    def poll(self) -> bool:
        """Looks for the mark when the last look is ``every_s`` old; returns :attr:`deleted`."""
        if not self.deleted and time.monotonic() >= self._due:
            self.check()
        return self.deleted

    def check(self) -> bool:
        """Looks for the mark now (a store that fails is asked again next time); returns :attr:`deleted`."""
        if self.deleted:
            return True
        self._due = time.monotonic() + self.every_s
        try:
            found = being_deleted(self.storage, self.prefix)
        except Exception:  # noqa: BLE001 - the store is down: the next look tells
            return False
        with self._lock:
            if found and not self.deleted:
                self.deleted = True
                self.on_deleted()
                self._say()
        return self.deleted

    def _say(self) -> None:
        project, run_id = self.prefix.rsplit("/", 1)
        where = self.storage.full_url(project)
        if self.storage.local_path(self.prefix) is not None:
            log.warning(
                "run %s of project %s was deleted from %s by `lightning-tracker rm` while it trained; training goes "
                "on, and what it logs from now on is not kept (its folder goes when the run ends)",
                run_id,
                project,
                where,
            )
            return
        try:  # sync must never upload the deleted run again: without spool.json it is no spooled run
            remove_file(os.path.join(self.local_dir, SPOOL_FILE))
        except OSError:
            pass
        log.warning(
            "run %s of project %s was deleted from %s by `lightning-tracker rm` while it trained; training goes on, "
            "nothing more is uploaded, and what it logs is kept in %s (sync leaves it; delete the folder when done)",
            run_id,
            project,
            where,
            self.local_dir,
        )

    def settle(self, deadline: float) -> bool:
        """When the run closes: looks for the mark (unless found already) and, if the run was deleted,
        removes what it published before it knew and then the mark; at most until ``deadline``
        (a ``time.monotonic()`` value), on a daemon thread, so a hung store cannot hold the close.

        Returns:
            Whether the run was deleted (nothing of it is to be published).
        """
        done = threading.Event()

        def finish() -> None:
            try:
                if self.check():
                    self._remove()
            except Exception as err:  # noqa: BLE001 - an rm again finishes: the mark is still there
                log.warning(
                    "could not remove what run %s published before it found its deletion mark in %s (%s: %s); "
                    "it reads as deleted, and `lightning-tracker rm %s -s %s` removes it",
                    self.prefix,
                    self.storage.url,
                    type(err).__name__,
                    err,
                    self.prefix.rsplit("/", 1)[1],
                    self.storage.url,
                )
            finally:
                done.set()

        threading.Thread(target=finish, name="lightning-tracker-deletion", daemon=True).start()
        done.wait(max(0.0, deadline - time.monotonic()))
        return self.deleted

    def _remove(self) -> None:
        project, run_id = self.prefix.rsplit("/", 1)
        remove_run_objects(self.storage, project, run_id)
        # the index is told again: a reader that read run.json as this writer last put it, and the
        # edits once the mark went, would otherwise keep the run as a row with no folder
        record_change(self.storage, project, run_id, "delete")
        self.storage.rm(mark_path(project, run_id))  # last: until now every reader took the run as deleted
        for rel in (self.prefix, f"{project}/{EDITS_DIR}/{run_id}"):
            remove_empty_folders(self.storage, rel)
