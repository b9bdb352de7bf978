"""The run writer: buffering on the caller's thread, writing and uploading in the background.

The caller's thread only appends ``(key, step, time, value)`` tuples to a list. A
flusher thread turns them into Parquet chunks, TensorBoard events and the summary every
``flush_interval`` seconds; for remote storage an uploader thread mirrors the local
spool folder to the store, so a slow or unreachable store never blocks training and the
backlog lives on disk, not in memory.

The parts it drives live beside it: value checks in ``points``, resuming in ``resume``,
chunk writing in ``metrics`` and ``histograms``, events in ``tensorboard`` and upload
rounds in ``uploader``.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from lightning_tracker import _config, _environment
from lightning_tracker.run import (
    CONFIG_FILE,
    FORMAT_VERSION,
    GIT_DIFF_FILE,
    META_FILE,
    RUN_FILE,
    SPOOL_FILE,
    dumps,
    writer_identity,
)
from lightning_tracker.storage import Storage, atomic_write
from lightning_tracker.sync import spool_dir_for
from lightning_tracker.writers.histograms import HistogramWriter, norm_points, to_table
from lightning_tracker.writers.metrics import MetricsWriter
from lightning_tracker.writers.points import Warner, coerce_step, coerce_value, storable, to_float
from lightning_tracker.writers.resume import load_existing, next_session
from lightning_tracker.writers.tensorboard import TensorBoardWriter
from lightning_tracker.writers.uploader import Uploader, UploadReport

__all__ = ["RunWriter"]

log = logging.getLogger(__name__)

# remote stores: close and upload the event file this often (each closed file is uploaded once)
_TB_ROTATE_S = float(os.environ.get("LIGHTNING_TRACKER_TB_ROTATE_S", "120"))


class RunWriter:
    """Writes one run. Created on rank 0 only; other ranks never touch storage.

    Args:
        storage: where the run lives.
        project: the project folder name.
        run_id: the run folder name.
        name: readable name shown in tables; on resume, None keeps the stored one.
        default_name: the name of a new run when ``name`` is None.
        group: optional group (for example a sweep or a DDP job family).
        tags: labels to filter by.
        notes: free text.
        flush_interval: seconds between background flushes.
        tensorboard: whether to also write TensorBoard event files.
        spool_root: local folder for remote stores' spool.
        offline: keep everything in the spool; upload later with ``lightning-tracker sync``.
        resume: look for an existing run with this id in the store (False for a freshly
            generated id: no request is made before training starts).
    """

    def __init__(
        self,
        storage: Storage,
        project: str,
        run_id: str,
        *,
        name: str | None = None,
        default_name: str = "run",
        group: str | None = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        flush_interval: float = 2.0,
        tensorboard: bool = True,
        spool_root: str | None = None,
        offline: bool = False,
        resume: bool = True,
    ) -> None:
        self.storage = storage
        self.prefix = f"{project}/{run_id}"
        self.remote = not storage.is_local
        self.local_dir = (
            os.path.join(spool_dir_for(storage, spool_root), project, run_id)
            if self.remote
            else storage.path(self.prefix)
        )
        self.offline = offline
        self.flush_interval = float(flush_interval)
        self.run_doc: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "id": run_id,
            "name": name or default_name,
            "project": project,
            "group": group,
            "tags": list(tags or []),
            "notes": notes,
            "status": "running",
            "start_time": time.time(),
            "end_time": None,
            "heartbeat": None,
            "heartbeat_interval_s": self.flush_interval,
            "sessions": [],
            "writer": writer_identity(),
            "url": storage.full_url(self.prefix),
        }
        self.config: dict[str, Any] = {"format_version": FORMAT_VERSION, "nested": {}, "flat": {}, "history": []}
        self._config_dirty = False
        self._warned_config: set[str] = set()
        self._points: list[tuple[Any, ...]] = []
        self._captures: list[Any] = []  # histogram captures, resolved on the flusher thread
        self._retry: list[tuple[Any, ...]] = []
        self._auto_step = 0
        self._warn = Warner(log)
        self._io_lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._upload_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_report: UploadReport | None = None
        self._tb_opened_at = time.monotonic()
        self._open = False
        self.pid = os.getpid()
        self._explicit = {"name": name, "group": group, "notes": notes}
        probe_remote = resume and self.remote and not offline
        existing = load_existing(storage, self.prefix, self.local_dir, probe_remote=probe_remote)
        self._resumed = existing is not None
        self._downloaded = existing.downloaded if existing is not None else []
        if existing is not None:
            for key in ("start_time", "sessions", "name", "group", "notes"):
                if existing.doc.get(key) is not None and self._explicit.get(key) is None:
                    self.run_doc[key] = existing.doc[key]
            self.run_doc["tags"] = sorted(set(existing.doc.get("tags") or []) | set(self.run_doc["tags"]))
            self.config = existing.config or self.config
        self.session = next_session(self.local_dir, len(self.run_doc["sessions"]))
        self.metrics = MetricsWriter(self.local_dir, self.session)
        self.histograms = HistogramWriter(self.local_dir, self.session)
        if self._resumed:
            self.metrics.recompute_summary()
            steps = [s["last_step"] for s in self.metrics.summary.values() if s.get("last_step") is not None]
            self._auto_step = max(steps, default=-1) + 1
        self.tensorboard = TensorBoardWriter(self.local_dir, session=self.session) if tensorboard else None
        self.uploader = (
            Uploader(self.local_dir, storage, self.prefix, self.session, skip=self._growing)
            if self.remote
            else None
        )
        if self.uploader is not None:
            self.uploader.load_state()
            for rel in self._downloaded:
                self.uploader.mark_uploaded(rel)
        self._start_session()
        _install_excepthook()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- opening ----------------------------------------------------------------------
    def _start_session(self) -> None:
        os.makedirs(self.local_dir, exist_ok=True)
        meta, diff = _environment.collect()
        session = {"index": self.session, "start_time": time.time(), **writer_identity(),
                   "command": meta["command"], "git_commit": (meta["git"] or {}).get("commit")}  # fmt: skip
        self.run_doc["sessions"].append(session)
        if self.remote:
            atomic_write(
                os.path.join(self.local_dir, SPOOL_FILE),
                dumps({"format_version": FORMAT_VERSION, "url": self.storage.url, "prefix": self.prefix,
                       "session": self.session, "offline": self.offline}),  # fmt: skip
            )
        if not self._resumed:
            atomic_write(os.path.join(self.local_dir, META_FILE), dumps({"format_version": FORMAT_VERSION, **meta}))
            if diff:
                atomic_write(os.path.join(self.local_dir, GIT_DIFF_FILE), diff.encode("utf-8"))
        self._config_dirty = True
        self._write_run_doc()
        self._start_threads()

    def _start_threads(self) -> None:
        self._stop.clear()
        self._open = True
        self.run_doc["status"] = "running"
        self.run_doc["end_time"] = None
        flusher = threading.Thread(target=self._flush_loop, name="lightning-tracker-flush", daemon=True)
        self._threads = [flusher]
        if self.uploader is not None and not self.offline:
            self._threads.append(
                threading.Thread(target=self._upload_loop, name="lightning-tracker-upload", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def ensure_open(self) -> None:
        """Reopens a run after :meth:`close` (Lightning logs again after ``finalize``)."""
        if not self._open:
            with self._io_lock:
                if not self._open:
                    self._start_threads()
                    self._write_run_doc()

    # -- the caller's thread ----------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None) -> None:
        """Buffers one value per metric; touches memory only."""
        if not self._open:
            self.ensure_open()
        now = time.time()
        if step is None:
            step = self._auto_step
        elif type(step) is not int:
            step = coerce_step(step, self._auto_step, self._warn)
        if step >= self._auto_step:
            self._auto_step = step + 1
        append = self._points.append
        for key, value in metrics.items():
            kind = type(value)
            if kind is float:
                append((key if type(key) is str else str(key), step, now, value))
            elif kind is int:
                append((key if type(key) is str else str(key), step, now, float(value)))
            else:
                value = coerce_value(key, value, self._warn)
                if value is not None:
                    append((str(key), step, now, value))

    def log_histograms(self, capture: Any) -> None:
        """Buffers one histogram capture (``GradientMonitor``); touches memory only.

        ``capture.resolve()`` is called on the flusher thread: it waits for the capture's
        device work and returns the columns of
        :data:`lightning_tracker.writers.histograms.SCHEMA`.
        """
        if not self._open:
            self.ensure_open()
        self._captures.append(capture)

    def _write_histograms(self) -> None:
        n = len(self._captures)
        captures = self._captures[:n]
        del self._captures[:n]
        tables = [to_table(c.resolve()) for c in captures]
        self.histograms.write_tables(tables)
        for table in tables:
            self._points.extend(norm_points(table))  # taken by this same flush
            if self.tensorboard is not None:
                self.tensorboard.write_histograms(table)

    def log_config(self, params: Any) -> None:
        """Merges hyperparameters into the config; a changed value is recorded in the history."""
        if not self._open:
            self.ensure_open()
        plain = _config.to_plain(params, self._warned_config)
        if not isinstance(plain, dict):
            plain = {"value": plain}
        with self._io_lock:
            nested = _config.merge(self.config["nested"], plain)
            flat = _config.flatten(nested)
            changes = _config.diff_flat(self.config["flat"], flat)
            if not changes:
                return
            if self.config["flat"]:
                self.config["history"].append({"time": time.time(), "step": self._auto_step, "changes": changes})
            self.config["nested"], self.config["flat"] = nested, flat
            self._config_dirty = True
        self._wake.set()

    def set_info(self, **fields: Any) -> None:
        """Updates run fields such as ``tags``, ``notes`` or ``group``."""
        with self._io_lock:
            self.run_doc.update(fields)
        self._wake.set()

    # -- background work --------------------------------------------------------------
    def _take_points(self) -> list[tuple[Any, ...]]:
        points = self._points
        n = len(points)
        batch = self._retry + points[:n]
        del points[:n]
        self._retry = []
        if any(type(p[3]) is not float for p in batch):
            batch = [p if type(p[3]) is float else (p[0], p[1], p[2], to_float(p[3])) for p in batch]
        return batch

    def flush(self) -> None:
        """Writes everything buffered so far; returns when it is on local disk."""
        with self._io_lock:
            self._flush_once()

    def _guard(self, stage: str, fn: Any, *args: Any) -> Any:
        """Runs one stage of a flush; a failure is warned about and never stops the others."""
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - the writer must never break training
            self._warn(stage, "lightning_tracker could not %s in %s (%s: %s); retrying at the next flush",
                       stage, self.local_dir, type(err).__name__, err)  # fmt: skip
            return None

    def _write_points(self, batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        try:
            self.metrics.write(batch)
            return batch
        except OSError as err:
            self._retry = batch + self._retry
            self._warn("write", "could not write metrics to %s (%s); %d points kept in memory "
                       "and retried at the next flush", self.local_dir, err, len(self._retry))  # fmt: skip
            return []
        except Exception:  # noqa: BLE001 - a point the columnar format cannot hold
            good = [p for p in batch if storable(p)]
            for key, step, _, value in (p for p in batch if not storable(p)):
                self._warn(f"bad:{key!r}", "metric %r at step %r with value %r cannot be stored; skipped",
                           key, step, value)  # fmt: skip
            if len(good) == len(batch):
                raise
            return self._write_points(good) if good else []

    def _flush_once(self) -> None:
        if self._captures:
            self._guard("write histograms", self._write_histograms)
            self._guard("compact histograms", self.histograms.compact)
        batch = self._take_points()
        if batch:
            batch = self._write_points(batch)
        if batch and self.tensorboard is not None:
            self._guard("write TensorBoard events", self.tensorboard.write_scalars, batch)
            self._guard("flush TensorBoard events", self.tensorboard.flush)
        if self._config_dirty:
            self._guard("write the config", self._write_config)
        if batch:
            self._guard("compact metrics", self.metrics.compact)
        self._guard("write the run document", self._write_run_doc)
        if self.remote and self.tensorboard is not None:
            if time.monotonic() - self._tb_opened_at >= _TB_ROTATE_S:
                self._guard("rotate TensorBoard events", self.tensorboard.rotate)
                self._tb_opened_at = time.monotonic()
        self._upload_wake.set()

    def _write_config(self) -> None:
        atomic_write(os.path.join(self.local_dir, CONFIG_FILE), dumps(self.config))
        self._config_dirty = False

    def _write_run_doc(self) -> None:
        # the summary and the flat hyperparameters ride in run.json: one read per run for a runs table
        self.run_doc["heartbeat"] = time.time()
        self.run_doc["params"] = self.config["flat"]
        self.run_doc["summary"] = self.metrics.summary
        atomic_write(os.path.join(self.local_dir, RUN_FILE), dumps(self.run_doc))

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self._io_lock:
                    if self._open:
                        self._flush_once()
            except Exception:  # noqa: BLE001 - the writer must never die silently
                log.exception("lightning_tracker: background flush failed; retrying")

    def _growing(self, path: str) -> bool:
        return self.tensorboard is not None and path == self.tensorboard.active_file

    def _upload_loop(self) -> None:
        def on_report(report: UploadReport) -> None:
            self._last_report = report

        self.uploader.serve(self._stop, self._upload_wake, on_report, self._warn)  # type: ignore[union-attr]

    # -- closing ----------------------------------------------------------------------
    def close(self, status: str = "finished", timeout: float = 60.0) -> UploadReport | None:
        """Flushes, compacts, writes the final status and uploads within ``timeout`` seconds.

        Returns:
            For remote storage, what the last upload round did (``complete`` or not).
        """
        if not self._open:
            return self._last_report
        deadline = time.monotonic() + timeout
        with self._io_lock:
            self._signal_stop()
            try:
                self._guard("flush", self._flush_once)
                self._guard("compact metrics", self.metrics.compact, True)
                self._guard("compact histograms", self.histograms.compact, True)
                self._guard("summarize metrics", self.metrics.recompute_summary)
                if self.tensorboard is not None:
                    last = {k: s["last"] for k, s in self.metrics.summary.items()}
                    self._guard("write TensorBoard hparams", self.tensorboard.write_hparams, self.config["flat"], last)
                    self._guard("close TensorBoard events", self.tensorboard.close)
            finally:
                self.run_doc["status"] = status
                self.run_doc["end_time"] = time.time()
                self._guard("write the run document", self._write_run_doc)
                self._open = False
        self._join_threads(deadline)
        if self.uploader is None:
            return None
        if self.offline:
            log.warning("run %s is offline: its files are in %s; upload them with: lightning-tracker sync %s",
                        self.prefix, self.local_dir, self.local_dir)  # fmt: skip
            return None
        return self._final_upload(deadline)

    def _signal_stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._upload_wake.set()

    def _join_threads(self, deadline: float) -> None:
        """Waits for the background threads, at most 5 s each and never past ``deadline``."""
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, min(5.0, deadline - time.monotonic())))

    def suspend(self) -> None:
        """Hands the run over to another process (``ddp_spawn``): writes what is buffered and
        stops this process's threads without a final status; the other process resumes it."""
        if not self._open:
            return
        with self._io_lock:
            self._signal_stop()
            self._guard("flush", self._flush_once)
            self._guard("close TensorBoard events", self.tensorboard.close if self.tensorboard else lambda: None)
            self._open = False
        self._join_threads(time.monotonic() + 5.0)
        if self.uploader is not None and not self.offline:
            self.uploader.run_once()

    def _final_upload(self, deadline: float) -> UploadReport:
        report, finished = self.uploader.upload_until(deadline)  # type: ignore[union-attr]
        self._last_report = report
        if finished:
            log.info("run %s uploaded to %s", self.prefix, self.storage.full_url(self.prefix))
        else:
            why = f"{type(report.error).__name__}: {report.error}" if report.error else "timed out"
            log.warning(
                "could not upload everything of run %s to %s (%s); %d files are kept in the spool %s. "
                "Upload them later with: lightning-tracker sync %s",
                self.prefix, self.storage.url, why, len(report.pending) or 1, self.local_dir, self.local_dir,
            )  # fmt: skip
        return report


_uncaught: list[BaseException] = []


def _install_excepthook() -> None:
    previous = sys.excepthook
    if getattr(previous, "_lightning_tracker", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        _uncaught.append(value)
        previous(kind, value, tb)

    hook._lightning_tracker = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _close_at_exit(ref: weakref.ref[RunWriter]) -> None:
    writer = ref()
    if writer is not None and writer._open:
        try:
            writer.close("failed" if _uncaught else "finished", timeout=30.0)
        except Exception:  # noqa: BLE001 - never raise during interpreter exit
            log.exception("lightning_tracker: closing run %s at exit failed", writer.prefix)
