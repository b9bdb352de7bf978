"""Stored checkpoints, the read side: the manifest ``models.json`` and verified downloads.

``Run.checkpoints`` lists a run's checkpoints as :class:`CheckpointRef` objects and
``Run.checkpoint(key)`` finds one by alias (``best``, ``latest``, a user alias), name or
file name. :meth:`CheckpointRef.download` streams the object to a temporary file and
checks its size and sha256 against the manifest before handing it over. The manifest's
shape is :mod:`lightning_tracker.format.documents`'s; this module imports neither torch
nor Lightning, nor the writers.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from lightning_tracker.exceptions import (
    CheckpointIntegrityError,
    CheckpointNotFoundError,
    ObjectMissingError,
    StorageError,
)
from lightning_tracker.format.codec import loads
from lightning_tracker.format.documents import new_manifest
from lightning_tracker.format.layout import MODELS_DIR, MODELS_FILE
from lightning_tracker.format.validate import check_manifest
from lightning_tracker.storage import Storage, remove_file

__all__ = ["CheckpointList", "CheckpointRef", "find_checkpoint", "list_checkpoints", "read_manifest"]

_BLOCK = 1 << 22  # bytes read and hashed at a time


class CheckpointRef:
    """One stored checkpoint of a run, as listed in its manifest.

    Attributes:
        name: the object name, unique in the run (``"epoch=3-step=40.ckpt"``).
        entry: the manifest entry (file, step, epoch, monitor, score, size, sha256, aliases).

    Example:
        >>> import tempfile
        >>> from lightning_tracker.format.codec import dumps
        >>> from lightning_tracker.format.documents import manifest_entry, resolve_aliases
        >>> storage = Storage("memory://doc-ref")  # a run with one stored checkpoint, as the writer leaves it
        >>> storage.write_bytes("p/r1/models/last.ckpt", b"weights")
        >>> manifest = new_manifest()
        >>> manifest["checkpoints"].append(manifest_entry(
        ...     "last.ckpt", "last.ckpt", 0, step=10, epoch=0, monitor=None, mode=None, score=None,
        ...     size=7, sha256=hashlib.sha256(b"weights").hexdigest(), saved_time=None))
        >>> resolve_aliases(manifest, {})
        >>> storage.write_bytes("p/r1/models.json", dumps(manifest))
        >>> ref = find_checkpoint(storage, "p/r1", "latest")
        >>> ref.name, ref.size, ref.aliases
        ('last.ckpt', 7, ['latest'])
        >>> with open(ref.download(os.path.join(tempfile.mkdtemp(), "copy.ckpt")), "rb") as f:
        ...     f.read()
        b'weights'
    """

    def __init__(self, storage: Storage, run_path: str, entry: dict[str, Any]) -> None:
        self.storage = storage
        self.run_path = run_path
        self.entry = entry
        self.name: str = entry["name"]

    def __repr__(self) -> str:
        return f"CheckpointRef({self.name!r}, step={self.step}, aliases={self.aliases})"

    step = property(lambda self: self.entry.get("step"), doc="The global step it was saved at.")
    epoch = property(lambda self: self.entry.get("epoch"), doc="The epoch it was saved in.")
    score = property(lambda self: self.entry.get("score"), doc="The monitored metric's value, if any.")
    size = property(lambda self: self.entry["size"], doc="Size in bytes.")
    sha256 = property(lambda self: self.entry["sha256"], doc="Hex sha256 of the content.")
    aliases = property(lambda self: list(self.entry.get("aliases", [])), doc="Aliases naming it.")

    @property
    def url(self) -> str:
        """Where the object lives."""
        return self.storage.full_url(f"{self.run_path}/{MODELS_DIR}/{self.name}")

    def download(self, path: str | os.PathLike[str]) -> str:
        """Downloads the checkpoint to ``path`` (a file, or an existing folder) and verifies it.

        The bytes are streamed to a temporary file, checked against the manifest's size and
        sha256, and only then renamed to ``path``; a bad object never reaches ``path``.

        Returns:
            The local file path, ready for ``Trainer.fit(ckpt_path=...)``.

        Raises:
            ObjectMissingError: the object is missing (deleted since the manifest was read).
            CheckpointIntegrityError: the object is truncated or corrupted.
        """
        dest = os.fspath(path)
        if os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(self.name))
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        tmp = f"{dest}.{os.getpid()}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with self.storage.open(f"{self.run_path}/{MODELS_DIR}/{self.name}") as src, open(tmp, "wb") as out:
                while block := src.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
        except FileNotFoundError:
            remove_file(tmp)
            raise ObjectMissingError(
                f"checkpoint {self.name!r} is listed but missing at {self.url} (deleted since the list was "
                "read?); list the run's checkpoints again with run.checkpoints"
            ) from None
        except BaseException:
            remove_file(tmp)
            raise
        problem = None
        if size != self.size:
            problem = f"is truncated or padded: {size} bytes, the manifest says {self.size}"
        elif digest.hexdigest() != self.sha256:
            problem = f"is corrupted: sha256 {digest.hexdigest()}, the manifest says {self.sha256}"
        if problem is not None:
            remove_file(tmp)
            raise CheckpointIntegrityError(
                f"checkpoint {self.name!r} at {self.url} {problem}; it was not loaded. "
                "Download it again, or pick another one from run.checkpoints."
            )
        os.replace(tmp, dest)
        return dest


class CheckpointList(list[CheckpointRef]):
    """A run's stored checkpoints (:class:`CheckpointRef`), oldest first."""

    def to_frame(self) -> Any:
        """One row per checkpoint: ``name, step, epoch, monitor, score, size, sha256, aliases, ...``."""
        import pandas as pd

        columns = [
            "name",
            "file",
            "step",
            "epoch",
            "monitor",
            "mode",
            "score",
            "size",
            "sha256",
            "aliases",
            "saved_time",
            "stored_time",
            "state",
        ]
        return pd.DataFrame([{c: ref.entry.get(c) for c in columns} for ref in self], columns=columns)


