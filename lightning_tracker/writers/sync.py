"""Upload spooled runs: after an outage, a crash, or an ``offline=True`` run.

Each spool folder holds a ``spool.json`` naming the run's store (never its credentials).
Syncing a run is one round of the same :class:`~lightning_tracker.writers.mirror.Mirror`
a live run uses, after storing checkpoints a crashed run left staged. It is idempotent:
immutable files already in the store with the same size are skipped, so running it
twice, or beside a live run, is safe. A run that is not live and whose round completed
leaves the spool (``$LIGHTNING_TRACKER_KEEP_SPOOL`` keeps it), so ``sync --list`` lists only
what is still to upload.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from lightning_tracker._settings import KEEP_SPOOL
from lightning_tracker.exceptions import InvalidArgumentError, StorageError
from lightning_tracker.format.documents import run_state
from lightning_tracker.format.layout import DOCUMENTS, EVENTS_PREFIX, RUN_FILE, SPOOL_FILE, STAGING_DIR
from lightning_tracker.format.validate import parse_run
from lightning_tracker.storage import Storage
from lightning_tracker.writers.checkpoints import CheckpointProducer
from lightning_tracker.writers.mirror import Mirror, MirrorReport
from lightning_tracker.writers.spool import default_spool_root, find_spooled_runs, read_spool, remove_spooled_run

__all__ = ["spooled_runs", "sync", "sync_run"]


def _is_live(local_dir: str) -> bool:
    """Whether the run in ``local_dir`` is still being written by a live process (as a reader
    shows it: the same checked ``run.json``, fields of the wrong type read as empty)."""
    try:
        with open(os.path.join(local_dir, RUN_FILE), "rb") as f:
            run = parse_run(f.read())
    except FileNotFoundError:
        return False
    return bool(run.doc) and run_state(run.doc) == "running"


def _growing_event_file(path: str) -> bool:
    """Whether ``path`` is the newest event file of its folder, looked at now: the only
    one a live run may still append to (a rotation makes the older ones immutable)."""
    name = os.path.basename(path)
    if not name.startswith(EVENTS_PREFIX):
        return False
    folder = os.path.dirname(path)
    return name == max(n for n in os.listdir(folder) if n.startswith(EVENTS_PREFIX))


def sync_run(local_dir: str, storage_options: dict[str, Any] | None = None, keep: bool | None = None) -> MirrorReport:
    """Uploads one spooled run; returns what was uploaded and what is still pending.

    A damaged ``spool.json`` is reported (``report.error``), not raised: sync goes on
    with the other runs. When the run is not live and the round completed, its spool
    folder is removed unless ``keep`` (None: ``$LIGHTNING_TRACKER_KEEP_SPOOL``).

    Raises:
        InvalidArgumentError: ``local_dir`` is not a spool folder of a run.
    """
    try:
        spool = read_spool(local_dir)
    except StorageError as err:
        return MirrorReport(error=err)
    if spool is None:
        raise InvalidArgumentError(
            f"{local_dir!r} is not a spooled run (it has no spool.json); list spooled runs with: "
            "lightning-tracker sync --list"
        )
    try:
        storage = Storage(spool.url, storage_options)
    except InvalidArgumentError as err:  # written by a version that took it (S3://): no round can succeed
        return MirrorReport(
            error=StorageError(f"{os.path.join(local_dir, SPOOL_FILE)} names a store that cannot be opened: {err}")
        )
    live = _is_live(local_dir)
    if not live and os.path.isdir(os.path.join(local_dir, STAGING_DIR)):
        # snapshots a crashed run staged but never stored; its Lightning folder may be gone since,
        # so nothing is unlisted here (retention is the live run's business)
        CheckpointProducer(local_dir, retention=False).flush()
    # beside a live run, its own mirror sends the documents (an older copy sent by a slow
    # sync must never land after the live run's final one) and the growing event file,
    # decided per file at the moment it is looked at
    documents = {os.path.join(local_dir, name) for name in DOCUMENTS}
    mirror = Mirror(
        local_dir, storage, spool.prefix, skip=lambda p: live and (p in documents or _growing_event_file(p))
    )
    mirror.change_kind = "sync"  # a run.json it commits is told to the project index as synced
    asked = set(mirror.pending())  # what there is to upload as the round starts
    try:
        listing = storage.find(spool.prefix)
    except Exception as err:  # noqa: BLE001 - reported, not raised: sync goes on with other runs
        return MirrorReport(pending=mirror.pending(), error=err)
    report = mirror.run_once(remote_listing=listing)
    if live:  # what the live run wrote during the round is its own mirror's to publish, not a failure of sync
        report.pending = [rel for rel in report.pending if rel in asked]
    elif report.complete and not (KEEP_SPOOL.get() if keep is None else keep):
        remove_spooled_run(local_dir)  # the store holds all of it: nothing left to sync
    return report


def spooled_runs(targets: Iterable[str] | None = None, spool_root: str | None = None) -> list[str]:
    """The spool folders of runs that ``targets`` name or hold; None: every run below ``spool_root``.

    A target inside the spool root that holds no run any more (or is gone) names nothing to
    do: a run whose upload completed leaves the spool.

    Raises:
        InvalidArgumentError: a target outside the spool root is not a folder, or holds no
            spooled run (a run of a local store is written in place and needs no sync).

    Example:
        >>> spooled_runs([])
        []
    """
    root = os.path.abspath(spool_root or default_spool_root())
    if targets is None:
        return find_spooled_runs(root)
    dirs: list[str] = []
    for target in targets:
        if os.path.commonpath([root, os.path.abspath(target)]) == root:  # uploaded and removed, or never spooled
            dirs += find_spooled_runs(target) if os.path.isdir(target) else []
            continue
        if not os.path.isdir(target):
            raise InvalidArgumentError(
                f"sync target {target!r} is not a folder; pass a spool folder of a run, "
                "or nothing to sync every spooled run."
            )
        found = find_spooled_runs(target)
        if not found:
            raise InvalidArgumentError(
                f"sync target {target!r} holds no spooled run (no spool.json below it); only runs of remote "
                "stores are spooled: list them with `lightning-tracker sync --list`."
            )
        dirs += found
    return dirs


def sync(
    targets: Iterable[str] | None = None,
    *,
    spool_root: str | None = None,
    storage_options: dict[str, Any] | None = None,
    on_run: Callable[[str, MirrorReport], None] | None = None,
    keep: bool | None = None,
) -> dict[str, MirrorReport]:
    """Uploads spooled runs.

    Args:
        targets: spool folders of runs, or folders holding them (each must hold one); None:
            every run below ``spool_root``. An empty list syncs nothing.
        spool_root: where to look when ``targets`` is None.
        storage_options: fsspec options (credentials, endpoint) for the remote store.
        on_run: called after each run with its folder and report (progress display).
        keep: keep a run's spool folder after a complete upload (None: ``$LIGHTNING_TRACKER_KEEP_SPOOL``).

    Returns:
        Each run folder mapped to its report; ``report.complete`` says it is all remote.

    Raises:
        InvalidArgumentError: a target is not a folder or holds no spooled run.

    Example:
        >>> sync([])
        {}
    """
    results = {}
    for local_dir in spooled_runs(targets, spool_root):
        report = sync_run(local_dir, storage_options, keep)
        results[local_dir] = report
        if on_run is not None:
            on_run(local_dir, report)
    return results
