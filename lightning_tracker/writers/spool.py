"""The spool: the local folder where a run bound to a remote store is written first.

``<spool_root>/<protocol>/<store root>/<project>/<run_id>/`` holds the run's files plus
``spool.json``, which names the store (never its credentials) so ``lightning-tracker
sync`` knows where to upload.
"""

from __future__ import annotations

import os
from typing import Any

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.codec import dumps, loads
from lightning_tracker.format.documents import VERSIONS
from lightning_tracker.format.layout import SPOOL_FILE
from lightning_tracker.storage import Storage, atomic_write

__all__ = ["default_spool_root", "find_spooled_runs", "read_spool", "spool_dir_for", "write_spool"]


def default_spool_root() -> str:
    """The local folder for runs bound to remote storage (``$LIGHTNING_TRACKER_SPOOL``)."""
    env = os.environ.get("LIGHTNING_TRACKER_SPOOL")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "lightning_tracker", "spool")


def spool_dir_for(storage: Storage, spool_root: str | None = None) -> str:
    """The local spool folder mirroring ``storage``'s root, always inside the spool root.

    The root's ``/``-separated parts become folders; a part that a file system would read
    as a way up or out (``..``, ``.``) is written ``%2E%2E``/``%2E``, so
    ``s3://bucket/a/../../x`` gets a folder of its own below the spool root, as its
    objects do in the bucket.

    Example:
        >>> spool_dir_for(Storage("memory://exp/a"), "/spool")
        '/spool/memory/exp/a'
        >>> spool_dir_for(Storage("memory://b/a/../../x"), "/spool")
        '/spool/memory/b/a/%2E%2E/%2E%2E/x'
    """
    safe = storage.root.replace(":", "_").strip("/")
    parts = [p.replace(".", "%2E") if p in (".", "..") else p for p in safe.split("/") if p]
    root = os.path.abspath(spool_root or default_spool_root())
    path = os.path.join(root, storage.protocol, *parts)
    if os.path.commonpath([root, os.path.normpath(path)]) != root:  # never expected: the parts hold no way up
        raise InvalidArgumentError(
            f"save_dir={storage.url!r} would be spooled outside the spool folder {root!r}; "
            "pass a URL without '..' parts."
        )
    return path


def write_spool(local_dir: str, storage: Storage, prefix: str, session: int, offline: bool) -> None:
    """Writes ``spool.json``: where this spooled run is uploaded to."""
    doc = {
        "format_version": VERSIONS[SPOOL_FILE],
        "url": storage.url,
        "prefix": prefix,
        "session": session,
        "offline": offline,
    }
    atomic_write(os.path.join(local_dir, SPOOL_FILE), dumps(doc))


def read_spool(local_dir: str) -> dict[str, Any] | None:
    """The ``spool.json`` of a spooled run, or None when ``local_dir`` is not one."""
    try:
        with open(os.path.join(local_dir, SPOOL_FILE), "rb") as f:
            return dict(loads(f.read()))
    except (FileNotFoundError, NotADirectoryError):
        return None


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
