"""Resuming a run: find what the spool and the store already hold, and number the new session.

The copy with more sessions wins (a spool can hold sessions the store never got, after
an outage or an offline run). A remote run's documents and live chunks are brought into
the spool first, so the resumed writer computes an exact summary and never re-uploads
what the store has. The new session is numbered after every session either copy knows.

The store is asked on a daemon thread (:class:`RemoteProbe`) and waited for at most
``timeout`` seconds: a store that accepts connections and never answers cannot hold
training. A late answer is merged into the live run by the flusher
(:meth:`RemoteProbe.take`, then :mod:`.late_merge`). Chunk names carry each session's
writer key, so a session numbered without the store's answer can never overwrite a
stored chunk.

``TrackerLogger(resume=...)`` says what a given id must name (:data:`RESUME_MODES`):
``"allow"`` resumes the run or starts it (with one warning: the id may be mistyped);
``"must"`` and ``"never"`` wait for the store's answer to "does it exist?" (at most
``$LIGHTNING_TRACKER_CHECK_TIMEOUT_S`` seconds) and raise before anything is written when the answer is wrong
or does not come.

``"never"`` then *claims* the run (:func:`claim_new_run`): its first ``run.json`` is
created in the store only if none is there, in one step that cannot race
(:meth:`~lightning_tracker.storage.Storage.create_bytes`: a hard link on a local folder,
a conditional write on S3, GCS and Azure). Of processes opening the same id at the same
moment exactly one wins; the others raise ``RunExistsError`` before they write anything.
An offline run claims this machine's spool instead (it writes nothing to the store), so
only processes on this machine are kept apart. A store that cannot create atomically
(a backend without ``create_bytes``) is checked but not claimed, with a warning saying so.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lightning_tracker._settings import CHECK_TIMEOUT_S, PROBE_TIMEOUT_S
from lightning_tracker.exceptions import InvalidArgumentError, RunExistsError, RunNotFoundError, StorageError
from lightning_tracker.format.documents import run_state, writer_identity
from lightning_tracker.format.layout import (
    ALERTS_FILE,
    CONFIG_FILE,
    DATA_DIRS,
    META_FILE,
    MODELS_FILE,
    RUN_FILE,
    live_chunks,
    parse_chunk_name,
)
from lightning_tracker.format.validate import Document, RunDocument, parse_document, parse_run
from lightning_tracker.storage import Storage, atomic_create, atomic_write
from lightning_tracker.storage.changes import tell_index
from lightning_tracker.writers.deletion import being_deleted

__all__ = [
    "RESUME_MODES",
    "Existing",
    "RemoteProbe",
    "claim_new_run",
    "load_existing",
    "next_session",
    "resume_mode",
    "warn_if_written_now",
    "warn_new_run",
]

log = logging.getLogger(__name__)

RESUME_MODES = ("allow", "must", "never")
# the summary is computed from the chunks; alerts.json is rewritten whole with each new alert: without the
# stored one, a session on another machine (a fresh spool) would replace the earlier sessions' alerts
_DOCUMENTS = (CONFIG_FILE, RUN_FILE, META_FILE, MODELS_FILE, ALERTS_FILE)
_REWRITTEN = (RUN_FILE, CONFIG_FILE, MODELS_FILE)  # what a resumed writer rewrites whole: never from a damaged copy


@dataclass
class Existing:
    """What is known of a run that already exists."""

    run: RunDocument  # the run.json that wins (more sessions, then the later heartbeat), checked
    config: dict[str, Any] | None  # config.json from the spool, after any download, checked
    downloaded: list[str] = field(default_factory=list)  # spool paths that are also remote, as they are

    @property
    def doc(self) -> dict[str, Any]:
        """The winning ``run.json`` as a document (legacy forms cast)."""
        return self.run.doc


def _read_local(local_dir: str, name: str) -> Document | None:
    """A document of the spool (or of a local store's run folder), checked; None when it is not there."""
    try:
        with open(os.path.join(local_dir, name), "rb") as f:
            return parse_document(name, f.read())
    except (FileNotFoundError, NotADirectoryError):
        return None


def _rank(run: RunDocument | None) -> tuple[int, float]:
    if run is None:
        return (-1, 0.0)
    return (len(run.sessions), float(run.heartbeat or 0))


def _check_copies(storage: Storage, prefix: str, local_dir: str, probe: RemoteProbe | None) -> None:
    """Raises when a copy of a document the resumed writer rewrites is damaged; warns of legacy forms read.

    Raises:
        StorageError: naming the first damaged file, its problems and the fix.
    """
    copies: list[tuple[str, Document]] = []
    for name in _REWRITTEN:
        local = _read_local(local_dir, name)
        if local is not None:
            copies.append((os.path.join(local_dir, name), local))
        if probe is not None and name in probe.documents:
            copies.append((storage.full_url(f"{prefix}/{name}"), parse_document(name, probe.documents[name])))
    for where, parsed in copies:
        for repair in parsed.repairs:
            log.warning("resuming run %s: in %s, %s (written back in that form)", prefix, where, repair)
    damaged = [(where, parsed) for where, parsed in copies if parsed.damaged]
    if damaged:
        if probe is not None:
            probe.fetch = False  # nothing more is brought into the spool
        where, parsed = damaged[0]
        raise StorageError(
            f"cannot resume run {prefix}: {where} is damaged ({'; '.join(parsed.problems)}) and resuming would "
            "rewrite it, losing what it holds; repair the file (lightning-tracker runs shows the same problem), "
            "or pass another version to start a new run"
        )


class RemoteProbe:
    """Reads a run's stored copy on a daemon thread: its documents into memory, its live
    chunks into the spool (immutable, so safe to write beside a live writer).

    Args:
        storage: where the run lives.
        prefix: the run's path in ``storage``.
        local_dir: the run's spool folder.
        fetch: after ``run.json``, also read the other documents and the chunks (False:
            only answer whether the run exists; nothing is written into the spool).
    """

    def __init__(self, storage: Storage, prefix: str, local_dir: str, fetch: bool = True) -> None:
        self.storage, self.prefix, self.local_dir = storage, prefix, local_dir
        self.fetch = fetch  # set to False by a caller that gave up: a late answer then writes nothing
        self.documents: dict[str, bytes] = {}
        self.deleting = False  # the run's deletion mark is there (known once the probe answered)
        self.downloaded: list[str] = []  # chunk paths now in the spool as they are in the store
        self.error: BaseException | None = None
        self._answered = threading.Event()  # run.json read, found missing, or the read failed
        self._done = threading.Event()
        self._taken = False
        threading.Thread(target=self._run, name="lightning-tracker-resume", daemon=True).start()

    def _run(self) -> None:
        try:
            self.deleting = being_deleted(self.storage, self.prefix)
            try:
                self.documents[RUN_FILE] = self.storage.read_bytes(f"{self.prefix}/{RUN_FILE}")
            except FileNotFoundError:
                return  # a new run: nothing stored yet
            self._answered.set()
            if not self.fetch:
                return
            others = [f"{self.prefix}/{name}" for name in _DOCUMENTS if name != RUN_FILE]
            self.documents.update({rel.rsplit("/", 1)[1]: data for rel, data in self.storage.read_many(others).items()})
            for folder in DATA_DIRS:
                remote = self.storage.find(f"{self.prefix}/{folder}")
                for name in live_chunks(list(remote)):
                    if not self.fetch:
                        return
                    rel = f"{folder}/{name}"
                    local = os.path.join(self.local_dir, folder, name)
                    if not os.path.exists(local):
                        atomic_write(local, self.storage.read_bytes(f"{self.prefix}/{rel}"))
                    self.downloaded.append(rel)
        except Exception as err:  # noqa: BLE001 - an unreachable store must not stop training
            self.error = err
        finally:
            self._answered.set()
            self._done.set()

    def wait(self, timeout: float) -> bool:
        """Whether the probe finished within ``timeout`` seconds."""
        return self._done.wait(timeout)

    def exists(self, timeout: float) -> bool | None:
        """Whether the store holds the run; None when it did not say within ``timeout`` seconds
        (it failed, or has not answered)."""
        if not self._answered.wait(timeout):
            return None
        if RUN_FILE in self.documents:
            return True
        return False if self.error is None else None

    @property
    def run(self) -> RunDocument | None:
        """The stored ``run.json``, checked, if the store has the run."""
        return parse_run(self.documents[RUN_FILE]) if RUN_FILE in self.documents else None

    @property
    def doc(self) -> dict[str, Any] | None:
        """The stored ``run.json`` as a reader reads it (a field of the wrong type emptied), if the
        store has the run and it is a document.

        A damaged copy stops a resume (:func:`load_existing`); only a late answer, merged
        into a run already training, gets here with one: that is logged as an error.
        """
        run = self.run
        if run is None:
            return None
        if run.damaged:
            log.error(
                "the stored %s of run %s answered after training started and is damaged (%s); the run goes on "
                "and its next upload replaces what cannot be read",
                RUN_FILE,
                self.prefix,
                "; ".join(run.problems),
            )
        return run.doc or None

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
    storage: Storage,
    prefix: str,
    local_dir: str,
    *,
    probe_remote: bool,
    timeout: float | None = None,
    require: str | None = None,
    document: bytes | None = None,
) -> tuple[Existing | None, RemoteProbe | None]:
    """The existing run at ``prefix`` (in the spool ``local_dir`` and, if ``probe_remote``, the store).

    Args:
        storage: where the run lives.
        prefix: ``<project>/<run_id>``.
        local_dir: the run's local folder (the store's folder, or its spool folder).
        probe_remote: ask the store too (on a daemon thread).
        timeout: how long to wait for the store (default ``$LIGHTNING_TRACKER_PROBE_TIMEOUT_S``).
        require: what the run id must name (:data:`RESUME_MODES`): ``"must"`` and ``"never"``
            are checked here, before anything is written; ``"allow"`` warns once when the run
            is new; None neither checks nor warns (a generated id, a run reopened).
        document: the new run's first ``run.json``: with ``require="never"``, the run is
            claimed with it (:func:`claim_new_run`) once the check found it new.

    Returns:
        What is known of the run (None for a new run), and the probe of the store when it
        has not answered within ``timeout`` seconds: the caller merges its answer later.
        A store that fails is logged and the spool's copy used: resuming never stops training.

    Raises:
        RunNotFoundError: ``require="must"`` and neither the spool nor the store holds the run.
        RunExistsError: ``require="never"`` and the spool or the store holds it, or another
            process claimed it first.
        StorageError: ``require`` is ``"must"`` or ``"never"`` and the store cannot say; or
            a copy of ``run.json``, ``config.json`` or ``models.json`` is damaged (the
            message names the file, the field, its value and the fix).

    Example:
        >>> import tempfile
        >>> from lightning_tracker.format.codec import dumps
        >>> from lightning_tracker.format.documents import new_run
        >>> d = tempfile.mkdtemp()
        >>> doc = new_run("r", "p", "one", group=None, tags=[], notes=None, heartbeat_interval_s=2.0, url=d)
        >>> with open(os.path.join(d, RUN_FILE), "wb") as f:
        ...     _ = f.write(dumps({**doc, "sessions": [{"index": 0}]}))
        >>> load_existing(Storage(d), "p/r", d, probe_remote=False)[0].doc["sessions"]
        [{'index': 0}]
        >>> load_existing(Storage(d), "p/r", tempfile.mkdtemp(), probe_remote=False)
        (None, None)
        >>> load_existing(Storage(d), "p/r", d, probe_remote=False, require="never")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.RunExistsError: resume='never': run r already exists in ...
    """
    local = _read_local(local_dir, RUN_FILE)
    local_run = local if isinstance(local, RunDocument) else None
    # resume="never" never resumes: the probe only answers whether the run exists
    probe = RemoteProbe(storage, prefix, local_dir, fetch=require != "never") if probe_remote else None
    if require in ("must", "never"):
        _check_exists(storage, prefix, local_dir, require, local_run is not None, probe)
    _refuse_if_deleting(storage, prefix, probe)
    if require == "never" and document is not None:
        claim_new_run(storage, prefix, local_dir, document, in_store=probe_remote or storage.is_local)
    remote_run = None
    timeout = PROBE_TIMEOUT_S.get() if timeout is None else timeout
    if probe is not None:
        if not probe.wait(timeout):
            log.warning(
                "the store %s did not answer within %.0f s while resuming run %s; training goes on from "
                "the local spool %s and the stored copy is merged when the store answers",
                storage.url,
                timeout,
                prefix,
                local_dir,
            )
            _check_copies(storage, prefix, local_dir, None)
            return _local(local_dir, local_run), probe
        if probe.error is not None:
            log.warning(
                "could not read run %s from %s (%s: %s); continuing from the local spool %s",
                prefix,
                storage.url,
                type(probe.error).__name__,
                probe.error,
                local_dir,
            )
        _refuse_if_deleting(storage, prefix, probe)
        remote_run = probe.run
    _check_copies(storage, prefix, local_dir, probe)
    if local_run is None and remote_run is None:
        # only when the store said so: an offline or failed lookup does not know the run is new
        if require == "allow" and (storage.is_local or (probe is not None and probe.error is None)):
            warn_new_run(storage, prefix)
        return None, None
    use_remote = remote_run is not None and _rank(remote_run) > _rank(local_run)
    downloaded: list[str] = []
    if probe is not None and remote_run is not None:
        try:
            downloaded = [*probe.write_documents(overwrite=use_remote), *probe.downloaded]
        except OSError as err:
            log.warning(
                "could not copy run %s into the spool %s (%s); its summary may be incomplete", prefix, local_dir, err
            )
    run = remote_run if use_remote else local_run
    assert run is not None
    return Existing(run=run, config=_config(local_dir), downloaded=downloaded), None


