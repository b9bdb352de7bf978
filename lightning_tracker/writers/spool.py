"""The spool: the local folder where a run bound to a remote store is written first.

``<spool_root>/<protocol>/<readable store root>-<hash>/<project>/<run_id>/`` holds the
run's files plus ``spool.json``, which names the store (never its credentials) so
``lightning-tracker sync`` knows where to upload. The hash (of the store's protocol and
root, as typed) makes the folder one store's alone: ``memory://bkt/team:a`` and
``memory://bkt/team_a`` read alike but never share a folder, and no store's folder lies
inside another's. The readable part is for people; the spool never reads it back.

Runs that earlier versions spooled under ``<spool_root>/<protocol>/<store root with ':'
written '_'>/`` are still found: ``sync`` finds every run by its ``spool.json`` wherever it
lies, and a run resumed with the same store and id moves its old folder to the new place
(only when that folder's ``spool.json`` names exactly this store and run).

A run's spool folder is removed once its upload is complete (``$LIGHTNING_TRACKER_KEEP_SPOOL``
or the logger's ``keep_spool=True`` keeps it): by ``sync`` right after a complete round,
and for a live run when its writer is done, that is when the logger is garbage-collected
or the process exits after a ``finalize`` whose upload was confirmed. Not at ``finalize``
itself: Lightning's own checkpoints are in the spool folder, and ``trainer.test(ckpt_path=
"best")`` after ``fit`` reads them. A run whose upload is incomplete keeps its folder for
``sync``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
from typing import Any

from lightning_tracker._settings import SPOOL
from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.codec import dumps, loads
from lightning_tracker.format.documents import new_spool
from lightning_tracker.format.layout import MODELS_FILE, RUN_FILE, SPOOL_FILE, is_private
from lightning_tracker.format.validate import SpoolDocument, parse_document, parse_run
from lightning_tracker.storage import Storage, atomic_write, remove_file
from lightning_tracker.writers.mirror import PUBLISHED_DIRS

__all__ = [
    "SpoolRelease",
    "remove_spooled_run",
    "default_spool_root",
    "find_spooled_runs",
    "read_spool",
    "prune_empty",
    "spool_dir_for",
    "spool_run_dir",
    "write_spool",
]

log = logging.getLogger(__name__)

LIGHTNING_CHECKPOINTS_DIR = "checkpoints"  # ModelCheckpoint's folder below the logger's log_dir
_UNREADABLE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_READABLE_MAX = 80  # of the store's root in the folder name; the hash is what tells stores apart


def default_spool_root() -> str:
    """The local folder for runs bound to remote storage (``$LIGHTNING_TRACKER_SPOOL``)."""
    env = SPOOL.get()
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "lightning_tracker", "spool")


def spool_dir_for(storage: Storage, spool_root: str | None = None) -> str:
    """The local spool folder of ``storage``: one folder per store, always inside the spool root.

    The folder is named after the store's root made readable (every run of characters
    other than letters, digits, ``.``, ``_``, ``-`` becomes ``_``) and a hash of the store's
    protocol and root, which tells apart stores whose readable names agree.

    Example:
        >>> spool_dir_for(Storage("memory://exp/a"), "/spool")
        '/spool/memory/exp_a-024eec2b6a311ceb'
        >>> spool_dir_for(Storage("memory://bkt/team:a"), "/spool")
        '/spool/memory/bkt_team_a-be9f452ee289b768'
        >>> spool_dir_for(Storage("memory://bkt/team_a"), "/spool")
        '/spool/memory/bkt_team_a-10ec96d42d7c1cd7'
        >>> spool_dir_for(Storage("memory://b/a/../../x"), "/spool").startswith("/spool/memory/b_a_.._.._x-")
        True
    """
    key = f"{storage.protocol}://{storage.root}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = _UNREADABLE_RE.sub("_", storage.root).strip("._-")[:_READABLE_MAX] or "root"
    root = os.path.abspath(spool_root or default_spool_root())
    return os.path.join(root, storage.protocol, f"{readable}-{digest}")


def spool_run_dir(storage: Storage, project: str, run_id: str, spool_root: str | None = None) -> str:
    """The spool folder of one run of ``storage``; a run spooled under the old naming moves here.

    Before spool folders were one store's alone, ``<protocol>/<store root with ':' as
    '_'>/`` held them, shared by stores whose names differ only there. A folder found there
    moves here when its ``spool.json`` names exactly ``storage`` and this run, so a resumed
    run finds its unsynced files and another store's run is never taken for it.
    """
    root = os.path.abspath(spool_root or default_spool_root())
    path = os.path.join(spool_dir_for(storage, root), project, run_id)
    legacy = os.path.join(_legacy_dir(storage, root), project, run_id)
    if legacy != path and not os.path.exists(os.path.join(path, SPOOL_FILE)):
        try:
            spool = read_spool(legacy)
        except StorageError:  # damaged: left where it is, for sync to report
            spool = None
        if spool is not None and spool.url == storage.url and spool.prefix == f"{project}/{run_id}":
            _move_into(legacy, path)
            prune_empty(legacy, root)
    return path


def _legacy_dir(storage: Storage, root: str) -> str:
    """Where versions before the hashed names spooled ``storage`` (``:`` written ``_``)."""
    safe = storage.root.replace(":", "_").strip("/")
    parts = [p.replace(".", "%2E") if p in (".", "..") else p for p in safe.split("/") if p]
    return os.path.join(root, storage.protocol, *parts)


def _move_into(src: str, dst: str) -> None:
    """Moves ``src``'s entries into ``dst`` (Lightning may have made ``dst/checkpoints`` already)."""
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if not os.path.exists(os.path.join(dst, name)):
            os.rename(os.path.join(src, name), os.path.join(dst, name))


