"""Mirror a run's local spool folder to its remote storage, one immutable object at a time.

A round uploads, in this order: new or changed files other than the mutable documents
(data chunks, closed event files, ``git.diff``, ``meta.json``), then the mutable
documents (config, summary, run), then deletes remote chunks that compaction removed
locally, but only when everything before succeeded and a remote chunk already covers
them, so a remote reader never misses a point. A round is idempotent, so
the same code serves the live run and ``lightning-tracker sync``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from lightning_tracker.run import DATA_DIRS, MUTABLE_FILES, SPOOL_FILE, parse_chunk_name
from lightning_tracker.storage import Storage, atomic_write

__all__ = ["Uploader", "UploadReport"]

log = logging.getLogger(__name__)

UPLOADED_FILE = ".uploaded.json"  # in the spool folder: (size, mtime) of each file known remote


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