def _refuse_if_deleting(storage: Storage, prefix: str, probe: RemoteProbe | None) -> None:
    """Raises when the run is being deleted: writing behind the mark would be hidden, then deleted.

    A local store is asked here (one read of the mark); a remote one by the probe, once it answered.

    Raises:
        RunExistsError: the run's deletion mark is there; the message says how to finish or undo it.
    """
    deleting = being_deleted(storage, prefix) if storage.is_local else probe is not None and probe.deleting
    if not deleting:
        return
    if probe is not None:
        probe.fetch = False  # nothing of a run being deleted is brought into the spool
    project, run_id = prefix.rsplit("/", 1)
    raise RunExistsError(
        f"run {run_id} of project {project} in {storage.url} is being deleted; finish with `lightning-tracker rm "
        f"{run_id} -s {storage.url}`, take the deletion back with `lightning-tracker rm --undo {run_id} -s "
        f"{storage.url}` (while its run.json is there), or pass another version"
    )


def resume_mode(resume: object, version: object) -> str | None:
    """Checks ``TrackerLogger``'s ``resume`` argument (at construction, never mid-training).

    Returns:
        What to check when the run opens (``load_existing``'s ``require``); None without a
        ``version``: a generated id names a new run, there is nothing to check.

    Example:
        >>> resume_mode("must", "my-run"), resume_mode("never", None)
        ('must', None)
        >>> resume_mode("must", None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: resume='must' needs the id of the run to resume: ...
    """
    if not isinstance(resume, str) or resume not in RESUME_MODES:
        raise InvalidArgumentError(
            f"resume={resume!r} is not allowed; pass 'allow' (resume the run `version` names, or start it with that "
            "id), 'must' (the run must exist: a mistyped id is an error) or 'never' (the run must be new)."
        )
    if resume == "must" and version is None:
        raise InvalidArgumentError(
            "resume='must' needs the id of the run to resume: pass version='<run id>' too (lightning-tracker runs "
            "lists the ids), or leave resume='allow'."
        )
    return resume if version is not None else None


