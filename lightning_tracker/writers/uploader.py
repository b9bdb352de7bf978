"""Mirror a run's local spool folder to its remote storage, one immutable object at a time.

A round uploads, in this order: new or changed files other than the mutable documents
(data chunks, closed event files, ``git.diff``, ``meta.json``), then the mutable
documents (config, then run), then deletes remote chunks that compaction removed
locally, but only when everything before succeeded and a remote chunk already covers
them, so a remote reader never misses a point. A round is idempotent, so
the same code serves the live run and ``lightning-tracker sync``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lightning_tracker.run import DATA_DIRS, MUTABLE_FILES, SPOOL_FILE, parse_chunk_name
from lightning_tracker.storage import Storage, atomic_write

__all__ = ["Uploader", "UploadReport"]

log = logging.getLogger(__name__)

UPLOADED_FILE = ".uploaded.json"  # in the spool folder: (size, mtime) of each file known remote
_MAX_BACKOFF_S = 30.0  # the longest wait between failed rounds of a live run


@dataclass
class UploadReport:
    """What one round did, and what is still only in the spool."""

    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def complete(self) -> bool:
        """Whether the remote copy now holds everything the spool held."""
        return not self.pending and self.error is None


class Uploader:
    """Mirrors one run's spool folder to ``storage`` under ``prefix``.

    Args:
        spool_dir: the local folder holding the run's files.
        storage: where the run lives.
        prefix: the run's path inside ``storage`` (``<project>/<run_id>``).
        session: the session whose compacted-away chunks may be deleted remotely.
        skip: returns True for local paths not to upload yet (a growing event file).
    """

    def __init__(
        self,
        spool_dir: str,
        storage: Storage,
        prefix: str,
        session: int,
        skip: Callable[[str], bool] | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.storage = storage
        self.prefix = prefix
        self.session = session
        self.skip = skip or (lambda _path: False)
        self._done: dict[str, tuple[int, int]] = {}  # rel -> (size, mtime_ns) uploaded
        self._lock = threading.Lock()  # one round at a time (live loop, finalize, sync)

    def mark_uploaded(self, rel: str) -> None:
        """Records that ``rel`` already exists remotely as it is locally."""
        st = os.stat(os.path.join(self.spool_dir, rel))
        self._done[rel] = (st.st_size, st.st_mtime_ns)

    def _local_files(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for dirpath, dirnames, files in os.walk(self.spool_dir):
            rel_dir = os.path.relpath(dirpath, self.spool_dir).replace(os.sep, "/")
            if rel_dir == ".":
                rel_dir = ""
            # checkpoints are handled by the checkpoint uploader, not mirrored here
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and (rel_dir or d in DATA_DIRS)]
            for name in files:
                if name.startswith(".") or name == SPOOL_FILE or name.endswith(".part"):
                    continue
                rel = f"{rel_dir}/{name}" if rel_dir else name
                path = os.path.join(dirpath, name)
                if self.skip(path):
                    continue
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                out[rel] = (st.st_size, st.st_mtime_ns)
        return out

    def serve(
        self,
        stop: threading.Event,
        wake: threading.Event,
        on_report: Callable[[UploadReport], None],
        warn: Callable[..., None],
    ) -> None:
        """The live run's upload thread: a round each time ``wake`` is set, until ``stop`` is.

        A failed round is retried with exponential back-off (at most 30 s) and reported
        through ``warn(key, message, *args)``; training never waits for any of it.
        """
        failures = 0
        while not stop.is_set():
            wake.wait()
            wake.clear()
            if stop.is_set():
                break
            report = self.run_once()
            on_report(report)
            if report.error is None:
                failures = 0
                continue
            failures += 1
            delay = min(_MAX_BACKOFF_S, 0.5 * 2**failures)
            warn("upload", "could not upload to %s (%s: %s); %d files wait in the spool %s, retrying in %.0f s",
                 self.storage.url, type(report.error).__name__, report.error, len(report.pending), self.spool_dir,
                 delay)  # fmt: skip
            stop.wait(delay)
            wake.set()

    def upload_until(self, deadline: float) -> tuple[UploadReport, bool]:
        """Upload rounds with back-off until everything is uploaded or ``time.monotonic()`` passes ``deadline``.

        The rounds run on a daemon thread, so a store call that hangs cannot hold the
        caller past the deadline.

        Returns:
            The last round's report, and whether the upload is complete.
        """
        result: list[UploadReport] = []

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
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        report = result[-1] if result else UploadReport(pending=self.pending())
        return report, report.complete and not worker.is_alive()

    def pending(self) -> list[str]:
        """Files that differ from what was uploaded."""
        return sorted(rel for rel, sig in self._local_files().items() if self._done.get(rel) != sig)

    def run_once(self, remote_listing: dict[str, int] | None = None) -> UploadReport:
        """Uploads what changed and propagates compaction; never raises.

        Args:
            remote_listing: sizes of the files already remote (from ``Storage.find``),
                used by ``sync`` to skip immutable files that are already there.
        """
        with self._lock:
            return self._round(remote_listing)

    def _round(self, remote_listing: dict[str, int] | None) -> UploadReport:
        report = UploadReport()
        local = self._local_files()
        if remote_listing:
            for rel, (size, mtime) in local.items():
                if rel not in MUTABLE_FILES and remote_listing.get(rel) == size:
                    self._done.setdefault(rel, (size, mtime))
        todo = [rel for rel, sig in local.items() if self._done.get(rel) != sig]
        # immutable data first, then the documents that describe it
        todo.sort(key=lambda rel: (rel in MUTABLE_FILES, MUTABLE_FILES.index(rel) if rel in MUTABLE_FILES else 0, rel))
        for i, rel in enumerate(todo):
            try:
                self.storage.put_file(os.path.join(self.spool_dir, rel), f"{self.prefix}/{rel}")
            except FileNotFoundError as err:
                if not os.path.exists(os.path.join(self.spool_dir, rel)):
                    continue  # compacted away meanwhile; its replacement is in a later round
                report.error = err  # the bucket or container is missing
                report.pending = todo[i:]
                return report
            except Exception as err:  # noqa: BLE001 - the store is down: retry next round
                report.error = err
                report.pending = todo[i:]
                return report
            self._done[rel] = local[rel]
            report.uploaded.append(rel)
        report.error = self._propagate_deletions(local, report)
        report.pending = self.pending()
        self._save_state()
        return report

    def _save_state(self) -> None:
        """Persists what is remote, so ``sync`` re-uploads nothing a live run already sent."""
        try:
            atomic_write(os.path.join(self.spool_dir, UPLOADED_FILE), json.dumps(self._done).encode())
        except OSError:
            pass  # only an optimisation: sync falls back to comparing sizes

    def load_state(self) -> None:
        """Reads what an earlier uploader of this spool folder recorded as remote."""
        try:
            with open(os.path.join(self.spool_dir, UPLOADED_FILE), "rb") as f:
                self._done.update({k: tuple(v) for k, v in json.load(f).items()})  # type: ignore[misc]
        except (OSError, ValueError):
            pass

    def _propagate_deletions(self, local: dict[str, tuple[int, int]], report: UploadReport) -> BaseException | None:
        gone = [
            rel for rel in self._done
            if rel not in local and rel.split("/", 1)[0] in DATA_DIRS
            and not os.path.exists(os.path.join(self.spool_dir, rel))
        ]  # fmt: skip
        if not gone:
            return None
        uploaded = [(rel.split("/", 1)[0], p) for rel in self._done if (p := parse_chunk_name(rel.rsplit("/", 1)[-1]))]
        for rel in gone:
            folder, name = rel.split("/", 1)
            parsed = parse_chunk_name(name)
            if parsed is None or parsed[0] != self.session:
                self._done.pop(rel, None)
                continue
            session, first, last = parsed
            covered = any(
                d == folder and s == session and f <= first and last <= l and (f, l) != (first, last)
                for d, (s, f, l) in uploaded
            )
            if not covered:
                continue  # its replacement is not remote yet: keep the remote copy for now
            try:
                self.storage.rm(f"{self.prefix}/{rel}")
            except Exception as err:  # noqa: BLE001 - retry next round
                return err
            self._done.pop(rel, None)
            report.deleted.append(rel)
        return None

