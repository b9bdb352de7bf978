"""The edit documents and deletion marks of runs (``<project>/.edits/<run id>/``): found, read and added.

One recursive listing of a project's ``.edits`` folder finds every run's edits, so
:class:`~lightning_tracker.read.store.Store` folds them into a whole project for one
listing and one batched read of the (few, small) documents; a :class:`Run` built alone
lists its own folder. :func:`add_edit` writes one new immutable document, then the change
object the project index folds (:mod:`~lightning_tracker.storage.changes`). The schema and
the fold rule are :mod:`lightning_tracker.format.edits`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lightning_tracker.format import codec
from lightning_tracker.format.edits import new_edit, parse_edit
from lightning_tracker.format.layout import EDITS_DIR, TOMBSTONE_FILE, edit_name
from lightning_tracker.storage import Storage
from lightning_tracker.storage.changes import record_change

__all__ = ["RunEdits", "add_edit", "project_edits", "run_edits"]

_MAX_EDIT_BYTES = 1 << 20  # a larger edit document is damage, not read whole


@dataclass
class RunEdits:
    """What a run's ``.edits`` folder holds: its edits in fold order, what was damaged, whether it is deleted."""

    edits: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    deleted: bool = False


def project_edits(storage: Storage, project: str, run_ids: Iterable[str] | None = None) -> dict[str, RunEdits]:
    """Every run of ``project`` (or of ``run_ids``) that has edits or a deletion mark: one
    listing of the project's edits, one batched read of the documents of the runs asked for."""
    base = f"{project}/{EDITS_DIR}"
    listing = storage.find(base)
    if run_ids is not None:
        wanted = set(run_ids)
        listing = {rel: size for rel, size in listing.items() if rel.partition("/")[0] in wanted}
    return _collect(storage, base, listing)


def run_edits(storage: Storage, project: str, run_id: str) -> RunEdits:
    """The edits of one run (one listing of its folder, then its documents)."""
    base = f"{project}/{EDITS_DIR}"
    listing = {f"{run_id}/{rel}": size for rel, size in storage.find(f"{base}/{run_id}").items()}
    return _collect(storage, base, listing).get(run_id, RunEdits())


def _collect(storage: Storage, base: str, listing: dict[str, int]) -> dict[str, RunEdits]:
    out: dict[str, RunEdits] = {}
    wanted: list[str] = []
    for rel in sorted(listing):
        run_id, _, name = rel.partition("/")
        if not name or "/" in name or name.startswith("."):
            continue  # not an edit (a temporary file, a stray folder)
        entry = out.setdefault(run_id, RunEdits())
        if name == TOMBSTONE_FILE:
            entry.deleted = True
        elif name.endswith(".json"):
            wanted.append(rel)
    data = storage.read_many([f"{base}/{rel}" for rel in wanted], max_bytes=_MAX_EDIT_BYTES + 1)
    for rel in wanted:  # name order is fold order
        run_id, _, name = rel.partition("/")
        raw = data.get(f"{base}/{rel}")
        if raw is None:  # removed since the listing (a deletion going on): nothing to fold
            continue
        entry = out[run_id]
        if len(raw) > _MAX_EDIT_BYTES:
            entry.problems.append(f"{EDITS_DIR}/{run_id}/{name}: larger than {_MAX_EDIT_BYTES} bytes; it is not read")
            continue
        try:
            doc = codec.loads(raw)
        except (ValueError, RecursionError) as err:
            entry.problems.append(f"{EDITS_DIR}/{run_id}/{name}: not JSON ({err})")
            continue
        edit, problems = parse_edit(doc)
        entry.problems += [f"{EDITS_DIR}/{run_id}/{name}: {p}" for p in problems]
        entry.edits.append(edit)
    return out


def add_edit(storage: Storage, project: str, run_id: str, **changes: Any) -> dict[str, Any]:
    """Writes one edit of a run (fields of :func:`~lightning_tracker.format.edits.new_edit`); returns it.

    The document is new and immutable (its name is the time and a random token), so an
    edit never races another edit or the run's own writer. The change object follows it,
    so the project index reads the run again.

    Raises:
        InvalidArgumentError: a value is not allowed (checked before anything is written).
    """
    now = time.time_ns()
    doc = new_edit(now / 1e9, **changes)
    storage.write_bytes(f"{project}/{EDITS_DIR}/{run_id}/{edit_name(now, secrets.token_hex(4))}", codec.dumps(doc))
    record_change(storage, project, run_id, "edit")
    return parse_edit(doc)[0]
