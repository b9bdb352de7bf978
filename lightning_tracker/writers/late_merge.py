"""A store's late answer, merged into a run that already started from its spool.

When the store does not answer the resume probe in time (:mod:`.resume`), the run starts
from what the spool holds and the flusher merges the stored copy once it arrives, while
the mirror publishes nothing: the stored sessions, tags, start, hyperparameters, monitor,
``meta.json`` and ``models.json`` join the live run and a taken session number is renumbered.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lightning_tracker.format.layout import CONFIG_FILE, META_FILE, MODELS_FILE, chunk_name, parse_chunk_name
from lightning_tracker.storage import atomic_write
from lightning_tracker.writers.resume import RemoteProbe, warn_new_run

__all__ = ["merge_stored"]

log = logging.getLogger(__name__)


def merge_stored(writer: Any, probe: RemoteProbe) -> None:
    """Merges a store's late answer into a live run (the flusher, while the mirror publishes nothing).

    The stored sessions, tags, start, monitor and hyperparameters join the run's (:meth:`RunInfo.merge`);
    the stored ``meta.json`` (the first session's environment) and ``models.json`` replace
    this session's, so no stored document or checkpoint name is overwritten; a session
    number the store already knows is renumbered (this session's chunks, found by its writer
    key, are renamed: nothing of them is published yet); the summary covers every chunk.
    """
    stored = probe.doc
    if stored is None:  # the run is new in the store too
        if getattr(writer, "warn_if_new", False):
            warn_new_run(writer.storage, writer.prefix)
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
    for producer in (writer.metrics, writer.histograms, writer.media):
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