def _check_exists(
    storage: Storage, prefix: str, local_dir: str, require: str, in_spool: bool, probe: RemoteProbe | None
) -> None:
    """Raises unless the run's existence is what ``require`` asks; waits for the store's answer."""
    project, run_id = prefix.rsplit("/", 1)
    where = storage.full_url(project)
    found: bool | None = in_spool
    if not in_spool and not storage.is_local:  # for a local store the spool folder is the store's
        asked = probe or RemoteProbe(storage, prefix, local_dir, fetch=False)  # offline: ask, fetch nothing
        wait_s = CHECK_TIMEOUT_S.get()
        found = asked.exists(wait_s)
        if found is None:
            asked.fetch = False  # a late answer writes nothing
            error = asked.error
            why = f"{type(error).__name__}: {error}" if error else f"no answer within {wait_s:.0f} s"
            raise StorageError(
                f"resume={require!r} needs to know whether run {run_id} exists in {where}, but the store could not "
                f"tell ({why}); check the store's address and credentials (storage_options), or pass "
                "resume='allow' to start training without knowing."
            )
    if require == "must" and not found:
        raise RunNotFoundError(
            f"resume='must': there is no run {run_id} in {where}; check the id (lightning-tracker runs -s "
            f"{storage.url} -p {project} lists them), or pass resume='allow' to start a new run with this id."
        )
    if require == "never" and found:
        spooled = f" (this machine's spool holds it: {local_dir})" if in_spool and not storage.is_local else ""
        raise RunExistsError(
            f"resume='never': run {run_id} already exists in {where}; pass another version, version=None for a "
            f"new generated id, or resume='allow' to continue that run{spooled}."
        )


