"""The run writer: one run as a pipeline of producers, one flusher, one media encoder and one mirror.

The caller's thread only appends to memory: ``(key, step, time, value)`` points, histogram
captures, media snapshots, checkpoint snapshots (a hard link). One *flusher* thread drains
the producers every ``flush_interval`` seconds, each writing immutable files into the run's
local folder — metric chunks, histogram chunks, TensorBoard events, the media index, stored
checkpoints — and then the documents that describe them (``config.json``, ``models.json``,
``run.json`` with its heartbeat). One *media encoder* thread (:meth:`.MediaProducer.serve`)
encodes images and tables into ``media-files/`` with a bounded queue, so the flusher — metric
points and the heartbeat — never waits behind media. One *mirror* thread (:mod:`.mirror`)
publishes the folder to a remote store, objects before documents, so a slow or unreachable
store never blocks training and the backlog lives on disk. For a local ``save_dir`` the run
folder is the store's folder: the same files, nothing to mirror. Samplers (``SystemMonitor``)
are called by the flusher too.

``close`` (``finalize``) gives the media backlog at most part of its timeout (all of it but
a fifth on a local store, half of it when uploads follow); what is still not encoded then is
given up with a warning that counts it, so ``finalize_timeout`` holds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from lightning_tracker._settings import KEEP_SPOOL, PROBE_TIMEOUT_S, TB_ROTATE_S
from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import heartbeat_refresh_s
from lightning_tracker.format.layout import ALERTS_FILE, CONFIG_FILE, new_writer_key
from lightning_tracker.storage import Storage
from lightning_tracker.storage.changes import tell_index
from lightning_tracker.writers import mirror_loops
from lightning_tracker.writers._exit import close_at_exit
from lightning_tracker.writers.alerts import AlertProducer, AlertRoute
from lightning_tracker.writers.checkpoints import CheckpointProducer
from lightning_tracker.writers.deletion import DeletionWatch
from lightning_tracker.writers.histograms import Capture, HistogramProducer
from lightning_tracker.writers.late_merge import adopt_documents, free_session, renumber_chunks
from lightning_tracker.writers.media import MediaProducer, Snapshot
from lightning_tracker.writers.metrics import MetricsProducer
from lightning_tracker.writers.mirror import Mirror, MirrorReport
from lightning_tracker.writers.points import PointBuffer, Warner, coerce_step
from lightning_tracker.writers.resume import (
    RemoteProbe,
    load_existing,
    next_session,
    warn_if_written_now,
    warn_new_run,
)
from lightning_tracker.writers.run_info import RunInfo
from lightning_tracker.writers.spool import SpoolRelease, spool_run_dir, write_spool
from lightning_tracker.writers.tensorboard import TensorBoardWriter

__all__ = ["RunWriter"]

log = logging.getLogger(__name__)


Sampler = Callable[[], "tuple[Mapping[str, Any], int | None]"]  # () -> (metrics, step)


class RunWriter:
    """Writes one run. Created on rank 0 only; other ranks never touch storage.

    The logger talks to it through its methods only: ``log_*`` append to memory on the
    caller's thread, ``flush``, ``close`` and ``suspend`` drive the pipeline, and a few
    read-only properties say where the run is. Its producers, flusher and mirror are its own.

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
        require: ``"allow"`` | ``"must"`` | ``"never"``: what the id must name, checked before anything is
            written (raises as :func:`~lightning_tracker.writers.resume.load_existing`); None checks nothing.
        keep_spool: keep the spool folder after a complete upload; None: ``$LIGHTNING_TRACKER_KEEP_SPOOL``.
        alerts: where alerts go and which automatic ones are raised (None: recorded in the run only).
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
        require: str | None = None,
        keep_spool: bool | None = None,
        alerts: AlertRoute | None = None,
    ) -> None:
        self._storage = storage
        self._prefix = f"{project}/{run_id}"
        self._remote = not storage.is_local
        local_path = storage.local_path(self._prefix)
        self._local_dir = spool_run_dir(storage, project, run_id, spool_root) if local_path is None else local_path
        self._offline = offline
        self._flush_interval = float(flush_interval)
        self._info = RunInfo(
            run_id,
            project,
            name,
            default_name,
            group,
            list(tags or []),
            notes,
            self._flush_interval,
            storage.full_url(self._prefix),
        )
        self._warn = Warner(log)  # warnings for the user, at most one a minute per key
        self._points = PointBuffer(self._warn)
        self._samplers: dict[str, tuple[Sampler, float, float, str]] = {}  # name -> (fn, every_s, due, prefix)
        self._io_lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._mirror_wake = threading.Event()
        self._media_stop = threading.Event()  # the media encoder's: it drains while close() flushes
        self._threads: list[threading.Thread] = []
        self._last_report: MirrorReport | None = None
        self._tb_opened_at = time.monotonic()
        self._tb_rotate_s = TB_ROTATE_S.get()  # read once: a bad value fails here, not in the flusher
        self._open = False
        self._pid = os.getpid()  # a forked child inherits the object, not the threads
        probe_remote = resume and self._remote and not offline
        keep = KEEP_SPOOL.get() if keep_spool is None else keep_spool
        # the spool folder is claimed before the run is downloaded into it: an earlier writer of
        # this run in this process, collected meanwhile, must not remove it under this one
        in_place = local_path is not None  # the run folder is the store's own (Mirror.in_place): no spool
        self._spool_release = None if in_place or keep else SpoolRelease(self._local_dir, self.url)
        if self._spool_release is not None:  # spool.SpoolRelease: after a confirmed upload, when this writer is done
            # (also when this __init__ raises); before close_at_exit: at exit it runs after the close
            weakref.finalize(self, self._spool_release)
        existing, self._probe = load_existing(
            storage,
            self._prefix,
            self._local_dir,
            probe_remote=probe_remote,
            require=require if resume else None,
            document=dumps(self._info.doc),  # resume="never" creates the run with it, atomically
        )
        self._resumed = existing is not None
        self._warn_if_new = require == "allow" and not self._resumed  # when the store answers late
        if existing is not None:
            warn_if_written_now(existing.doc, self._prefix)
            self._info.adopt(existing.doc, existing.config)
        self._session = next_session(self._local_dir, len(self._info.doc["sessions"]))
        self._writer_key = new_writer_key()  # in this session's chunk names: no other process writes them
        self._metrics = MetricsProducer(self._local_dir, self._session, self._writer_key)
        if self._resumed:
            self._metrics.load_summary()
            self._points.next_step = self._next_step_after_summary()
        self._tensorboard = TensorBoardWriter(self._local_dir, session=self._session) if tensorboard else None
        self._histograms = HistogramProducer(
            self._local_dir, self._session, self._writer_key, self._tensorboard, self._warn
        )
        self._media = MediaProducer(self._local_dir, self._session, self._writer_key, self._tensorboard, self._warn)
        self._checkpoints: CheckpointProducer | None = None
        self._alerts = AlertProducer(self._local_dir, alerts or AlertRoute(None), self._identity)
        self._mirror = Mirror(self._local_dir, storage, self._prefix, skip=self._growing)
        self._mirror.active = self._probe is None
        self._deletion = DeletionWatch(  # rm --force while it trains: found at the heartbeat cadence
            storage, self._prefix, self._local_dir, heartbeat_refresh_s(self._flush_interval), self._stop_publishing
        )
        for rel in existing.downloaded if existing is not None else []:
            self._mirror.mark_published(rel)
        self._start_session()
        close_at_exit(self)

    # -- where the run is ----------------------------------------------------------------
    @property
    def name(self) -> str:
        """The run's readable name (the stored one once a resumed run's store answered)."""
        return self._info.doc["name"]

    @property
    def prefix(self) -> str:
        """``<project>/<run id>``: the run's folder in its store."""
        return self._prefix

    @property
    def url(self) -> str:
        """Where the run is stored, without credentials."""
        return self._storage.full_url(self._prefix)

    @property
    def local_dir(self) -> str:
        """The local folder written first: the store's own folder, or the remote store's spool."""
        return self._local_dir

    @property
    def is_open(self) -> bool:
        """Whether the run is open: its threads run and ``close`` has work to do."""
        return self._open

    @property
    def forked(self) -> bool:
        """Whether this is a forked child's copy: its threads stayed in the parent, so it cannot write."""
        return self._pid != os.getpid()

    # -- opening ------------------------------------------------------------------------
    def _start_session(self) -> None:
        os.makedirs(self._local_dir, exist_ok=True)
        if not self._mirror.in_place:
            write_spool(self._local_dir, self._storage, self._prefix, self._session, self._offline)
        self._info.start_session(self._local_dir, self._session, self._writer_key, first=not self._resumed)
        self._start_threads()
        self._info.write(self._local_dir, self._metrics.summary)
        self._tell_index("resume" if self._resumed else "start")

    def _start_threads(self) -> None:
        self._stop.clear()
        self._open = True
        self._info.set_info(status="running", end_time=None)
        self._media_stop = threading.Event()  # new: an encoder still finishing an item after close() stops
        self._threads = [
            threading.Thread(target=self._flush_loop, name="lightning-tracker-flush", daemon=True),
            threading.Thread(
                target=self._media.serve, args=(self._media_stop,), name="lightning-tracker-media", daemon=True
            ),
        ]
        if not self._offline and not self._mirror.in_place:
            self._threads.append(
                threading.Thread(
                    target=mirror_loops.serve,
                    args=(self._mirror, self._stop, self._mirror_wake, self._warn, self._deletion.poll),
                    name="lightning-tracker-mirror",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()

    def ensure_open(self) -> bool:
        """Reopens a run after :meth:`close` (Lightning logs again after ``finalize``), unless it was
        deleted meanwhile (``rm``): returns whether the run is open."""
        if not self._open:
            with self._io_lock:
                if not self._open and not self._deletion.deleted:
                    if self._spool_release is not None:
                        self._spool_release.confirmed = False  # written to again: not uploaded yet
                    self._mirror.active = self._probe is None
                    self._start_threads()
                    self._info.write(self._local_dir, self._metrics.summary)
                    self._tell_index("resume")
        return self._open

    # -- the caller's thread ------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None) -> None:
        """Buffers one value per metric; touches memory only."""
        if not self._open and not self.ensure_open():
            return
        self._points.add(metrics, step)

    def log_histograms(self, capture: Capture, metric_prefix: str = "") -> None:
        """Buffers one histogram capture; touches memory only.

        ``capture.resolve()`` runs on the flusher thread: it waits for the capture's device
        work and returns the histogram columns and the metric points derived from them,
        whose keys get ``metric_prefix``.
        """
        if not self._open and not self.ensure_open():
            return
        self._histograms.add(capture, metric_prefix)

    def log_media(self, snapshot: Snapshot | None) -> None:
        """Queues a media snapshot (``log_image``, ``log_text``, ``log_table``); touches memory only, never waits.

        The queue is bounded (:data:`~lightning_tracker.writers.media.MEDIA_MEMORY_BYTES`): a
        snapshot beyond the bound is left out, counted and warned about.
        """
        if snapshot is not None:
            if not self._open and not self.ensure_open():
                return
            self._media.add(snapshot)

    def log_config(self, params: Any) -> None:
        """Merges hyperparameters into the config; a changed value is recorded in the history."""
        if not self._open and not self.ensure_open():
            return
        if self._info.log_config(params, self._points.next_step):
            self._wake.set()

    def set_info(self, **fields: Any) -> None:
        """Updates run fields such as ``tags``, ``notes`` or ``group``."""
        self._info.set_info(**fields)
        self._wake.set()

    def record_monitor(self, callback: Any) -> None:
        """Records the metric a ``ModelCheckpoint`` monitors (the first one that monitors one wins)."""
        self._info.record_monitor(callback)

    def record_monitors(self, trainer: Any) -> None:
        """Records the metric ``trainer``'s first monitoring callback watches."""
        self._info.record_monitors(trainer)

    def alert(self, title: str, text: str, level: str = "info") -> None:
        """Records an alert in the run and queues it for the webhook; touches memory only."""
        if not self._open and not self.ensure_open():
            return
        self._alerts.alert(title, text, level)
        self._wake.set()  # recorded by the next flush, now

    def _identity(self) -> dict[str, Any]:
        doc = self._info.doc
        return {"project": doc["project"], "id": doc["id"], "name": doc["name"], "status": doc["status"]}

    def warn(self, key: str, message: str, *args: Any) -> None:
        """Warns the user (``message % args``) at most once a minute per ``key``."""
        self._warn(key, message, *args)

    def media_step(self, step: Any) -> int:
        """The step a media call is stored at: ``step`` as an integer (a bad one is warned about
        and replaced), or the step metrics were last logged at when it is None."""
        last = max(self._points.next_step - 1, 0)
        return last if step is None else coerce_step(step, last, self._warn)

    def save_checkpoint(self, callback: Any, log_model: bool | str) -> CheckpointProducer | None:
        """Snapshots what a ``ModelCheckpoint`` just saved (a hard link); stored by the flusher.

        Returns:
            The run's checkpoint producer (None: the run was deleted, and closed, before any save).
        """
        if not self._open and not self.ensure_open():
            return self._checkpoints  # deleted and closed: nothing is kept
        if self._checkpoints is None:
            self._checkpoints = CheckpointProducer(self._local_dir, log_model, on_object=self._mirror_wake.set)
        self._checkpoints.on_save(callback)
        self._wake.set()  # stored by the next flush, now: ModelCheckpoint may replace it soon
        return self._checkpoints

    def add_sampler(self, name: str, sampler: Sampler, every_s: float, metric_prefix: str = "") -> None:
        """Calls ``sampler()`` on the flusher thread every ``every_s`` seconds and logs what it returns."""
        self._samplers[name] = (sampler, float(every_s), time.monotonic(), metric_prefix)
        self._wake.set()  # the flusher's wait was planned without it

    def remove_sampler(self, name: str) -> None:
        """Stops calling the sampler ``name``."""
        self._samplers.pop(name, None)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Each metric's summary (``count``, ``min``, ``max``, ``last``, ...) as the last flush wrote it: a copy."""
        with self._io_lock:  # the flusher replaces it
            return {key: dict(stats) for key, stats in self._metrics.summary.items()}

    def buffered_points(self) -> int:
        """How many metric points wait in memory for the next flush (an outage keeps this bounded)."""
        return len(self._points)

    # -- the flusher thread -------------------------------------------------------------
    def flush(self) -> None:
        """Writes everything buffered so far; returns when it is on local disk.

        Media logged so far is encoded first (after the encoder thread's current item), unless
        the disk refuses it: then it stays in memory, retried, and this returns.
        """
        if not self._open and self._deletion.deleted:
            return  # deleted (rm) and closed: its folder is gone and stays gone
        self._media.encode()
        with self._io_lock:
            self._flush_once()

    def upload(self, timeout: float) -> bool:
        """Publishes what is on local disk now, retrying with back-off for at most ``timeout`` seconds.

        The rounds run beside the background mirror's (one at a time: they share its lock).

        Returns:
            Whether the store holds everything the local folder held (always True for a local store).
        """
        return mirror_loops.upload_until(self._mirror, time.monotonic() + timeout)[1]

    def pending_uploads(self) -> list[str]:
        """The files, relative to the run folder, written locally and not yet in the store."""
        return self._mirror.pending()

    def _guard(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs one stage of a flush; a failure is warned about and never stops the others."""
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - the writer must never break training
            self._warn(
                stage,
                "lightning_tracker could not %s in %s (%s: %s); retrying at the next flush",
                stage,
                self._local_dir,
                type(err).__name__,
                err,
            )
            return None

    def _sample(self) -> None:
        now = time.monotonic()
        for name, (sampler, every, due, prefix) in list(self._samplers.items()):
            if now >= due:
                self._samplers[name] = (sampler, every, now + every, prefix)
                metrics, step = sampler()
                # memory only, never ensure_open: a sample taken while close() runs must not reopen the run
                self._points.add({f"{prefix}{k}": v for k, v in metrics.items()}, step)

    def _flush_once(self) -> None:
        if self._probe is not None and (late := self._probe.take()) is not None:
            self._probe = None if late.error is None else RemoteProbe(self._storage, self._prefix, self._local_dir)
            if late.error is None:
                self._guard("merge the stored run", self._merge_stored, late)
                self._mirror.active = True  # held until now: nothing stored was overwritten
        if self._histograms.pending:
            self._points.extend(self._guard("write histograms", self._histograms.flush) or [])  # taken by this flush
            self._guard("compact histograms", self._histograms.compact)
        if self._media.pending:  # the index rows of what the encoder stored; the encoding is not ours
            self._guard("write media", self._media.write_index)
            self._guard("compact media", self._media.compact)
        batch = self._points.take()
        if batch:
            batch = self._points.write(batch, self._metrics.write, self._local_dir)
        if batch and self._tensorboard is not None:
            self._guard("write TensorBoard events", self._tensorboard.write_scalars, batch)
            self._guard("flush TensorBoard events", self._tensorboard.flush)
        if batch:
            self._guard("compact metrics", self._metrics.compact)
            self._guard(
                "watch metrics for alerts", self._alerts.watch, batch, (self._info.doc["monitor"] or {}).get("name")
            )
        self._guard("write alerts", self._alerts.write)
        if self._checkpoints is not None and self._probe is None:  # names follow the stored manifest
            self._guard("store checkpoints", self._checkpoints.flush)
        self._guard("write the run documents", self._info.write, self._local_dir, self._metrics.summary)
        rotate_due = time.monotonic() - self._tb_opened_at >= self._tb_rotate_s
        if self._remote and self._tensorboard is not None and rotate_due:
            self._guard("rotate TensorBoard events", self._tensorboard.rotate)
            self._tb_opened_at = time.monotonic()
        if self._mirror.in_place:  # a local store's mark is one stat away; a remote one is the mirror thread's
            self._deletion.poll()
        self._mirror_wake.set()

    def _flush_loop(self) -> None:
        next_flush = time.monotonic() + self._flush_interval
        while not self._stop.is_set():
            # samplers keep their own cadence between flushes: a sample only appends to memory
            due = min([next_flush, *(s[2] for s in list(self._samplers.values()))])
            woken = self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if self._samplers:
                    self._guard("sample", self._sample)
                if woken or time.monotonic() >= next_flush:
                    with self._io_lock:
                        if self._open:
                            self._flush_once()
                    next_flush = time.monotonic() + self._flush_interval
            except Exception:  # the writer must never die silently
                log.exception("lightning_tracker: background flush failed; retrying")

    def _merge_stored(self, probe: RemoteProbe) -> None:
        """Merges a store's late answer into the live run (:mod:`.late_merge`; the mirror publishes nothing yet).

        The stored sessions, tags, start, monitor and hyperparameters join the run's (:meth:`RunInfo.merge`);
        the stored ``meta.json`` and ``models.json`` replace this session's, the stored alerts come
        before this session's; a session number the store already knows is renumbered; the
        summary covers every chunk.
        """
        stored = probe.doc
        if stored is None:  # the run is new in the store too
            if self._warn_if_new:
                warn_new_run(self._storage, self._prefix)
            return
        adopt_documents(self._local_dir, probe.documents)
        self._alerts.merge(probe.documents.get(ALERTS_FILE))
        if self._checkpoints is not None:
            self._checkpoints.reload()
        self._info.merge(stored, probe.documents.get(CONFIG_FILE))
        session = free_session(stored, self._session)
        if session is not None:
            renumber_chunks(
                (p.chunks for p in (self._metrics, self._histograms, self._media)), self._writer_key, session
            )
            for entry in self._info.doc["sessions"]:
                if entry.get("writer_key") == self._writer_key:
                    entry["index"] = session
            self._session = session
        for rel in probe.downloaded:
            self._mirror.mark_published(rel)
        self._metrics.load_summary()  # now over the stored sessions' chunks too
        self._points.next_step = max(self._points.next_step, self._next_step_after_summary())
        log.info("merged the stored copy of run %s (%d sessions)", self._prefix, len(stored.get("sessions") or []))

    def _next_step_after_summary(self) -> int:
        """One past the highest step the summary holds (0 for none)."""
        return max((s["high_step"] for s in self._metrics.summary.values()), default=-1) + 1

    def _growing(self, path: str) -> bool:
        return self._tensorboard is not None and path == self._tensorboard.active_file

    # -- closing ------------------------------------------------------------------------
    def close(self, status: str = "finished", timeout: float = 60.0, reason: str | None = None) -> MirrorReport | None:
        """Flushes, compacts, writes the final status and publishes within ``timeout`` seconds.

        The run's end raises its automatic alert (``reason``: why it failed or was pruned), and
        waits at most 2 s of ``timeout`` for queued alerts to be delivered.

        Returns:
            For a remote store, what the last mirror round did (``complete`` or not).
        """
        if not self._open:
            return self._last_report
        deadline = time.monotonic() + timeout
        self._alerts.on_end(status, reason)
        uploads = not self._mirror.in_place and not self._offline
        self._media.encode(until=deadline - timeout * (0.5 if uploads else 0.2))  # the rest: flush, upload
        self._media_stop.set()
        self._media.wake()
        if self._probe is not None:  # a last chance for the store's answer, within the deadline
            self._probe.wait(max(0.0, min(PROBE_TIMEOUT_S.get(), deadline - time.monotonic())))
        with self._io_lock:
            self._signal_stop()
            try:
                self._guard("flush", self._flush_once)
                if self._probe is not None:
                    log.warning(
                        "the store %s never answered for run %s: its stored copy is not merged; what this "
                        "session wrote is published as is",
                        self._storage.url,
                        self._prefix,
                    )
                    self._probe = None
                    self._mirror.active = True
                    if self._checkpoints is not None:
                        self._guard("store checkpoints", self._checkpoints.flush)
                self._guard("compact metrics", self._metrics.compact, True)
                self._guard("compact histograms", self._histograms.compact, True)
                self._guard("compact media", self._media.compact, True)
                if self._tensorboard is not None:
                    last = {k: s["last"] for k, s in self._metrics.summary.items()}
                    flat = self._info.config["flat"]
                    self._guard("write TensorBoard hparams", self._tensorboard.write_hparams, flat, last)
                    self._guard("close TensorBoard events", self._tensorboard.close)
            finally:
                self._info.set_info(status=status, end_time=time.time())
                self._guard("write the run documents", self._info.write, self._local_dir, self._metrics.summary)
                self._open = False
        self._tell_index("end")
        self._give_up_media(f"finalize_timeout={timeout:g} s ran out")
        self._join_threads(deadline)
        self._alerts.close(min(2.0, max(0.0, deadline - time.monotonic())))
        if self._mirror.in_place:
            self._deletion.settle(deadline)  # deleted while it trained: what it wrote since goes too
            return None
        if self._offline:
            log.warning(
                "run %s is offline: its files are in %s; upload them with: lightning-tracker sync %s",
                self._prefix,
                self._local_dir,
                self._local_dir,
            )
            return None
        if self._deletion.settle(deadline):  # asked once more before run.json is uploaded
            return None
        return self._final_upload(deadline)

    def _tell_index(self, kind: str) -> None:
        """Tells the project index that the run changed, where the run folder is the store's own
        (a local ``save_dir``); on a bucket the mirror does, once ``run.json`` is uploaded."""
        if self._mirror.in_place and not self._deletion.check():  # a deleted run is no news for the index
            project, run_id = self._prefix.split("/", 1)
            tell_index(self._storage, project, run_id, kind)

    def _stop_publishing(self) -> None:
        """The run was deleted while it trained (:mod:`.deletion`): the mirror puts nothing more."""
        self._mirror.run_deleted = True

    def _signal_stop(self) -> None:
        self._stop.set()
        self._media_stop.set()
        self._media.wake()
        self._wake.set()
        self._mirror_wake.set()

    def _give_up_media(self, why: str) -> None:
        """Gives up the media and histograms still held (not encoded in time, or refused by a full
        disk) and says what was left out over the whole session, counted by kind."""
        self._media.give_up(why)
        left_out = self._media.describe_left_out()
        if left_out is not None:
            log.warning("run %s: media left out, by reason: %s", self._prefix, left_out)
        rows, size = self._histograms.give_up()
        if rows:
            log.warning(
                "run %s: %d histogram rows (%.1f MB) could not be written to %s (disk full) and are left out",
                self._prefix,
                rows,
                size / 2**20,
                self._local_dir,
            )

    def _join_threads(self, deadline: float) -> None:
        """Waits for the background threads, at most 5 s in all and never past ``deadline``."""
        end = min(deadline, time.monotonic() + 5.0)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, end - time.monotonic()))

    def suspend(self) -> None:
        """Hands the run over to another process (``ddp_spawn``): writes what is buffered and
        stops this process's threads without a final status; the other process resumes it."""
        if not self._open:
            return
        self._media.encode(until=time.monotonic() + 5.0)
        with self._io_lock:
            self._signal_stop()
            self._guard("flush", self._flush_once)
            if self._tensorboard is not None:
                self._guard("close TensorBoard events", self._tensorboard.close)
            self._open = False
        self._give_up_media("the run was handed over to another process (suspend) first")
        self._join_threads(time.monotonic() + 5.0)
        if not self._offline:  # bounded: pickling for ddp_spawn must not wait on a hung store
            mirror_loops.upload_until(self._mirror, time.monotonic() + 5.0)

    def _final_upload(self, deadline: float) -> MirrorReport:
        report, finished = mirror_loops.upload_until(self._mirror, deadline, progress=True)
        self._mirror.active = False  # a round still running (a hung request) puts nothing more: the rest is sync's
        self._last_report = report
        if self._spool_release is not None:
            self._spool_release.confirmed = finished
        if finished:
            log.info("run %s uploaded to %s", self._prefix, self._storage.full_url(self._prefix))
        else:
            why = f"{type(report.error).__name__}: {report.error}" if report.error else "timed out"
            log.warning(
                "could not upload everything of run %s to %s (%s); %d files are kept in the spool %s. "
                "Upload them later with: lightning-tracker sync %s",
                self._prefix,
                self._storage.url,
                why,
                len(report.pending) or 1,
                self._local_dir,
                self._local_dir,
            )
        return report
