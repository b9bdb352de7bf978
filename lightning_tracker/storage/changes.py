"""Tell a project's index that a run changed: one small immutable object per change.

The one write the writers (a run starts, ends, resumes, is synced), the read side's edits
(``Run.add_tags``) and ``manage`` (deletion, import) share, so it sits below all of them.

A writer never reads, rewrites or locks a shared index object. It only adds
``<project>/.index/changes/<time>-<run id>-<token>.json`` (named by
:func:`~lightning_tracker.format.layout.change_name`); a reader lists the changes it has not
folded yet and reads again only the runs they name. The run folders stay the truth: a
change that was never recorded leaves the index stale, never the run wrong, and
``lightning-tracker index`` rebuilds it from the folders.
"""

from __future__ import annotations

import logging
import secrets
import time

from lightning_tracker.format import codec
from lightning_tracker.format.layout import CHANGES_DIR, INDEX_DIR, change_name
from lightning_tracker.storage.base import Storage

__all__ = ["CHANGE_KINDS", "record_change", "tell_index"]

log = logging.getLogger(__name__)

CHANGE_KINDS = ("start", "resume", "end", "edit", "delete", "sync", "import")
"""Why a run changed: what each change object's ``kind`` says."""


def record_change(storage: Storage, project: str, run_id: str, kind: str) -> str:
    """Add one change object for ``run_id`` of ``project``; returns its path in the store.

    Raises:
        ValueError: ``kind`` is not one of :data:`CHANGE_KINDS` (a bug, not user input).
        StorageError: the object could not be written (callers in the training pipeline
            catch it: a missed change leaves the index stale, not the run).
    """
    if kind not in CHANGE_KINDS:
        raise ValueError(f"kind={kind!r} is not a change kind; use one of: {', '.join(CHANGE_KINDS)}")
    now = time.time_ns()
    rel = f"{project}/{INDEX_DIR}/{CHANGES_DIR}/{change_name(now, run_id, secrets.token_hex(4))}"
    storage.write_bytes(rel, codec.dumps({"run": run_id, "kind": kind, "time": now / 1e9}))
    return rel


def tell_index(storage: Storage, project: str, run_id: str, kind: str) -> bool:
    """:func:`record_change`, for the training pipeline and ``sync``: a failure is logged, never raised.

    A missed change leaves the project index stale (``lightning-tracker index`` rebuilds
    it), never the run: training must not fail for it. Returns whether it was recorded.
    """
    try:
        record_change(storage, project, run_id, kind)
    except Exception as err:  # noqa: BLE001 - whatever the store says, the run goes on
        log.warning(
            "could not tell the index of %s that run %s changed (%s: %s); the runs table may show it late "
            "(rebuild with: lightning-tracker index -s %s -p %s)",
            storage.full_url(project),
            run_id,
            type(err).__name__,
            err,
            storage.url,
            project,
        )
        return False
    return True
