"""The mirror: publishes a run's local folder to its store, the one upload engine of a run.

Producers write immutable files (chunks, closed event files, stored checkpoints) and small
documents into the run's local folder. A mirror *round* publishes them in the order that
keeps every remote reader consistent:

1. read the documents (``config.json``, ``run.json``, ``models.json``) as they are now;
2. upload the immutable files that are new, except checkpoints; only live chunks (a chunk
   another local chunk covers is garbage of a compaction);
3. commit ``config.json`` and ``run.json`` as read in step 1, so they describe only files
   that are already remote;
4. upload new checkpoints (``models/*``) one by one, removing the local file once it is
   remote (the store keeps it; the spool does not grow with every checkpoint), and after
   each commit ``models.json`` without the entries still to upload, so an entry never
   names a half-uploaded object and each stored checkpoint is listed at once;
5. retire: delete remote chunks that an uploaded chunk covers and remote checkpoints the
   committed manifest no longer lists.

A failed step ends the round; the next round starts over and skips what is done. What is
remote is recorded in the folder's ``.mirror.json`` (size and mtime per file), the only
state file. The same class serves the live run (a thread with back-off), ``finalize``
(rounds until a deadline) and ``lightning-tracker sync``. When the run folder is the
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
from lightning_tracker.format.documents import VERSIONS, manifest_without
from lightning_tracker.format.layout import (
    CONFIG_FILE,
    DATA_DIRS,
    DOCUMENTS,
    MIRROR_FILE,
    MODELS_DIR,
    MODELS_FILE,
    RUN_FILE,
    covered_chunks,
    is_private,
    live_chunks,
)
from lightning_tracker.storage import Storage, atomic_write

__all__ = ["Mirror", "MirrorReport"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0  # the longest wait between failed rounds of a live run
_PUBLISHED_DIRS = (*DATA_DIRS, MODELS_DIR)  # other folders (Lightning's checkpoints/) stay local


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
        local_path = getattr(storage, "local_path", None)
        # a local save_dir: the run folder is the store's own folder, already published
        self.in_place = local_path is not None and os.path.abspath(local_path(prefix)) == os.path.abspath(local_dir)
        self._done: dict[str, list[int]] = {}  # rel -> [size, mtime_ns] as published
        self._partial_manifest = b""  # the last models.json committed without entries still to upload
        self._lock = threading.Lock()  # one round at a time (live thread, finalize, sync)
        self._load_state()

    # -- state --------------------------------------------------------------------------
    def _load_state(self) -> None:
        try:
            with open(os.path.join(self.local_dir, MIRROR_FILE), "rb") as f:
                self._done.update(loads(f.read())["published"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no state yet: sync compares with the remote listing instead

    def _save_state(self) -> None:
        state = {"format_version": VERSIONS[MIRROR_FILE], "published": self._done}
        try:
            atomic_write(os.path.join(self.local_dir, MIRROR_FILE), dumps(state))
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
            dirnames[:] = [d for d in dirnames if not rel_dir and d in _PUBLISHED_DIRS]
            names = [n for n in files if not is_private(n)]
            if rel_dir in DATA_DIRS:
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
    def run_once(self, remote_listing: dict[str, int] | None = None) -> MirrorReport:
        """Publishes what changed and retires what is gone; never raises.

        Args:
            remote_listing: sizes of the files already in the store (``Storage.find`` of
                the run), from ``sync``: immutable files of the same size are not sent
                again, and covered chunks found there are retired.
        """
        report = MirrorReport()
        if self.in_place:
            return report
        with self._lock:
            try:
                self._round(report, remote_listing or {})
            except _Stop:
                pass
            report.pending = self.pending()
            self._save_state()
        return report

    def _round(self, report: MirrorReport, listing: dict[str, int]) -> None:
        documents = self._read_documents()  # before listing: they describe only files listed next
        local = self._local_files()
        for rel, sig in local.items():
            if rel not in DOCUMENTS and listing.get(rel) == sig[0]:
                self._done.setdefault(rel, sig)  # already remote (sync after a crash)
        todo = sorted(rel for rel, sig in local.items() if self._done.get(rel) != sig and rel not in DOCUMENTS)
        models = [rel for rel in todo if rel.startswith(f"{MODELS_DIR}/")]
        data = [rel for rel in todo if rel not in models]
        # only checkpoints the manifest read above lists: one stored since waits for the next round
        listed = _listed(documents)
        models = [rel for rel in models if rel.split("/", 1)[1] in listed]
        self._upload(report, data, local)
        for name in (CONFIG_FILE, RUN_FILE):
            self._commit(report, name, documents)
        for i, rel in enumerate(models):
            self._upload(report, [rel], local, evict=True)
            self._commit_manifest(report, documents, {m.split("/", 1)[1] for m in models[i + 1 :]})
        self._commit_manifest(report, documents, set())
        self._retire(report, listing, documents)

    def _read_documents(self) -> dict[str, tuple[bytes, list[int]]]:
        out = {}
        for name in (CONFIG_FILE, RUN_FILE, MODELS_FILE):
            path = os.path.join(self.local_dir, name)
            if self.skip(path):
                continue
            try:
                with open(path, "rb") as f:
                    st = os.fstat(f.fileno())
                    out[name] = (f.read(), [st.st_size, st.st_mtime_ns])
            except FileNotFoundError:
                continue
        return out

    def _put(self, report: MirrorReport, rel: str, send: Callable[[], Any]) -> None:
        try:
            send()
        except FileNotFoundError as err:
            if not os.path.exists(os.path.join(self.local_dir, *rel.split("/"))):
                return  # compacted away meanwhile; its replacement comes in a later round
            report.error = err  # the bucket or container is missing
            raise _Stop from err
        except Exception as err:  # the store is down: retry next round
            report.error = err
            raise _Stop from err
        report.uploaded.append(rel)

    def _upload(self, report: MirrorReport, rels: list[str], local: dict[str, list[int]], evict: bool = False) -> None:
        for rel in rels:
            path = os.path.join(self.local_dir, *rel.split("/"))
            self._put(report, rel, partial(self.storage.put_file, path, f"{self.prefix}/{rel}"))
            self._done[rel] = local[rel]
            if evict:
                try:
                    os.remove(path)  # the store keeps the only copy; the staging folder keeps none
                except FileNotFoundError:
                    pass
                self._save_state()

    def _commit(self, report: MirrorReport, name: str, documents: dict[str, tuple[bytes, list[int]]]) -> None:
        if name not in documents or self._done.get(name) == documents[name][1]:
            return
        data, sig = documents[name]
        self._put(report, name, lambda: self.storage.write_bytes(f"{self.prefix}/{name}", data))
        self._done[name] = sig

    def _commit_manifest(
        self, report: MirrorReport, documents: dict[str, tuple[bytes, list[int]]], pending: set[str]
    ) -> None:
        """Commits ``models.json`` as read, or without the entries whose objects are still to upload."""
        if not pending:
            self._commit(report, MODELS_FILE, documents)
            return
        if MODELS_FILE not in documents:
            return
        data = dumps(manifest_without(loads(documents[MODELS_FILE][0]), pending))
        if data != self._partial_manifest:
            self._put(report, MODELS_FILE, lambda: self.storage.write_bytes(f"{self.prefix}/{MODELS_FILE}", data))
            self._partial_manifest = data

    def _retire(
        self, report: MirrorReport, listing: dict[str, int], documents: dict[str, tuple[bytes, list[int]]]
    ) -> None:
        local = set(self._local_files())
        remote = set(self._done) | set(listing)
        doomed: list[str] = []
        for folder in DATA_DIRS:
            names = [rel.split("/", 1)[1] for rel in remote if rel.startswith(f"{folder}/")]
            # each covered chunk is covered by a chunk already in the store
            doomed += [f"{folder}/{name}" for name in covered_chunks(names) if f"{folder}/{name}" not in local]
        if MODELS_FILE in documents and self._done.get(MODELS_FILE) == documents[MODELS_FILE][1]:
            # every object uploaded was listed when it was uploaded: unlisted now means retired
            listed = _listed(documents)
            doomed += [rel for rel in self._done if rel.startswith(f"{MODELS_DIR}/")
                       and rel.split("/", 1)[1] not in listed and rel not in local]  # fmt: skip
        for rel in doomed:
            try:
                self.storage.rm(f"{self.prefix}/{rel}")
            except Exception as err:  # retry next round
                report.error = err
                raise _Stop from err
            self._done.pop(rel, None)
            report.deleted.append(rel)

    # -- engines ------------------------------------------------------------------------
    def serve(self, stop: threading.Event, wake: threading.Event, warn: Callable[..., None]) -> None:
        """The live run's mirror thread: a round each time ``wake`` is set, until ``stop`` is.

        A failed round is retried with exponential back-off (at most 30 s) and reported
        through ``warn(key, message, *args)``; training never waits for any of it.
        """
        _background_priority()
        failures = 0
        while not stop.is_set():
            wake.wait()
            wake.clear()
            if stop.is_set():
                break
            report = self.run_once()
            if report.error is None:
                failures = 0
                continue
            failures += 1
            delay = min(MAX_BACKOFF_S, 0.5 * 2**failures)
            warn("upload", "could not upload to %s (%s: %s); %d files wait in %s, retrying in %.0f s",
                 self.storage.url, type(report.error).__name__, report.error, len(report.pending), self.local_dir,
                 delay)  # fmt: skip
            stop.wait(delay)
            wake.set()

    def upload_until(self, deadline: float, progress: bool = False) -> tuple[MirrorReport, bool]:
        """Rounds with back-off until everything is published or ``time.monotonic()`` passes ``deadline``.

        The rounds run on a daemon thread, so a store call that hangs cannot hold the
        caller past the deadline.

        Args:
            deadline: a ``time.monotonic()`` value.
            progress: show the checkpoint bytes left on a terminal while waiting.

        Returns:
            The last round's report, and whether everything is published.
        """
        result: list[MirrorReport] = []

        def rounds() -> None:
            delay = 0.2
            while True:
                report = self.run_once()
                result.append(report)
                if report.complete or time.monotonic() >= deadline:
                    return
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 5.0)

        worker = threading.Thread(target=rounds, name="lightning-tracker-final-upload", daemon=True)
        total = self.pending_bytes() if progress else 0
        bar = _progress_bar(total) if total else None
        worker.start()
        try:
            while worker.is_alive() and time.monotonic() < deadline:
                worker.join(min(0.2, max(0.0, deadline - time.monotonic())))
                if bar is not None:
                    bar(total - self.pending_bytes())
        finally:
            if bar is not None:
                bar(None)
        report = result[-1] if result else MirrorReport(pending=self.pending())
        return report, report.complete and not worker.is_alive()


def _listed(documents: dict[str, tuple[bytes, list[int]]]) -> set[str]:
    """Names of the checkpoints the manifest snapshot lists."""
    if MODELS_FILE not in documents:
        return set()
    return {e["name"] for e in loads(documents[MODELS_FILE][0])["checkpoints"]}


def _background_priority() -> None:
    """Lowers this thread's CPU priority (Linux: per thread), so training keeps its cores."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _progress_bar(total: int) -> Callable[[int | None], None] | None:
    import sys

    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(TextColumn("uploading checkpoints"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   transient=True)  # fmt: skip
    task = bar.add_task("upload", total=total)
    bar.start()

    def update(done: int | None) -> None:
        if done is None:
            bar.stop()
        else:
            bar.update(task, completed=done)

    return update
