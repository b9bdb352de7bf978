"""A store's late answer, merged into a run that already started from its spool.

When the store does not answer the resume probe in time (:mod:`.resume`), the run starts
from what the spool holds and the flusher merges the stored copy once it arrives, while
the mirror publishes nothing (:meth:`RunWriter._merge_stored
<lightning_tracker.writers.run_writer.RunWriter._merge_stored>`): the stored sessions,
tags, start, hyperparameters and monitor join the live run, the stored ``meta.json`` and
``models.json`` replace this session's, and a session number the store already knows is
renumbered. This module holds the steps that touch the spool; each receives what it works
on and returns what the writer must change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from lightning_tracker.format.layout import META_FILE, MODELS_FILE, chunk_name, parse_chunk_name
from lightning_tracker.storage import atomic_write
from lightning_tracker.writers.chunks import ChunkFolder

__all__ = ["adopt_documents", "free_session", "renumber_chunks"]


def adopt_documents(local_dir: str, documents: Mapping[str, bytes]) -> None:
    """Writes the stored ``meta.json`` (the first session's environment) and ``models.json``
    over this session's, so neither stored document nor a stored checkpoint name is overwritten.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> adopt_documents(folder, {"meta.json": b"{}", "run.json": b"{}"})
        >>> os.listdir(folder)
        ['meta.json']
    """
    for name in (META_FILE, MODELS_FILE):
        if name in documents:
            atomic_write(os.path.join(local_dir, name), documents[name])


def free_session(stored: Mapping[str, Any], session: int) -> int | None:
    """The number this session takes when the stored run already has a session ``session``, else None.

    Example:
        >>> free_session({"sessions": [{"index": 0}, {"index": 1}]}, 1)
        2
        >>> free_session({"sessions": [{"index": 0}]}, 1) is None
        True
    """
    taken = {s.get("index") for s in stored.get("sessions") or [] if isinstance(s, dict)}
    if session not in taken:
        return None
    return max(i for i in taken if isinstance(i, int)) + 1


def renumber_chunks(folders: Iterable[ChunkFolder], writer_key: str, session: int) -> None:
    """Renames the chunks ``writer_key`` wrote to session ``session``; later chunks are numbered so too.

    Only this session's chunks carry its writer key, and none of them is published yet
    (the mirror waits for the merge), so renaming them is safe.
    """
    for chunks in folders:
        for name in os.listdir(chunks.dir) if os.path.isdir(chunks.dir) else []:
            chunk = parse_chunk_name(name)
            if chunk is not None and chunk.writer == writer_key:
                new = chunk_name(session, chunk.first, chunk.last, chunk.writer)
                os.replace(os.path.join(chunks.dir, name), os.path.join(chunks.dir, new))
        chunks.session = session