def read_manifest(storage: Storage, run_path: str) -> dict[str, Any]:
    """The manifest of a run; an empty one when it stored no checkpoint.

    Raises:
        StorageError: the manifest is not JSON or not of the format's shape (the message
            names the file and what is wrong); no checkpoint of it is trusted.
    """
    try:
        data = storage.read_bytes(f"{run_path}/{MODELS_FILE}")
    except FileNotFoundError:
        return new_manifest()
    try:
        manifest = loads(data)
    except ValueError as err:  # not JSON, or not UTF-8
        problems = [f"not JSON ({err})"]
    else:
        problems = check_manifest(manifest)
    if problems:
        raise StorageError(
            f"the checkpoint manifest {storage.full_url(f'{run_path}/{MODELS_FILE}')} is damaged: "
            f"{'; '.join(problems)}; its checkpoints cannot be listed (the objects are in {MODELS_DIR}/)"
        )
    return dict(manifest)


def list_checkpoints(storage: Storage, run_path: str) -> CheckpointList:
    """The stored checkpoints of the run at ``run_path``."""
    manifest = read_manifest(storage, run_path)
    return CheckpointList(CheckpointRef(storage, run_path, e) for e in manifest["checkpoints"])


def find_checkpoint(storage: Storage, run_path: str, key: str) -> CheckpointRef:
    """The checkpoint named by an alias (``"best"``, ``"latest"``, a user alias), a name or a file name.

    Raises:
        CheckpointNotFoundError: nothing matches ``key``.
    """
    manifest = read_manifest(storage, run_path)
    entries = {e["name"]: e for e in manifest["checkpoints"]}
    name = manifest["aliases"].get(key, key)
    if name not in entries:
        same_file = [e for e in manifest["checkpoints"] if e.get("file") == key]
        if not same_file:
            raise CheckpointNotFoundError(
                f"no checkpoint {key!r} in run {storage.full_url(run_path)}; aliases: "
                f"{sorted(manifest['aliases']) or 'none'}, names: {sorted(entries)[:10] or 'none'}"
            )
        name = max(same_file, key=lambda e: e["seq"])["name"]
    return CheckpointRef(storage, run_path, entries[name])