def claim_new_run(storage: Storage, prefix: str, local_dir: str, document: bytes, *, in_store: bool) -> None:
    """Creates a new run by writing its first ``run.json`` only where none is: of processes
    claiming the same run at once, exactly one returns.

    Args:
        storage: where the run lives.
        prefix: ``<project>/<run_id>``.
        local_dir: the run's spool folder (claimed instead when not ``in_store``).
        document: the first ``run.json`` (the writer replaces it when its session starts).
        in_store: claim the run in the store (False: an offline run, which claims this
            machine's spool and writes nothing to the store).

    Raises:
        RunExistsError: the run exists: another process claimed it first.
        StorageError: the store failed, or did not answer within
            ``$LIGHTNING_TRACKER_CHECK_TIMEOUT_S`` seconds.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> claim_new_run(Storage(d), "p/r", os.path.join(d, "p", "r"), b"{}", in_store=True)
        >>> claim_new_run(Storage(d), "p/r", os.path.join(d, "p", "r"), b"{}", in_store=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.RunExistsError: resume='never': run r was created in ... by another process ...
    """
    project, run_id = prefix.rsplit("/", 1)
    where = storage.full_url(project) if in_store else local_dir
    rel = f"{prefix}/{RUN_FILE}"
    if not in_store:
        error = _created(partial(atomic_create, os.path.join(local_dir, RUN_FILE)), document)
    elif storage.is_local:
        error = _created(partial(storage.create_bytes, rel), document)
    else:
        error = _create_in_store(storage, rel, document, where)
        if error is None:  # in the store now: the project index reads it (a local one: the session's start tells)
            tell_index(storage, project, run_id, "start")
    if error is None:
        return
    if isinstance(error, NotImplementedError):
        log.warning(
            "resume='never': run %s was checked to be new in %s, but the store cannot create a file only if it is "
            "absent (%s); a process starting the same id at this very moment would not be stopped",
            run_id,
            where,
            error,
        )
        return
    raise RunExistsError(
        f"resume='never': run {run_id} was created in {where} by another process at the same moment; pass another "
        "version, version=None for a new generated id, or resume='allow' to continue that run."
    ) from None


