"""Which statuses a run can have: the one list the CLI's ``--status``, the API and the page ask.

A writer stores one of :data:`STORED` in ``run.json`` (``pruned``: a sweep's tool, Optuna,
stopped the run early on purpose; neither a success nor a failure); a reader derives the others
(:data:`DERIVED`): ``crashed`` when a ``running`` run's writer is gone (its heartbeat
stopped, see :func:`~lightning_tracker.format.documents.run_state`), and ``damaged`` when a
document or chunk of the run does not read as the format says (see
:mod:`~lightning_tracker.format.validate`).

Pure standard library.
"""

from __future__ import annotations

__all__ = ["CRASHED", "DAMAGED", "DERIVED", "FAILED", "FINISHED", "PRUNED", "RUNNING", "STATUSES", "STORED"]

RUNNING, FINISHED, FAILED, PRUNED = "running", "finished", "failed", "pruned"
CRASHED, DAMAGED = "crashed", "damaged"

STORED = (RUNNING, FINISHED, FAILED, PRUNED)
"""What a writer stores in ``run.json``'s ``status``."""
DERIVED = (CRASHED, DAMAGED)
"""What a reader shows instead, from the stored documents."""
STATUSES = (*STORED, *DERIVED)
"""Every status a reader shows: ``Run.status``, ``runs --status``, the page's status column."""
