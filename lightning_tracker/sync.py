"""Upload spooled runs: after an outage, a crash, or an ``offline=True`` run.

Each spool folder holds a ``spool.json`` naming the run's remote URL (never its
credentials). Syncing is idempotent: immutable files already present remotely with the
same size are skipped, so running it twice, or beside a live run, is safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from lightning_tracker.checkpoints import sync_checkpoints
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.run import DATA_DIRS, MUTABLE_FILES, RUN_FILE, SPOOL_FILE, loads, parse_chunk_name, run_state
from lightning_tracker.storage import Storage
from lightning_tracker.writers.uploader import Uploader, UploadReport

__all__ = ["default_spool_root", "find_spooled_runs", "spool_dir_for", "sync", "sync_run"]


def default_spool_root() -> str:
    """The local folder for runs bound to remote storage (``$LIGHTNING_TRACKER_SPOOL``)."""
    env = os.environ.get("LIGHTNING_TRACKER_SPOOL")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "lightning_tracker", "spool")


def spool_dir_for(storage: Storage, spool_root: str | None = None) -> str:
    """The local spool folder mirroring ``storage``'s root."""
    safe = storage.root.replace(":", "_").strip("/")
    return os.path.join(spool_root or default_spool_root(), storage.protocol, *safe.split("/"))


def find_spooled_runs(root: str | None = None) -> list[str]:
    """Spool folders of runs below ``root`` (default: the spool root).

    Example:
        >>> find_spooled_runs("/nonexistent-folder")
        []
    """
    root = os.path.abspath(root or default_spool_root())
    found = []
    for dirpath, dirnames, files in os.walk(root):
        if SPOOL_FILE in files:
            found.append(dirpath)
            dirnames[:] = []
    return sorted(found)


def _is_live(local_dir: str) -> bool:
    """Whether the run in ``local_dir`` is still being written by a live process."""
    try:
        with open(os.path.join(local_dir, RUN_FILE), "rb") as f:
            return run_state(loads(f.read())) == "running"
    except (FileNotFoundError, ValueError):
        return False


def _growing_event_file(path: str) -> bool:
    """Whether ``path`` is the newest event file of its folder, looked at now: the only
    one a live run may still append to (a rotation makes the older ones immutable)."""
    name = os.path.basename(path)
    if not name.startswith("events.out.tfevents."):
        return False
    folder = os.path.dirname(path)
    return name == max(n for n in os.listdir(folder) if n.startswith("events.out.tfevents."))


def sync_run(local_dir: str, storage_options: dict[str, Any] | None = None) -> UploadReport:
    """Uploads one spooled run; returns what was uploaded and what is still pending.

    Raises:
        InvalidArgumentError: ``local_dir`` is not a spool folder of a run.
    """
    try:
        with open(os.path.join(local_dir, SPOOL_FILE), "rb") as f:
            spool = loads(f.read())
    except FileNotFoundError:
        raise InvalidArgumentError(
            f"{local_dir!r} is not a spooled run (it has no {SPOOL_FILE}); list spooled runs with: "
            "lightning-tracker sync --list"
        ) from None
    storage = Storage(spool["url"], storage_options)
    live = _is_live(local_dir)
    # beside a live run, its own uploader sends the mutable documents (an older copy sent
    # by a slow sync must never land after the live run's final one) and the growing
    # event file, decided per file at the moment it is looked at
    mutable = {os.path.join(local_dir, name) for name in MUTABLE_FILES}
    uploader = Uploader(local_dir, storage, spool["prefix"], int(spool["session"]),
                        skip=lambda p: live and (p in mutable or _growing_event_file(p)))  # fmt: skip
    uploader.load_state()
    try:
        listing = storage.find(spool["prefix"])
    except Exception as err:  # noqa: BLE001 - reported, not raised: sync goes on with other runs
        return UploadReport(pending=uploader.pending(), error=err)
    report = uploader.run_once(remote_listing=listing)
    if report.complete:
        _delete_covered(storage, spool["prefix"], listing, report)
    if not live:  # a live run uploads its own checkpoints
        pending, error = sync_checkpoints(local_dir, storage, spool["prefix"])
        report.pending += pending
        report.error = report.error or error
    return report


def _delete_covered(storage: Storage, prefix: str, listing: dict[str, int], report: UploadReport) -> None:
    """Removes remote chunks that a compacted remote chunk of the same session covers."""
    for folder in DATA_DIRS:
        names = {rel.split("/", 1)[1] for rel in [*listing, *report.uploaded] if rel.startswith(f"{folder}/")}
        ranges = [(p, n) for n in names if (p := parse_chunk_name(n)) is not None]
        for (session, first, last), name in ranges:
            covered = any(
                s == session and f <= first and last <= l and (f, l) != (first, last) for (s, f, l), _ in ranges
            )
            if not covered:
                continue
            try:
                storage.rm(f"{prefix}/{folder}/{name}")
            except Exception as err:  # noqa: BLE001 - garbage only: readers skip covered chunks
                report.error = report.error or err
                return
            report.deleted.append(f"{folder}/{name}")


def sync(
    targets: Iterable[str] | None = None,
    *,
    spool_root: str | None = None,
    storage_options: dict[str, Any] | None = None,
    on_run: Callable[[str, UploadReport], None] | None = None,
) -> dict[str, UploadReport]:
    """Uploads spooled runs.

    Args:
        targets: spool folders of runs, or folders holding them; default: every run
            below ``spool_root``.
        spool_root: where to look when ``targets`` is None.
        storage_options: fsspec options (credentials, endpoint) for the remote store.
        on_run: called after each run with its folder and report (progress display).

    Returns:
        Each run folder mapped to its report; ``report.complete`` says it is all remote.
    """
    dirs: list[str] = []
    for target in targets or [spool_root or default_spool_root()]:
        if not os.path.isdir(target):
            raise InvalidArgumentError(f"sync target {target!r} is not a folder; pass a spool folder of a run.")
        dirs += find_spooled_runs(target)
    results = {}
    for local_dir in dirs:
        report = sync_run(local_dir, storage_options)
        results[local_dir] = report
        if on_run is not None:
            on_run(local_dir, report)
    return results