def _created(create: Callable[[bytes], None], document: bytes) -> BaseException | None:
    """None when ``create(document)`` created the file, else the ``FileExistsError`` or ``NotImplementedError``."""
    try:
        create(document)
    except (FileExistsError, NotImplementedError) as err:
        return err
    return None


def _create_in_store(storage: Storage, rel: str, document: bytes, where: str) -> BaseException | None:
    """``storage.create_bytes`` on a daemon thread, waited for ``$LIGHTNING_TRACKER_CHECK_TIMEOUT_S`` seconds.

    Returns:
        None when it created the file, else the ``FileExistsError`` or ``NotImplementedError`` it raised.

    Raises:
        StorageError: it failed otherwise, or did not answer in time.
    """
    answer: list[BaseException | None] = []

    def create() -> None:
        try:
            storage.create_bytes(rel, document)
            answer.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            answer.append(err)

    wait_s = CHECK_TIMEOUT_S.get()
    thread = threading.Thread(target=create, name="lightning-tracker-claim", daemon=True)
    thread.start()
    thread.join(wait_s)
    error = answer[0] if answer else TimeoutError(f"no answer within {wait_s:g} s")
    if error is None or isinstance(error, NotImplementedError):
        return error
    if isinstance(error, FileExistsError):
        try:  # our own create, answered "exists" to a retry after its first answer was lost
            return None if storage.read_bytes(rel) == document else error
        except Exception:  # noqa: BLE001 - it exists and is not ours to know better: another process's
            return error
    raise StorageError(
        f"resume='never' needs to create run {rel.rsplit('/', 2)[1]} in {where}, but the store failed "
        f"({type(error).__name__}: {error}); check the store's address and credentials (storage_options), or "
        "pass resume='allow' to start training without the check."
    ) from error


def warn_new_run(storage: Storage, prefix: str) -> None:
    """Warns that a run id given to resume names no run: the run starts new (the id may be mistyped)."""
    project, run_id = prefix.rsplit("/", 1)
    log.warning(
        "no run %s in %s; starting a new run with that id (pass resume='must' to make a missing run an error)",
        run_id,
        storage.full_url(project),
    )


def _config(local_dir: str) -> dict[str, Any] | None:
    """The spool's ``config.json``, checked (a damaged one stopped the resume before)."""
    config = _read_local(local_dir, CONFIG_FILE)
    return None if config is None else config.doc


def _local(local_dir: str, run: RunDocument | None) -> Existing | None:
    return None if run is None else Existing(run=run, config=_config(local_dir))


def warn_if_written_now(doc: dict[str, Any], prefix: str) -> None:
    """Warns when another process is writing the run being resumed (its heartbeat is fresh)."""
    writer = doc.get("writer")
    if run_state(doc) != "running" or not isinstance(writer, dict):
        return
    me = writer_identity()
    if (writer.get("host"), writer.get("pid")) == (me["host"], me["pid"]):
        return
    log.warning(
        "run %s is being written right now by another process (host %s, pid %s); this process writes "
        "its own session beside it, so no point is lost, but the run's status and summary follow "
        "whichever process writes last. Give each process its own version to keep them apart.",
        prefix,
        writer.get("host"),
        writer.get("pid"),
    )


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
