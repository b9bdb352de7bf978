"""The mirror: publishes a run's local folder to its store, the one upload engine of a run.

Producers write immutable files (chunks, closed event files, stored checkpoints) and small
documents into the run's local folder. A mirror *round* publishes them in the order that
keeps every remote reader consistent:

1. upload the immutable files that are new, except checkpoints; only live chunks (a chunk
   another local chunk covers is garbage of a compaction);
2. commit ``config.json`` and ``run.json`` as they were read before the listing in step 1
   (so a final ``run.json`` never reaches the store before the chunks it describes). The
   live run's rounds are *paced*: ``run.json`` is committed when a field other than its
   heartbeat and summary changed (status, tags, hyperparameters, sessions), else only
   once its stored copy is :func:`~lightning_tracker.format.documents.heartbeat_refresh_s`
   old — a run with 30,000 hyperparameters no longer uploads its whole ``run.json`` at
   every flush, and readers still see its heartbeat well within ``stale_after_s``;
3. upload new checkpoints (``models/*``) one by one — also one the flusher is still
   hashing, so hashing and uploading overlap — and after each commit ``models.json``
   without the entries whose object is not in the store yet, so an entry never names a
   half-uploaded object and each stored checkpoint is listed at once; then remove the
   local copies of the checkpoints the committed manifest lists (the store keeps them;
   the spool does not grow with every checkpoint);
4. retire: delete remote chunks that an uploaded chunk covers and remote checkpoints the
   committed manifest no longer lists and that are gone locally.

A failed step ends the round; the next round starts over and skips what is done. What is
remote is recorded in the folder's ``.mirror.json`` (size and mtime per file), the only
state file. The same class serves the live run (a thread with back-off), ``finalize``
(rounds until a deadline; both in :mod:`.mirror_loops`) and ``lightning-tracker sync``. When the run folder is the
store's own folder (a local ``save_dir``), there is nothing to publish and a round does
nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lightning_tracker.format.codec import dumps, loads
from lightning_tracker.format.documents import fixed_fields, heartbeat_refresh_s, manifest_without, new_mirror_state
from lightning_tracker.format.layout import (
    CONFIG_FILE,
    DATA_DIRS,
    DOCUMENTS,
    MEDIA_FILES_DIR,
    MIRROR_FILE,
    MODELS_DIR,
    MODELS_FILE,
    RUN_FILE,
    covered_chunks,
    is_private,
    live_chunks,
)
from lightning_tracker.format.rollups import ROLLUPS_DIR
from lightning_tracker.format.validate import parse_document
from lightning_tracker.storage import Storage, atomic_write
from lightning_tracker.storage.changes import tell_index

__all__ = ["Mirror", "MirrorReport"]

log = logging.getLogger(__name__)

# rollups/ is named like chunks and retired alike (a wider rollup covers a narrower one); it
# sorts after metrics/, so a round uploads the chunks a rollup summarizes before the rollup
_CHUNK_DIRS = (*DATA_DIRS, ROLLUPS_DIR)
PUBLISHED_DIRS = (*_CHUNK_DIRS, MEDIA_FILES_DIR, MODELS_DIR)  # other folders (Lightning's checkpoints/) stay local
_PUBLISHED_DIRS = PUBLISHED_DIRS


@dataclass
class MirrorReport:
    """What one round did, and what is still only local."""

    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def complete(self) -> bool:
        """Whether the store now holds everything the local folder held."""
        return not self.pending and self.error is None


class _Stop(Exception):
    """A step failed: the round ends here (the error is in the report)."""


class Mirror:
    """Publishes one run folder to ``storage`` under ``prefix``.

    Args:
        local_dir: the run's local folder (a spool folder for a remote store).
        storage: where the run lives.
        prefix: the run's path in ``storage`` (``<project>/<run_id>``).
        skip: returns True for a local path not to publish now (the growing event file;
            beside a live run, its documents).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> atomic_write(os.path.join(folder, "run.json"), b"{}")
        >>> mirror = Mirror(folder, Storage("memory://doc-mirror"), "p/r1")
        >>> mirror.run_once().uploaded
        ['run.json']
        >>> mirror.run_once().uploaded, Storage("memory://doc-mirror").read_bytes("p/r1/run.json")
        ([], b'{}')
    """

    def __init__(
        self, local_dir: str, storage: Storage, prefix: str, skip: Callable[[str], bool] | None = None
    ) -> None:
        self.local_dir = local_dir
        self.storage = storage
        self.prefix = prefix
        self.skip = skip or (lambda _path: False)
        local_path = storage.local_path(prefix)
        # a local save_dir: the run folder is the store's own folder, already published
        self.in_place = local_path is not None and os.path.abspath(local_path) == os.path.abspath(local_dir)
        self._done: dict[str, list[int]] = {}  # rel -> [size, mtime_ns] as published
        self._partial_manifest = b""  # the last models.json committed without entries still to upload
        self._lock = threading.Lock()  # one round at a time (live thread, finalize, sync)
        self.active = True  # False once the run's final upload is over: a late round puts nothing
        self.run_deleted = False  # the run's deletion mark was found (writers/deletion.py): nothing is put, ever
        # run.json as last committed: when, and its fixed_fields (what a paced round compares)
        self._run_committed: tuple[float, dict[str, Any]] | None = None
        self._indexed, self._indexed_status = False, None  # what the project index was last told (its status)
        self.change_kind: str | None = None  # the kind of change this mirror's commits are (sync's); None: by status
        self._load_state()

    # -- state --------------------------------------------------------------------------
    def _load_state(self) -> None:
        path = os.path.join(self.local_dir, MIRROR_FILE)
        try:
            with open(path, "rb") as f:
                state = parse_document(MIRROR_FILE, f.read())
        except OSError:
            return  # no state yet: sync compares with the remote listing instead
        if state.damaged:  # only an optimisation: comparing with the remote listing is always right
            log.info("ignoring %s (%s); files are compared with the store's listing", path, "; ".join(state.problems))
            return
        self._done.update(state.doc["published"])

    def _save_state(self) -> None:
        try:
            atomic_write(os.path.join(self.local_dir, MIRROR_FILE), dumps(new_mirror_state(self._done)))
        except OSError:
            pass  # only an optimisation: the next round or sync compares again

    def mark_published(self, rel: str) -> None:
        """Records that ``rel`` is already in the store exactly as it is locally (a resume download)."""
        st = os.stat(os.path.join(self.local_dir, *rel.split("/")))
        self._done[rel] = [st.st_size, st.st_mtime_ns]

    # -- what there is ------------------------------------------------------------------
    def _local_files(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for dirpath, dirnames, files in os.walk(self.local_dir):
            rel_dir = os.path.relpath(dirpath, self.local_dir).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir
            # media/ before media-files/: every object a listed index chunk names is on disk already
            dirnames[:] = sorted(
                (d for d in dirnames if not rel_dir and d in _PUBLISHED_DIRS), key=lambda d: d == MEDIA_FILES_DIR
            )
            names = [n for n in files if not is_private(n)]
            if rel_dir in _CHUNK_DIRS:
                names = live_chunks(names)
            for name in names:
                path = os.path.join(dirpath, name)
                if self.skip(path):
                    continue
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                out[f"{rel_dir}/{name}" if rel_dir else name] = [st.st_size, st.st_mtime_ns]
        return out

    def local_files(self) -> dict[str, list[int]]:
        """What a complete upload puts in the store: each local file's ``[size, mtime_ns]``, by path in the run."""
        return self._local_files()

    def pending(self) -> list[str]:
        """Local files that are not in the store as they are now."""
        if self.in_place:
            return []
        return sorted(rel for rel, sig in self._local_files().items() if self._done.get(rel) != sig)

    def pending_bytes(self) -> int:
        """Bytes of the checkpoints still to upload (for a progress bar)."""
        local = self._local_files()
        return sum(local[rel][0] for rel in self.pending() if rel.startswith(f"{MODELS_DIR}/") and rel in local)

    # -- one round ----------------------------------------------------------------------
    def run_once(self, remote_listing: dict[str, int] | None = None, paced: bool = False) -> MirrorReport:
        """Publishes what changed and retires what is gone; never raises.

        Args:
            remote_listing: sizes of the files already in the store (``Storage.find`` of
                the run), from ``sync``: immutable files of the same size are not sent
                again, and covered chunks found there are retired.
            paced: a live run's round: ``run.json`` waits while only its heartbeat and
                summary changed and its stored copy is fresh (see the module docstring).
        """
        report = MirrorReport()
        if self.in_place:
            return report
        with self._lock:
            try:
                self._round(report, remote_listing or {}, paced)
            except _Stop:
                pass
            except Exception as err:  # noqa: BLE001 - a local surprise must not end the mirror thread
                report.error = err
            report.pending = self.pending()
            self._save_state()
        return report

    def _round(self, report: MirrorReport, listing: dict[str, int], paced: bool = False) -> None:
        # read before listing: run.json (a final status, a summary) never reaches the store
        # before the chunks it describes
        documents = {name: found for name in (CONFIG_FILE, RUN_FILE) if (found := self._read(name)) is not None}
        local = self._local_files()
        for rel, sig in local.items():
            if rel not in DOCUMENTS and listing.get(rel) == sig[0]:
                self._done.setdefault(rel, sig)  # already remote (sync after a crash)
        todo = sorted(rel for rel, sig in local.items() if self._done.get(rel) != sig and rel not in DOCUMENTS)
        listed = {e["name"] for e in self._manifest()[0]["checkpoints"]}
        models = sorted(
            (rel for rel in todo if rel.startswith(f"{MODELS_DIR}/")),
            key=lambda rel: rel.split("/", 1)[1] not in listed,
        )  # listed ones first
        self._upload(report, [rel for rel in todo if rel not in models], local)
        for name, (data, sig) in documents.items():
            if name == RUN_FILE:
                self._commit_run(report, data, sig, paced)
            else:
                self._commit(report, name, data, sig)
        for rel in models:
            self._upload(report, [rel], local)
            self._commit_manifest(report)  # lists each checkpoint as soon as it is in the store
        self._retire(report, listing, self._commit_manifest(report))

    def _read(self, name: str) -> tuple[bytes, list[int]] | None:
        """A document as it is on disk now, with its signature (None: absent, or not ours to send)."""
        path = os.path.join(self.local_dir, name)
        if self.skip(path):
            return None
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                return f.read(), [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            return None

    def _put(self, report: MirrorReport, rel: str, send: Callable[[], Any]) -> bool:
        """Sends one object; returns False when its local file vanished (compacted away meanwhile)."""
        if not self.active or self.run_deleted:
            raise _Stop  # the run's final upload is over (what is left is for sync), or the run was deleted
        try:
            send()
        except FileNotFoundError as err:
            if not os.path.exists(os.path.join(self.local_dir, *rel.split("/"))):
                return False  # its replacement comes in a later round; it is not in the store
            report.error = err  # the bucket or container is missing
            raise _Stop from err
        except Exception as err:  # the store is down: retry next round
            report.error = err
            raise _Stop from err
        report.uploaded.append(rel)
        return True

    def _upload(self, report: MirrorReport, rels: list[str], local: dict[str, list[int]]) -> None:
        for rel in rels:
            path = os.path.join(self.local_dir, *rel.split("/"))
            if self._put(report, rel, partial(self.storage.put_file, path, f"{self.prefix}/{rel}")):
                self._done[rel] = local[rel]  # only what is really in the store may cover a chunk

    def _commit(self, report: MirrorReport, name: str, data: bytes, sig: list[int]) -> None:
        """Commits a document as the round read it (rounds are serialised: a later round commits a newer copy)."""
        if self._done.get(name) == sig:
            return
        if self._put(report, name, lambda: self.storage.write_bytes(f"{self.prefix}/{name}", data)):
            self._done[name] = sig

    def _commit_run(self, report: MirrorReport, data: bytes, sig: list[int], paced: bool) -> None:
        """Commits ``run.json``; a paced round skips a copy whose news is only its heartbeat and summary
        while the stored one is younger than ``heartbeat_refresh_s``."""
        if self._done.get(RUN_FILE) == sig:
            return
        try:
            doc = loads(data)
            fixed = fixed_fields(doc) if isinstance(doc, dict) else None
        except ValueError:
            doc = fixed = None  # not ours to judge: sent as it is
        last = self._run_committed
        if paced and fixed is not None and last is not None and last[1] == fixed:
            if time.monotonic() - last[0] < heartbeat_refresh_s(doc.get("heartbeat_interval_s")):
                return
        self._commit(report, RUN_FILE, data, sig)
        if fixed is not None:
            self._run_committed = (time.monotonic(), fixed)
        if self._done.get(RUN_FILE) == sig:
            self._tell_index(doc)

    def _tell_index(self, doc: Any) -> None:
        """Adds a change object for the project index once the store holds the ``run.json`` it
        points at: at this mirror's first commit (a start, a resume, a sync) and when the
        committed status changes (the end); the live run's heartbeats are not news."""
        status = doc.get("status") if isinstance(doc, dict) else None
        if self._indexed and status == self._indexed_status:
            return
        if self.change_kind is not None:
            kind = self.change_kind
        elif status not in (None, "running"):
            kind = "end"
        else:
            kind = "resume" if len(doc.get("sessions") or []) > 1 else "start"
        project, run_id = self.prefix.rsplit("/", 1)
        self._indexed, self._indexed_status = True, status
        tell_index(self.storage, project, run_id, kind)

    def _manifest(self) -> tuple[dict[str, Any], bytes, list[int] | None]:
        """``models.json`` as it is now, its bytes and signature (an empty manifest when there is none)."""
        found = self._read(MODELS_FILE)
        if found is not None:
            try:
                return loads(found[0]), found[0], found[1]
            except ValueError:
                pass  # written whole or not at all: only a foreign file is not JSON
        return {"checkpoints": []}, b"", None

    def _unpublished(self, manifest: dict[str, Any]) -> set[str]:
        """Checkpoints the manifest lists whose object is still only in the local folder."""
        out = set()
        for entry in manifest["checkpoints"]:
            rel = f"{MODELS_DIR}/{entry['name']}"
            try:
                st = os.stat(os.path.join(self.local_dir, MODELS_DIR, entry["name"]))
            except FileNotFoundError:
                continue  # in the store already (its local copy was evicted)
            if self._done.get(rel) != [st.st_size, st.st_mtime_ns]:
                out.add(entry["name"])
        return out

    def _commit_manifest(self, report: MirrorReport) -> dict[str, Any] | None:
        """Commits ``models.json`` without the entries whose object is not in the store yet.

        Returns:
            The manifest, when the store now holds it whole (every object it lists).
        """
        manifest, whole, sig = self._manifest()
        if sig is None:
            return None
        if self._done.get(MODELS_FILE) == sig:
            return manifest
        pending = self._unpublished(manifest)
        if not pending:  # these very bytes: a newer manifest may list an object not uploaded yet
            self._commit(report, MODELS_FILE, whole, sig)
            self._evict(manifest)
            return manifest
        partial_manifest = manifest_without(manifest, pending)
        data = dumps(partial_manifest)
        if data != self._partial_manifest:
            self._put(report, MODELS_FILE, lambda: self.storage.write_bytes(f"{self.prefix}/{MODELS_FILE}", data))
            self._partial_manifest = data
        self._evict(partial_manifest)
        return None

    def _evict(self, committed: dict[str, Any]) -> None:
        """Removes the local copies of the stored checkpoints a manifest the store holds lists."""
        for entry in committed["checkpoints"]:
            rel, path = f"{MODELS_DIR}/{entry['name']}", os.path.join(self.local_dir, MODELS_DIR, entry["name"])
            try:
                if self._done.get(rel) == [(st := os.stat(path)).st_size, st.st_mtime_ns]:
                    os.remove(path)  # the store keeps the only copy
            except FileNotFoundError:
                continue

    def _retire(self, report: MirrorReport, listing: dict[str, int], committed: dict[str, Any] | None) -> None:
        local = set(self._local_files())
        remote = set(self._done) | set(listing)
        doomed: list[str] = []
        for folder in _CHUNK_DIRS:
            names = [rel.split("/", 1)[1] for rel in remote if rel.startswith(f"{folder}/")]
            # each covered chunk is covered by a chunk already in the store
            doomed += [f"{folder}/{name}" for name in covered_chunks(names) if f"{folder}/{name}" not in local]
        if committed is not None:
            # a checkpoint leaves the folder only when a committed manifest lists it (evicted) or when
            # the producer unlists it: uploaded, gone and not listed means retired
            listed = {e["name"] for e in committed["checkpoints"]}
            doomed += [
                rel
                for rel in self._done
                if rel.startswith(f"{MODELS_DIR}/") and rel.split("/", 1)[1] not in listed and rel not in local
            ]
        for rel in doomed:
            if not self.active or self.run_deleted:
                raise _Stop
            try:
                self.storage.rm(f"{self.prefix}/{rel}")
            except Exception as err:  # retry next round
                report.error = err
                raise _Stop from err
            self._done.pop(rel, None)
            report.deleted.append(rel)