def prune_empty(folder: str, stop: str) -> None:
    """Removes ``folder`` and its parents while they are empty, never ``stop`` or above it."""
    stop = os.path.abspath(stop)
    folder = os.path.abspath(folder)
    while folder != stop and os.path.commonpath([stop, folder]) == stop:
        try:
            os.rmdir(folder)
        except OSError:  # not empty (or gone): the folders above are not empty either
            return
        folder = os.path.dirname(folder)


def remove_spooled_run(local_dir: str) -> bool:
    """Removes what the store holds of a spooled run whose upload is complete.

    The mirror publishes the run's top-level files and its data folders, so those go, with
    the spool's own bookkeeping (``spool.json`` first: a half-removed folder is never taken
    for a run to sync). What the store does not hold stays: Lightning's checkpoints that
    ``log_model`` did not store (``checkpoints/``), and any folder of the user's own. The
    store's folders left empty go too.

    Returns:
        Whether the whole folder went (False also when ``local_dir`` is not a spooled run).
    """
    if not os.path.isfile(os.path.join(local_dir, SPOOL_FILE)):
        return False
    stored = _stored_checkpoint_files(local_dir)
    os.remove(os.path.join(local_dir, SPOOL_FILE))
    for name in os.listdir(local_dir):
        path = os.path.join(local_dir, name)
        if not os.path.isdir(path) or os.path.islink(path):
            remove_file(path)
        elif name in PUBLISHED_DIRS or is_private(name):
            shutil.rmtree(path, ignore_errors=True)
        elif name == LIGHTNING_CHECKPOINTS_DIR:
            for file in os.listdir(path):
                if file in stored:
                    remove_file(os.path.join(path, file))
    prune_empty(os.path.join(local_dir, LIGHTNING_CHECKPOINTS_DIR), local_dir)
    kept = os.listdir(local_dir)
    if kept:
        log.info("kept %s in %s: the store does not hold them", ", ".join(sorted(kept)), local_dir)
        return False
    store_dir = os.path.dirname(os.path.dirname(local_dir))  # <store folder>/<project>/<run id>
    prune_empty(local_dir, os.path.dirname(store_dir))
    return True


def _stored_checkpoint_files(local_dir: str) -> set[str]:
    """The names of Lightning's checkpoint files that the run's manifest lists as stored."""
    try:
        with open(os.path.join(local_dir, MODELS_FILE), "rb") as f:
            manifest = loads(f.read())
        return {str(entry["file"]) for entry in manifest.get("checkpoints", []) if entry.get("file")}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # none, or unreadable: nothing counts as stored
        return set()


class SpoolRelease:
    """Removes a live run's spool folder when its writers are done, if its last upload was confirmed.

    Called by ``weakref.finalize`` on the run writer: when the writer is garbage-collected,
    or at exit after the runs still open were closed. The writer sets :attr:`confirmed`
    after a final upload that completed, and clears it when the run reopens. The state is
    the folder's, shared by every writer of this process that opened it (a run resumed in
    the same process by a second logger): the folder goes with the last of them, and only
    when ``run.json`` holds a final status (another process that opened the run since has
    made it ``running`` again).
    """

    _folders: dict[str, list[Any]] = {}  # local folder -> [writers of this process using it, confirmed]
    _lock = threading.Lock()

    def __init__(self, local_dir: str, url: str) -> None:
        self.local_dir = local_dir
        self.url = url
        with self._lock:
            state = self._folders.setdefault(local_dir, [0, False])
            state[0] += 1
            state[1] = False  # a writer opens it: what it writes is not uploaded yet

    @property
    def confirmed(self) -> bool:
        """Whether the store holds everything the folder holds, as the last final upload found."""
        with self._lock:
            return bool(self._folders.get(self.local_dir, [0, False])[1])

    @confirmed.setter
    def confirmed(self, value: bool) -> None:
        with self._lock:
            self._folders.setdefault(self.local_dir, [0, False])[1] = value

    def __call__(self) -> None:
        with self._lock:
            state = self._folders.get(self.local_dir, [1, False])
            state[0] -= 1
            if state[0] > 0:
                return  # another writer of this process still has the run open
            self._folders.pop(self.local_dir, None)
        if not state[1] or _written_since(self.local_dir):
            return
        try:
            if remove_spooled_run(self.local_dir):
                log.info("removed the spool copy %s: the run is complete in %s", self.local_dir, self.url)
        except Exception:  # runs at collection or exit: never raise there
            log.exception("lightning_tracker: removing the spool folder %s failed", self.local_dir)


def _written_since(local_dir: str) -> bool:
    """Whether ``run.json`` says ``running``: another process opened the run after our final upload."""
    try:
        with open(os.path.join(local_dir, RUN_FILE), "rb") as f:
            return parse_run(f.read()).doc.get("status") == "running"
    except OSError:
        return False


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
