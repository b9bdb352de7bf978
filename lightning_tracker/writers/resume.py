"""Resuming a run: find what the spool and the store already hold, and number the new session.

The copy with more sessions wins (a spool can hold sessions the store never got, after
an outage or an offline run). A remote run's documents and live chunks are brought into
the spool first, so the resumed writer computes an exact summary and never re-uploads
what the store has. The new session is numbered after every session either copy knows.

The store is asked on a daemon thread (:class:`RemoteProbe`) and waited for at most
``timeout`` seconds: a store that accepts connections and never answers cannot hold
training. A late answer is merged into the live run by the flusher
(:meth:`RemoteProbe.take`). Chunk names carry each session's writer key, so a session
numbered without the store's answer can never overwrite a stored chunk.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from lightning_tracker.format.codec import loads
from lightning_tracker.format.documents import run_state, writer_identity
from lightning_tracker.format.layout import (
    CONFIG_FILE,
    DATA_DIRS,
    META_FILE,
    MODELS_FILE,
    RUN_FILE,
    chunk_name,
    live_chunks,
    parse_chunk_name,
)
from lightning_tracker.storage import Storage, atomic_write

__all__ = [
    "PROBE_TIMEOUT_S",
    "Existing",
    "RemoteProbe",
    "load_existing",
    "merge_stored",
    "next_session",
    "warn_if_written_now",
]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = float(os.environ.get("LIGHTNING_TRACKER_PROBE_TIMEOUT_S", "5"))
_DOCUMENTS = (CONFIG_FILE, RUN_FILE, META_FILE, MODELS_FILE)  # the summary is computed from the chunks


@dataclass
class Existing:
    """What is known of a run that already exists."""

    doc: dict[str, Any]  # the run.json that wins (more sessions, then the later heartbeat)
    config: dict[str, Any] | None  # config.json from the spool, after any download
    downloaded: list[str] = field(default_factory=list)  # spool paths that are also remote, as they are


def _read_doc(local_dir: str, rel: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(local_dir, *rel.split("/")), "rb") as f:
            doc = loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _rank(doc: dict[str, Any] | None) -> tuple[int, float]:
    if doc is None:
        return (-1, 0.0)
    sessions = doc.get("sessions")
    try:
        beat = float(doc.get("heartbeat") or 0)
    except (TypeError, ValueError):
        beat = 0.0
    return (len(sessions) if isinstance(sessions, list) else 0, beat)


class RemoteProbe:
    """Reads a run's stored copy on a daemon thread: its documents into memory, its live
    chunks into the spool (immutable, so safe to write beside a live writer).

    Args:
        storage: where the run lives.
        prefix: the run's path in ``storage``.
        local_dir: the run's spool folder.
    """

    def __init__(self, storage: Storage, prefix: str, local_dir: str) -> None:
        self.storage, self.prefix, self.local_dir = storage, prefix, local_dir
        self.documents: dict[str, bytes] = {}
        self.downloaded: list[str] = []  # chunk paths now in the spool as they are in the store
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._taken = False
        threading.Thread(target=self._run, name="lightning-tracker-resume", daemon=True).start()

    def _run(self) -> None:
        try:
            try:
                self.documents[RUN_FILE] = self.storage.read_bytes(f"{self.prefix}/{RUN_FILE}")
            except FileNotFoundError:
                return  # a new run: nothing stored yet
            others = [f"{self.prefix}/{name}" for name in _DOCUMENTS if name != RUN_FILE]
            self.documents.update({rel.rsplit("/", 1)[1]: data for rel, data in self.storage.read_many(others).items()})
            for folder in DATA_DIRS:
                remote = self.storage.find(f"{self.prefix}/{folder}")
                for name in live_chunks(list(remote)):
                    rel = f"{folder}/{name}"
                    local = os.path.join(self.local_dir, folder, name)
                    if not os.path.exists(local):
                        atomic_write(local, self.storage.read_bytes(f"{self.prefix}/{rel}"))
                    self.downloaded.append(rel)
        except Exception as err:  # noqa: BLE001 - an unreachable store must not stop training
            self.error = err
        finally:
            self._done.set()

    def wait(self, timeout: float) -> bool:
        """Whether the probe finished within ``timeout`` seconds."""
        return self._done.wait(timeout)

    @property
    def doc(self) -> dict[str, Any] | None:
        """The stored ``run.json``, if the store has the run and it is a document."""
        try:
            doc = loads(self.documents[RUN_FILE]) if RUN_FILE in self.documents else None
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def take(self) -> RemoteProbe | None:
        """This probe once, when it has finished (the flusher's late merge); else None."""
        if self._taken or not self._done.is_set():
            return None
        self._taken = True
        return self

    def write_documents(self, overwrite: bool) -> list[str]:
        """Puts the stored documents into the spool (all of them, or only missing ones)."""
        written = []
        for name, data in self.documents.items():
            path = os.path.join(self.local_dir, name)
            if overwrite or not os.path.exists(path):
                atomic_write(path, data)
                written.append(name)
        return written


def load_existing(
    storage: Storage, prefix: str, local_dir: str, *, probe_remote: bool, timeout: float | None = None
) -> tuple[Existing | None, RemoteProbe | None]:
    """The existing run at ``prefix`` (in the spool ``local_dir`` and, if ``probe_remote``, the store).

    Returns:
        What is known of the run (None for a new run), and the probe of the store when it
        has not answered within ``timeout`` seconds (default :data:`PROBE_TIMEOUT_S`): the
        caller merges its answer later.
        A store that fails is logged and the spool's copy used: resuming never stops training.

    Example:
        >>> import tempfile
        >>> from lightning_tracker.format.codec import dumps
        >>> d = tempfile.mkdtemp()
        >>> with open(os.path.join(d, RUN_FILE), "wb") as f:
        ...     _ = f.write(dumps({"id": "r", "sessions": [{"index": 0}]}))
        >>> load_existing(Storage(d), "p/r", d, probe_remote=False)[0].doc["sessions"]
        [{'index': 0}]
        >>> load_existing(Storage(d), "p/r", tempfile.mkdtemp(), probe_remote=False)
        (None, None)
    """
    local_doc = _read_doc(local_dir, RUN_FILE)
    probe = RemoteProbe(storage, prefix, local_dir) if probe_remote else None
    remote_doc = None
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    if probe is not None:
        if not probe.wait(timeout):
            log.warning("the store %s did not answer within %.0f s while resuming run %s; training goes on from "
                        "the local spool %s and the stored copy is merged when the store answers",
                        storage.url, timeout, prefix, local_dir)  # fmt: skip
            return _local(local_dir, local_doc), probe
        if probe.error is not None:
            log.warning("could not read run %s from %s (%s: %s); continuing from the local spool %s",
                        prefix, storage.url, type(probe.error).__name__, probe.error, local_dir)  # fmt: skip
        remote_doc = probe.doc
    if local_doc is None and remote_doc is None:
        return None, None
    use_remote = remote_doc is not None and _rank(remote_doc) > _rank(local_doc)
    downloaded: list[str] = []
    if probe is not None and remote_doc is not None:
        try:
            downloaded = [*probe.write_documents(overwrite=use_remote), *probe.downloaded]
        except OSError as err:
            log.warning("could not copy run %s into the spool %s (%s); its summary may be incomplete",
                        prefix, local_dir, err)  # fmt: skip
    doc = remote_doc if use_remote else local_doc
    assert doc is not None
    return Existing(doc=doc, config=_read_doc(local_dir, CONFIG_FILE), downloaded=downloaded), None


def _local(local_dir: str, doc: dict[str, Any] | None) -> Existing | None:
    return None if doc is None else Existing(doc=doc, config=_read_doc(local_dir, CONFIG_FILE))


def merge_stored(writer: Any, probe: RemoteProbe) -> None:
    """Merges a store's late answer into a live run (the flusher, while the mirror publishes nothing).

    The stored sessions, tags, start and hyperparameters join the run's (:meth:`RunInfo.merge`);
    the stored ``meta.json`` (the first session's environment) and ``models.json`` replace
    this session's, so no stored document or checkpoint name is overwritten; a session
    number the store already knows is renumbered (this session's chunks, found by its writer
    key, are renamed: nothing of them is published yet); the summary covers every chunk.
    """
    stored = probe.doc
    if stored is None:  # the run is new in the store too
        return
    for name in (META_FILE, MODELS_FILE):
        if name in probe.documents:
            atomic_write(os.path.join(writer.local_dir, name), probe.documents[name])
    if writer.checkpoints is not None:
        writer.checkpoints.reload()
    writer.info.merge(stored, probe.documents.get(CONFIG_FILE))
    taken = {s.get("index") for s in stored.get("sessions") or [] if isinstance(s, dict)}
    if writer.session in taken:
        _renumber(writer, max(i for i in taken if isinstance(i, int)) + 1)
    for rel in probe.downloaded:
        writer.mirror.mark_published(rel)
    writer.metrics.load_summary()  # now over the stored sessions' chunks too
    steps = [s["high_step"] for s in writer.metrics.summary.values()]
    writer.points.next_step = max([writer.points.next_step, *(s + 1 for s in steps)])
    log.info("merged the stored copy of run %s (%d sessions)", writer.prefix, len(stored.get("sessions") or []))


def _renumber(writer: Any, session: int) -> None:
    for producer in (writer.metrics, writer.histograms):
        folder = producer.chunks.dir
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            chunk = parse_chunk_name(name)
            if chunk is not None and chunk.writer == writer.writer_key:
                new = chunk_name(session, chunk.first, chunk.last, chunk.writer)
                os.replace(os.path.join(folder, name), os.path.join(folder, new))
        producer.chunks.session = session
    for entry in writer.info.doc["sessions"]:
        if entry.get("writer_key") == writer.writer_key:
            entry["index"] = session
    writer.session = session


def warn_if_written_now(doc: dict[str, Any], prefix: str) -> None:
    """Warns when another process is writing the run being resumed (its heartbeat is fresh)."""
    writer = doc.get("writer")
    if run_state(doc) != "running" or not isinstance(writer, dict):
        return
    me = writer_identity()
    if (writer.get("host"), writer.get("pid")) == (me["host"], me["pid"]):
        return
    log.warning("run %s is being written right now by another process (host %s, pid %s); this process writes "
                "its own session beside it, so no point is lost, but the run's status and summary follow "
                "whichever process writes last. Give each process its own version to keep them apart.",
                prefix, writer.get("host"), writer.get("pid"))  # fmt: skip


def next_session(local_dir: str, known_sessions: int) -> int:
    """The new session's number: after ``known_sessions`` and after every session with chunks in the spool.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(d, "metrics"))
        >>> open(os.path.join(d, "metrics", "002-00000000-00000003.parquet"), "wb").close()
        >>> next_session(d, 1)
        3
    """
    known = [known_sessions]
    for folder in DATA_DIRS:
        try:
            names = os.listdir(os.path.join(local_dir, folder))
        except FileNotFoundError:
            continue
        known += [parsed.session + 1 for n in names if (parsed := parse_chunk_name(n)) is not None]
    return max(known)
