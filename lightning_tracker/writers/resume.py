"""Resuming a run: find what the spool and the store already hold, and number the new session.

The copy with more sessions wins (a spool can hold sessions the store never got, after
an outage or an offline run). A remote run's documents and live chunks are brought into
the spool first, so the resumed writer recomputes an exact summary and never re-uploads
what the store has. The new session is numbered after every session either copy knows,
so no chunk file name is ever reused.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from lightning_tracker.format.codec import loads
from lightning_tracker.format.layout import (
    CONFIG_FILE,
    DATA_DIRS,
    META_FILE,
    MODELS_FILE,
    RUN_FILE,
    live_chunks,
    parse_chunk_name,
)
from lightning_tracker.storage import Storage, atomic_write

__all__ = ["Existing", "load_existing", "next_session"]

log = logging.getLogger(__name__)


@dataclass
class Existing:
    """What is known of a run that already exists."""

    doc: dict[str, Any]  # the run.json that wins (more sessions, then the later heartbeat)
    config: dict[str, Any] | None  # config.json from the spool, after any download
    downloaded: list[str] = field(default_factory=list)  # spool paths that are also remote, as they are


def _read_doc(local_dir: str, rel: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(local_dir, *rel.split("/")), "rb") as f:
            return loads(f.read())
    except (OSError, ValueError):
        return None


def _rank(doc: dict[str, Any] | None) -> tuple[int, float]:
    return (-1, 0.0) if doc is None else (len(doc.get("sessions") or []), float(doc.get("heartbeat") or 0))


def load_existing(storage: Storage, prefix: str, local_dir: str, *, probe_remote: bool) -> Existing | None:
    """The existing run at ``prefix`` (in the spool ``local_dir`` and, if ``probe_remote``, the store), or None.

    An unreachable store is logged and the spool's copy used: resuming never stops training.

    Example:
        >>> import tempfile
        >>> from lightning_tracker.format.codec import dumps
        >>> d = tempfile.mkdtemp()
        >>> with open(os.path.join(d, RUN_FILE), "wb") as f:
        ...     _ = f.write(dumps({"id": "r", "sessions": [{"index": 0}]}))
        >>> load_existing(Storage(d), "p/r", d, probe_remote=False).doc["sessions"]
        [{'index': 0}]
        >>> load_existing(Storage(d), "p/r", tempfile.mkdtemp(), probe_remote=False) is None
        True
    """
    local_doc = _read_doc(local_dir, RUN_FILE)
    remote_doc = None
    if probe_remote:
        try:
            remote_doc = loads(storage.read_bytes(f"{prefix}/{RUN_FILE}"))
        except FileNotFoundError:
            pass
        except Exception as err:  # noqa: BLE001 - an unreachable store must not stop training
            log.warning("could not read run %s from %s (%s: %s); continuing from the local spool %s",
                        prefix, storage.url, type(err).__name__, err, local_dir)  # fmt: skip
    if local_doc is None and remote_doc is None:
        return None
    use_remote = remote_doc is not None and _rank(remote_doc) > _rank(local_doc)
    downloaded: list[str] = []
    if remote_doc is not None:
        try:
            _download(storage, prefix, local_dir, overwrite_docs=use_remote, downloaded=downloaded)
        except Exception as err:  # noqa: BLE001 - a partial download must not stop training
            log.warning("could not download run %s from %s (%s); its summary may be incomplete",
                        prefix, storage.url, err)  # fmt: skip
    doc = remote_doc if use_remote else local_doc
    assert doc is not None
    return Existing(doc=doc, config=_read_doc(local_dir, CONFIG_FILE), downloaded=downloaded)


def _download(storage: Storage, prefix: str, local_dir: str, *, overwrite_docs: bool, downloaded: list[str]) -> None:
    """Brings a remote run's documents and live chunks into the spool, so a resume is exact."""
    wanted = [CONFIG_FILE, RUN_FILE, META_FILE, MODELS_FILE]  # the summary is recomputed from the chunks
    wanted = [rel for rel in wanted if overwrite_docs or not os.path.exists(os.path.join(local_dir, rel))]
    for folder in DATA_DIRS:
        remote = storage.find(f"{prefix}/{folder}")
        wanted += [f"{folder}/{n}" for n in live_chunks(list(remote))]
    for rel in wanted:
        local = os.path.join(local_dir, *rel.split("/"))
        if "/" in rel and os.path.exists(local):
            downloaded.append(rel)  # an immutable chunk: the same on both sides
            continue
        try:
            data = storage.read_bytes(f"{prefix}/{rel}")
        except FileNotFoundError:
            continue
        atomic_write(local, data)
        downloaded.append(rel)


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
        known += [parsed[0] + 1 for n in names if (parsed := parse_chunk_name(n)) is not None]
    return max(known)
