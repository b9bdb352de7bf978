"""Checkpoints as a producer: what ``ModelCheckpoint`` saves becomes ``models/<name>`` and ``models.json``.

On the training thread (``after_save_checkpoint``) a save costs a few ``stat`` calls, one
hard link into the run's staging folder ``.checkpoints/`` and a small sidecar: a later
deletion or overwrite by ``ModelCheckpoint`` cannot touch that snapshot (Lightning issue
16770). Where a hard link is impossible (another filesystem) the copy is left to the
flusher thread. Nothing here ever raises into training.

On the flusher thread, :meth:`CheckpointProducer.flush` reads each snapshot's step and
epoch (rewriting it without secret-looking ``hyper_parameters`` when it has some), hashes
it, moves it to ``models/<name>`` in the run folder and lists it in ``models.json``; with
``log_model=True`` a checkpoint ``ModelCheckpoint`` deleted or replaced is unlisted, then
its file removed. The mirror publishes both to a remote store (objects before the manifest).
Neither torch nor Lightning is imported at module level.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.codec import dumps, loads
from lightning_tracker.format.documents import (
    RESERVED_ALIASES,
    STAGED_CHECKPOINT,
    STAGING_STATE,
    manifest_entry,
    new_manifest,
    new_staged_checkpoint,
    new_staging_state,
    resolve_aliases,
)
from lightning_tracker.format.layout import (
    MODELS_DIR,
    MODELS_FILE,
    STAGING_DIR,
    STAGING_STATE_FILE,
    parse_staged_name,
    staged_names,
)
from lightning_tracker.format.validate import parse_document
from lightning_tracker.storage import atomic_write, remove_file
from lightning_tracker.writers import hyperparams
from lightning_tracker.writers.points import Warner

__all__ = ["CheckpointProducer"]

log = logging.getLogger(__name__)

_BLOCK = 1 << 22


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _source_alive(source: list[Any]) -> bool:
    """Whether the file Lightning saved is still there, unchanged (not deleted, not replaced)."""
    try:
        return _identity(os.stat(source[0])) == list(source[1:])
    except OSError:
        return False


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)  # hashlib releases the GIL on large blocks
    return digest.hexdigest()


def _unique_name(file: str, used: set[str], seq: int) -> str:
    # an object name is never reused, so a reader holding an older manifest never gets new bytes
    if file not in used:
        return file
    stem, dot, ext = file.rpartition(".")
    return f"{stem}~{seq}.{ext}" if dot and stem else f"{file}~{seq}"


_HPARAM_FIELDS = ("hyper_parameters", "datamodule_hyper_parameters")  # what save_hyperparameters() puts there


def _read_and_redact(path: str) -> tuple[int | None, int | None]:
    """Lightning's ``global_step`` and ``epoch`` from a checkpoint (tensors stay memory-mapped).

    When its hyperparameters hold secret-looking values (``api_key``), ``path`` is first
    replaced by a copy without them (a new file: the hard link to Lightning's own file is
    broken, that file stays as it is). Raises OSError when that copy cannot be written:
    the snapshot is then retried, never stored with the secret.
    """
    try:
        import torch

        ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception:  # noqa: BLE001 - a foreign file: the manifest simply lacks these fields
        return None, None
    if isinstance(ckpt, dict):
        redacted = {k: hyperparams.redact_secrets(ckpt[k]) for k in _HPARAM_FIELDS if k in ckpt}
        if any(redacted[k] is not ckpt[k] for k in redacted):
            atomic_write(path, lambda out: torch.save({**ckpt, **redacted}, out))
    try:
        return int(ckpt["global_step"]), int(ckpt["epoch"])
    except Exception:  # noqa: BLE001 - not a Lightning checkpoint
        return None, None


def _score(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class CheckpointProducer:
    """Turns ``ModelCheckpoint`` saves of one run into stored checkpoints in its local folder.

    Args:
        local_dir: the run's local folder (the store's folder, or a spool folder).
        log_model: ``True`` mirrors ``ModelCheckpoint``'s retention; ``"all"`` keeps every
            checkpoint ever saved.
        on_object: called when a checkpoint is in ``models/`` (before its hash is done):
            the run's mirror wakes and uploads it meanwhile.
        retention: follow ``ModelCheckpoint``'s deletions (``log_model=True``); False (``sync``
            of a crashed run, whose Lightning folder may be gone) stores what was staged and
            unlists nothing.

    Example:
        >>> import tempfile
        >>> from types import SimpleNamespace
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "epoch=0-step=10.ckpt")
        >>> with open(path, "wb") as f:
        ...     _ = f.write(b"weights")
        >>> callback = SimpleNamespace(best_k_models={path: 0.5}, last_model_path="", best_model_path=path,
        ...                            monitor="val/loss", mode="min", state_key="cb")
        >>> producer = CheckpointProducer(folder, log_model=True)
        >>> producer.on_save(callback)  # the training thread
        >>> producer.flush()  # the flusher thread
        >>> [(e["name"], e["score"], e["aliases"]) for e in producer.manifest["checkpoints"]]
        [('epoch=0-step=10.ckpt', 0.5, ['best', 'best:val/loss', 'latest'])]
        >>> os.listdir(os.path.join(folder, "models"))
        ['epoch=0-step=10.ckpt']
    """

    def __init__(
        self,
        local_dir: str,
        log_model: bool | str = True,
        on_object: Callable[[], None] | None = None,
        retention: bool = True,
    ) -> None:
        self.local_dir = local_dir
        self.retention = retention
        self._on_object = on_object or (lambda: None)
        self.staging = os.path.join(local_dir, STAGING_DIR)
        self.keep_all = log_model == "all"
        self.manifest: dict[str, Any] = new_manifest()
        self.alias_seq: dict[str, int] = {}  # alias -> staging number of the save it names
        self.stages: dict[int, str] = {}  # staging number -> stored name
        self.sources: dict[str, list[Any]] = {}  # stored name -> [path, dev, ino, size, mtime_ns]
        self._seq = 0
        self._known: dict[str, list[Any]] = {}  # local path -> identity already staged, + its number
        self._monitors: dict[str, str] = {}  # callback state key -> monitor, first seen first
        self._lock = threading.RLock()
        self._written = b""
        self._warn = Warner(log)
        os.makedirs(self.staging, exist_ok=True)
        self._load()

    # -- state --------------------------------------------------------------------------
    def reload(self) -> None:
        """Reads ``models.json`` again (the store's copy, merged into a resumed run)."""
        with self._lock:
            self._written = b""
            self._load()

    def _load(self) -> None:
        try:
            with open(os.path.join(self.local_dir, MODELS_FILE), "rb") as f:
                self.manifest = loads(f.read())  # an earlier session's (a resume downloads the store's)
        except (OSError, ValueError):
            pass
        state = self._staging_document(STAGING_STATE, os.path.join(self.staging, STAGING_STATE_FILE))
        if state is not None:
            self.sources = state.get("sources") or {}
            self.alias_seq = state.get("alias_seq") or {}
            self.stages = {int(k): v for k, v in (state.get("stages") or {}).items() if k.isdigit()}
            if isinstance(state.get("keep_all"), bool):
                self.keep_all = state["keep_all"]
        numbers = {name: stage for stage, name in self.stages.items()}
        for name, source in self.sources.items():
            if name in numbers:
                self._known[source[0]] = [*source[1:], numbers[name]]
        self._seq = max(self.stages, default=-1) + 1
        for seq in self.staged():
            sidecar = self._sidecar(seq)
            if sidecar is not None:
                self._known[sidecar["source"][0]] = [*sidecar["source"][1:], seq]
                self._seq = max(self._seq, seq + 1)

    def _sidecar(self, seq: int) -> dict[str, Any] | None:
        return self._staging_document(STAGED_CHECKPOINT, os.path.join(self.staging, staged_names(seq)[1]))

    def _staging_document(self, kind: str, path: str) -> dict[str, Any] | None:
        """A staging file, checked (:func:`~lightning_tracker.format.validate.parse_document`);
        None when it is missing or damaged (a damaged one is named in a warning)."""
        try:
            with open(path, "rb") as f:
                parsed = parse_document(kind, f.read())
        except OSError:
            return None
        if parsed.damaged:
            self._warn(
                f"damaged:{path}",
                "log_model: %s is damaged (%s); it is not used",
                path,
                "; ".join(parsed.problems),
            )
            return None
        return parsed.doc

    def staged(self) -> list[int]:
        """Staging numbers of the snapshots not stored yet."""
        try:
            names = os.listdir(self.staging)
        except FileNotFoundError:
            return []
        return sorted(seq for n in names if (seq := parse_staged_name(n)) is not None)

    # -- the training thread ------------------------------------------------------------
    def on_save(self, callback: Any) -> None:
        """Snapshots what ``callback`` (a ``ModelCheckpoint``, found by duck typing) just saved.

        Never raises: a snapshot that cannot be taken is skipped with a warning.
        """
        try:
            self._on_save(callback)
        except Exception as err:  # noqa: BLE001 - a checkpoint we cannot keep must not stop training
            self._warn(
                "save",
                "log_model: could not keep the checkpoint just saved (%s: %s); training goes on",
                type(err).__name__,
                err,
            )

    def _on_save(self, callback: Any) -> None:
        key = str(getattr(callback, "state_key", None) or id(callback))
        best_k = dict(getattr(callback, "best_k_models", None) or {})
        candidates = [
            getattr(callback, "_last_checkpoint_saved", ""),
            getattr(callback, "last_model_path", ""),
            getattr(callback, "best_model_path", ""),
            *best_k,
        ]
        monitor = getattr(callback, "monitor", None)
        with self._lock:
            for path in dict.fromkeys(str(p) for p in candidates if p):
                self._stage(path, callback, monitor, best_k.get(path))
            best = str(getattr(callback, "best_model_path", "") or "")
            seq = self._seq_of(best) if monitor and best else None
            if seq is not None and monitor:
                self.alias_seq[f"best:{monitor}"] = seq
                self._monitors.setdefault(key, monitor)
                if next(iter(self._monitors)) == key:  # "best" follows the first monitoring callback
                    self.alias_seq["best"] = seq

    def _seq_of(self, path: str) -> int | None:
        ident = self._known.get(os.path.abspath(path))
        return ident[-1] if ident else None

    def _stage(self, path: str, callback: Any, monitor: str | None, score: Any) -> None:
        if "://" in path and not path.startswith("file://"):
            self._warn(
                "remote",
                "log_model: ModelCheckpoint writes to %s, not to a local folder, so its "
                "checkpoints are not stored; leave ModelCheckpoint(dirpath=None) to write into the run's "
                "folder",
                path,
            )
            return
        path = os.path.abspath(path.removeprefix("file://"))
        try:
            st = os.stat(path)
        except OSError:
            return  # not written yet or already removed
        if os.path.islink(path) or not os.path.isfile(path):
            return  # save_last="link": the same bytes as a checkpoint already staged
        ident = _identity(st)
        known = self._known.get(path)
        if known is not None and known[:-1] == ident:
            return
        seq = self._seq
        self._seq += 1
        try:
            os.link(path, os.path.join(self.staging, staged_names(seq)[0]))
            copy = False
        except OSError:
            copy = True  # another filesystem: the flusher copies it, off the training thread
        self._known[path] = [*ident, seq]
        sidecar = new_staged_checkpoint(
            seq,
            os.path.basename(path),
            [path, *ident],
            copy=copy,
            monitor=monitor,
            mode=getattr(callback, "mode", None),
            score=_score(score),
            saved_time=time.time(),
            step=getattr(callback, "_last_global_step_saved", None),
        )
        atomic_write(os.path.join(self.staging, staged_names(seq)[1]), dumps(sidecar))
        self.alias_seq["latest"] = seq

    def add_alias(self, alias: str, path: str | None = None) -> None:
        """Names the checkpoint saved at local ``path`` (default: the latest) ``alias``.

        Raises:
            InvalidArgumentError: ``alias`` is reserved or not a short name, or nothing
                was saved at ``path``.
        """
        if (
            not isinstance(alias, str)
            or not alias
            or alias in RESERVED_ALIASES
            or alias.startswith("best:")
            or len(alias) > 128
            or any(ord(c) < 32 for c in alias)
        ):
            raise InvalidArgumentError(
                f"alias={alias!r} cannot be used; pass a short name such as 'production' "
                f"(not {', '.join(RESERVED_ALIASES)} or 'best:<metric>', which the tracker maintains)."
            )
        with self._lock:
            seq = self.alias_seq.get("latest") if path is None else self._seq_of(os.fspath(path))
            if seq is None:
                raise InvalidArgumentError(
                    f"checkpoint={path!r} was not saved by a ModelCheckpoint of this run; pass the path "
                    "ModelCheckpoint wrote (for example callback.best_model_path) or None for the latest."
                )
            self.alias_seq[alias] = seq

    # -- the flusher thread -------------------------------------------------------------
    def flush(self) -> None:
        """Stores staged snapshots, unlists deleted checkpoints and writes ``models.json``."""
        for seq in self.staged():
            self._store(seq)
        gone = self._unlist_deleted()
        self._write_manifest()
        for name in gone:  # unlisted first, removed second: a listed object always exists
            remove_file(os.path.join(self.local_dir, MODELS_DIR, name))

    def _store(self, seq: int) -> None:
        meta = self._sidecar(seq)
        blob = os.path.join(self.staging, staged_names(seq)[0])
        if meta is None or seq in self.stages:
            self._drop(seq)  # stored and listed; the process stopped before cleaning up
            return
        alive = _source_alive(meta["source"])
        if meta.get("copy") and not os.path.exists(blob) and alive:
            try:
                with open(meta["source"][0], "rb") as src:
                    atomic_write(blob, lambda out: shutil.copyfileobj(src, out, _BLOCK))
            except OSError as err:
                self._warn(
                    f"copy:{seq}",
                    "log_model: could not copy checkpoint %s into %s (%s); it is not stored",
                    meta["source"][0],
                    self.staging,
                    err,
                )
                self._drop(seq)
                return
        if not os.path.exists(blob) or (self.retention and not self.keep_all and not alive):
            self._drop(seq)  # deleted or replaced before it was stored: nothing to keep
            return
        step, epoch = _read_and_redact(blob)  # first: the object stored, hashed and sized is the redacted copy
        with self._lock:
            order = int(self.manifest.get("next_seq", 0))
            taken = {e["name"] for e in self.manifest["checkpoints"]} | set(self.stages.values())
            name = _unique_name(meta["file"], taken, order)
        target = os.path.join(self.local_dir, MODELS_DIR, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        remove_file(target)  # left by a crash before the manifest named it: the same bytes again
        os.link(blob, target)  # the snapshot stays until the manifest names the object
        self._on_object()  # the mirror may upload it while it is hashed here
        digest, size = _sha256(blob), os.path.getsize(blob)
        entry = manifest_entry(
            name,
            meta["file"],
            order,
            step=step if step is not None else meta.get("step"),
            epoch=epoch,
            monitor=meta.get("monitor"),
            mode=meta.get("mode"),
            score=meta.get("score"),
            size=size,
            sha256=digest,
            saved_time=meta.get("time"),
        )
        with self._lock:
            self.stages[seq] = name
            self.manifest["next_seq"] = order + 1
            self.manifest["checkpoints"].append(entry)
            self.sources[name] = meta["source"]
        self._write_manifest()
        self._drop(seq)

    def _drop(self, seq: int) -> None:
        for name in staged_names(seq):
            remove_file(os.path.join(self.staging, name))

    def _unlist_deleted(self) -> list[str]:
        if self.keep_all or not self.retention:
            return []
        with self._lock:
            gone = [
                e["name"]
                for e in self.manifest["checkpoints"]
                if e["name"] in self.sources and not _source_alive(self.sources[e["name"]])
            ]
            self.manifest["checkpoints"] = [e for e in self.manifest["checkpoints"] if e["name"] not in gone]
            for name in gone:
                self.sources.pop(name, None)
        return gone

    def _write_manifest(self) -> None:
        with self._lock:
            wanted = {alias: self.stages[seq] for alias, seq in self.alias_seq.items() if seq in self.stages}
            resolve_aliases(self.manifest, wanted)
            content = dumps(self.manifest)
            if content == self._written:
                return
            state = new_staging_state(self.sources, self.alias_seq, self.keep_all, self.stages)
            atomic_write(os.path.join(self.staging, STAGING_STATE_FILE), dumps(state))
            if self.manifest["checkpoints"] or os.path.exists(os.path.join(self.local_dir, MODELS_FILE)):
                atomic_write(os.path.join(self.local_dir, MODELS_FILE), content)
            self._written = content
