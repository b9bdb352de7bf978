"""The spool: the local folder where a run bound to a remote store is written first.

``<spool_root>/<protocol>/<store root>/<project>/<run_id>/`` holds the run's files plus
``spool.json``, which names the store (never its credentials) so ``lightning-tracker
sync`` knows where to upload.
"""

from __future__ import annotations

import os

from lightning_tracker._settings import SPOOL
from lightning_tracker.exceptions import InvalidArgumentError, StorageError
from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import new_spool
from lightning_tracker.format.layout import SPOOL_FILE
from lightning_tracker.format.validate import SpoolDocument, parse_document
from lightning_tracker.storage import Storage, atomic_write

__all__ = ["default_spool_root", "find_spooled_runs", "read_spool", "spool_dir_for", "write_spool"]


def default_spool_root() -> str:
    """The local folder for runs bound to remote storage (``$LIGHTNING_TRACKER_SPOOL``)."""
    env = SPOOL.get()
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
    atomic_write(os.path.join(local_dir, SPOOL_FILE), dumps(new_spool(storage.url, prefix, session, offline)))


def read_spool(local_dir: str) -> SpoolDocument | None:
    """The ``spool.json`` of a spooled run, checked; None when ``local_dir`` is not one.

    Raises:
        StorageError: ``spool.json`` is damaged (not JSON, a field of the wrong type, or a
            newer format): the message names the file, the field and the fix.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> write_spool(folder, Storage("memory://doc-spool"), "p/r1", 0, offline=True)
        >>> spool = read_spool(folder)
        >>> spool.url, spool.prefix, spool.offline
        ('memory://doc-spool', 'p/r1', True)
    """
    path = os.path.join(local_dir, SPOOL_FILE)
    try:
        with open(path, "rb") as f:
            parsed = parse_document(SPOOL_FILE, f.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    if parsed.damaged:
        raise StorageError(
            f"{path} is damaged ({'; '.join(parsed.problems)}); sync needs the store it names: repair the file, "
            'for example {"format_version": 1, "url": "s3://bucket/exp", "prefix": "<project>/<run_id>"}'
        )
    assert isinstance(parsed, SpoolDocument)
    return parsed


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
