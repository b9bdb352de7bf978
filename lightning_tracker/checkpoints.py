"""Checkpoints: upload what ``ModelCheckpoint`` saves, in the background.

Writing (``TrackerLogger(log_model=True | "all")``): Lightning calls
``after_save_checkpoint`` right after its local write. On the training thread we only
hard-link the new file into the run's local staging folder ``.checkpoints/`` (a copy
where a link is impossible) and write a small sidecar; a later deletion or overwrite by
``ModelCheckpoint`` cannot touch that snapshot (Lightning issue 16770). A background
thread hashes, streams each snapshot to ``models/<name>`` with retries and back-off,
and only then lists it in the run's manifest ``models.json``, so a reader never sees a
half-uploaded checkpoint. With ``log_model=True`` a checkpoint deleted or replaced
locally is dropped from the manifest and then deleted remotely; with ``"all"`` every
checkpoint ever saved is kept. What is not uploaded stays staged until
``lightning-tracker sync``.

Reading them back is :mod:`lightning_tracker.checkpoint_refs`. Neither module imports
torch or Lightning at module level.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.run import FORMAT_VERSION, MODELS_DIR, MODELS_FILE, dumps, loads
from lightning_tracker.storage import Storage, atomic_write

__all__ = ["CheckpointUploader", "sync_checkpoints"]

log = logging.getLogger(__name__)

STAGING_DIR = ".checkpoints"  # in the run's local folder: snapshots waiting for upload
_STATE_FILE = "state.json"  # in STAGING_DIR: the manifest plus what only this machine knows
_BLOCK = 1 << 22
_MAX_BACKOFF_S = 30.0
RESERVED_ALIASES = ("best", "latest")


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _source_alive(source: list[Any]) -> bool:
    """Whether the file Lightning saved is still there, unchanged (not deleted, not replaced)."""
    try:
        return _identity(os.stat(source[0])) == list(source[1:])
    except OSError:
        return False


def _background_priority() -> None:
    """Lowers this thread's CPU priority (Linux: per thread), so training keeps its cores."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)  # hashlib releases the GIL on large blocks
    return digest.hexdigest()


def _unique_name(file: str, used: set[str], seq: int) -> str:
    # an object key is never reused, so a reader holding an older manifest never gets new bytes
    if file not in used:
        return file
    stem, dot, ext = file.rpartition(".")
    return f"{stem}~{seq}.{ext}" if dot and stem else f"{file}~{seq}"


def _read_step_epoch(path: str) -> tuple[int | None, int | None]:
    """Lightning's ``global_step`` and ``epoch`` from a checkpoint (tensors stay memory-mapped)."""
    try:
        import torch

        ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
        return int(ckpt["global_step"]), int(ckpt["epoch"])
    except Exception:  # noqa: BLE001 - a foreign file: the manifest simply lacks these fields
        return None, None


def _score(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class CheckpointUploader:
    """Tracks ``ModelCheckpoint`` callbacks of one run and uploads their files in the background.

    Args:
        storage: where the run lives.
        prefix: the run's path inside ``storage`` (``<project>/<run_id>``).
        local_dir: the run's local folder (the spool folder for a remote ``storage``).
        log_model: ``True`` mirrors ``ModelCheckpoint``'s retention; ``"all"`` keeps every
            checkpoint ever saved.
        offline: only stage; ``lightning-tracker sync`` uploads later.
        resume: continue the stored manifest of an existing run (False for a new run:
            nothing to read first).

    Example:
        >>> import tempfile
        >>> from types import SimpleNamespace
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "epoch=0-step=10.ckpt")
        >>> with open(path, "wb") as f:
        ...     _ = f.write(b"weights")
        >>> callback = SimpleNamespace(best_k_models={path: 0.5}, last_model_path="", best_model_path=path,
        ...                            monitor="val/loss", mode="min", state_key="cb")
        >>> uploader = CheckpointUploader(Storage("memory://doc-ckpt"), "p/r1", folder, log_model=True)
        >>> uploader.on_save(callback)
        >>> uploader.close(timeout=30)
        True
        >>> [(e["name"], e["score"], e["aliases"]) for e in uploader.manifest["checkpoints"]]
        [('epoch=0-step=10.ckpt', 0.5, ['best', 'best:val/loss', 'latest'])]
    """

    def __init__(
        self,
        storage: Storage,
        prefix: str,
        local_dir: str,
        log_model: bool | str = True,
        offline: bool = False,
        resume: bool = True,
    ) -> None:
        self.storage = storage
        self.prefix = prefix
        self.local_dir = local_dir
        self.staging = os.path.join(local_dir, STAGING_DIR)
        self.keep_all = log_model == "all"
        self.offline = offline
        self.pid = os.getpid()
        self.manifest: dict[str, Any] = {"format_version": FORMAT_VERSION, "checkpoints": [], "aliases": {}}
        # staging number of the save each alias should name; the manifest follows once it is stored
        self.alias_seq: dict[str, int] = {}
        self.stages: dict[int, str] = {}  # staging number -> stored name (local: numbers restart per machine)
        self.sources: dict[str, list[Any]] = {}  # stored name -> [path, dev, ino, size, mtime_ns]
        self.doomed: list[str] = []  # removed from the manifest, object still to delete
        self.used: set[str] = set()
        self._seq = 0
        self._known: dict[str, list[int]] = {}  # local path -> identity already staged
        self._monitors: dict[str, str] = {}  # callback state key -> monitor, first seen first
        self._lock = threading.RLock()
        self._wake = threading.Event()  # a save or an alias: work to do
        self._retry_now = threading.Event()  # finalize: cut the back-off short
        self._thread: threading.Thread | None = None
        self._loaded = not resume
        self._written = b""  # the manifest last put (without its time), to skip identical puts
        self.error: BaseException | None = None
        self._warned: set[str] = set()
        os.makedirs(self.staging, exist_ok=True)
        self._load_local_state()

    # -- state ------------------------------------------------------------------------
    def _load_local_state(self) -> None:
        try:
            with open(os.path.join(self.staging, _STATE_FILE), "rb") as f:
                state = loads(f.read())
        except (OSError, ValueError):
            state = None
        if state is not None:
            self.manifest = state["manifest"]
            self.sources = state.get("sources", {})
            self.doomed = state.get("doomed", [])
            self.used = set(state.get("used", []))
            self.alias_seq = state.get("alias_seq", {})
            self.stages = {int(k): v for k, v in state.get("stages", {}).items()}
            self.keep_all = state.get("keep_all", self.keep_all)
            self._loaded = True
        # files staged or stored by an earlier session (a resumed fit restores best_k_models)
        numbers = {name: stage for stage, name in self.stages.items()}
        for name, source in self.sources.items():
            if name in numbers:
                self._known[source[0]] = [*source[1:], numbers[name]]
        self._seq = max(self.stages, default=-1) + 1
        for seq in self.staged():
            try:
                with open(os.path.join(self.staging, f"{seq:06d}.json"), "rb") as f:
                    source = loads(f.read())["source"]
            except (OSError, ValueError, KeyError):
                continue
            self._known[source[0]] = [*source[1:], seq]
            self._seq = max(self._seq, seq + 1)

    def _save_local_state(self) -> None:
        state = {"manifest": self.manifest, "sources": self.sources, "doomed": self.doomed,
                 "used": sorted(self.used), "alias_seq": self.alias_seq, "keep_all": self.keep_all,
                 "stages": {str(k): v for k, v in self.stages.items()}}  # fmt: skip
        atomic_write(os.path.join(self.staging, _STATE_FILE), dumps(state))

    def _load_remote_manifest(self) -> None:
        """A resumed run continues the stored manifest (read once, off the training thread)."""
        if self._loaded:
            return
        try:
            remote = loads(self.storage.read_bytes(f"{self.prefix}/{MODELS_FILE}"))
        except FileNotFoundError:
            remote = None
        if remote is not None:
            self.manifest = remote
            self.used |= {e["name"] for e in remote["checkpoints"]}
        self._loaded = True

    # -- the training thread ----------------------------------------------------------
    def on_save(self, callback: Any) -> None:
        """Snapshots what ``callback`` (a ``ModelCheckpoint``, found by duck typing) just saved.

        Costs a few ``stat`` calls, one hard link and one small file; never touches the network.
        """
        key = str(getattr(callback, "state_key", None) or id(callback))
        best_k = dict(getattr(callback, "best_k_models", None) or {})
        candidates = [getattr(callback, "_last_checkpoint_saved", ""), getattr(callback, "last_model_path", ""),
                      getattr(callback, "best_model_path", ""), *best_k]  # fmt: skip
        monitor = getattr(callback, "monitor", None)
        with self._lock:
            for path in dict.fromkeys(str(p) for p in candidates if p):
                self._stage(path, callback, monitor, best_k.get(path))
            best = str(getattr(callback, "best_model_path", "") or "")
            if monitor and best:
                seq = self._seq_of(best)
                if seq is not None:
                    self.alias_seq[f"best:{monitor}"] = seq
                    self._monitors.setdefault(key, monitor)
                    if next(iter(self._monitors)) == key:  # "best" follows the first monitoring callback
                        self.alias_seq["best"] = seq
        self._kick()

    def _seq_of(self, path: str) -> int | None:
        ident = self._known.get(os.path.abspath(path))
        return ident[-1] if ident else None

    def _stage(self, path: str, callback: Any, monitor: str | None, score: Any) -> None:
        if "://" in path and not path.startswith("file://"):
            if "remote" not in self._warned:
                self._warned.add("remote")
                log.warning("log_model: ModelCheckpoint writes to %s, not to a local folder, so its checkpoints "
                            "are not uploaded; leave ModelCheckpoint(dirpath=None) to write into the run's "
                            "spool, which is uploaded in the background", path)  # fmt: skip
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
        target = os.path.join(self.staging, f"{seq:06d}.ckpt")
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)  # another filesystem: the only copy on this thread
        self._known[path] = [*ident, seq]
        sidecar = {"seq": seq, "file": os.path.basename(path), "source": [path, *ident], "keep_all": self.keep_all,
                   "monitor": monitor,
                   "mode": getattr(callback, "mode", None), "score": _score(score), "time": time.time(),
                   "step": getattr(callback, "_last_global_step_saved", None)}  # fmt: skip
        atomic_write(os.path.join(self.staging, f"{seq:06d}.json"), dumps(sidecar))
        self.alias_seq["latest"] = seq

    def add_alias(self, alias: str, path: str | None = None) -> None:
        """Names the checkpoint saved at local ``path`` (default: the latest) ``alias``.

        Raises:
            InvalidArgumentError: ``alias`` is reserved or not a short name, or nothing
                was saved at ``path``.
        """
        if not isinstance(alias, str) or not alias or alias in RESERVED_ALIASES or alias.startswith("best:") \
                or len(alias) > 128 or any(ord(c) < 32 for c in alias):  # fmt: skip
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
        self._kick()

    # -- background -------------------------------------------------------------------
    def _kick(self) -> None:
        with self._lock:  # pairs with the idle check in _loop: a save never finds a thread about to exit
            self._wake.set()
            if self.offline or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="lightning-tracker-checkpoints", daemon=True)
            self._thread.start()

    def staged(self) -> list[int]:
        """Sequence numbers of the snapshots waiting for upload."""
        return sorted(int(n[:-5]) for n in os.listdir(self.staging) if n.endswith(".json") and n[:-5].isdigit())

    def pending_bytes(self) -> int:
        total = 0
        for seq in self.staged():
            try:
                total += os.path.getsize(os.path.join(self.staging, f"{seq:06d}.ckpt"))
            except OSError:
                pass
        return total

    def _loop(self) -> None:
        _background_priority()
        try:
            self._serve()
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _serve(self) -> None:
        failures = 0
        while True:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self.run_once():
                failures = 0
                with self._lock:
                    if not self._wake.is_set() and not self.staged() and not self.doomed:
                        self._thread = None  # idle: the next save starts a new thread
                        return
                continue
            failures += 1
            delay = min(_MAX_BACKOFF_S, 0.5 * 2**failures)
            log.warning("could not upload checkpoints to %s (%s: %s); %d wait in %s, retrying in %.0f s",
                        self.storage.url, type(self.error).__name__, self.error, len(self.staged()),
                        self.staging, delay)  # fmt: skip
            self._retry_now.wait(delay)
            self._retry_now.clear()

    def run_once(self) -> bool:
        """Uploads staged snapshots, updates the manifest and mirrors deletions; never raises.

        Returns:
            Whether everything staged is stored and the manifest is current.
        """
        try:
            self._load_remote_manifest()
            for seq in self.staged():
                self._upload(seq)
            self._mirror_deletions()
            self._commit()
            self.error = None
            return True
        except Exception as err:  # noqa: BLE001 - the store is down: retry with back-off
            self.error = err
            return False

    def _upload(self, seq: int) -> None:
        sidecar_path = os.path.join(self.staging, f"{seq:06d}.json")
        blob = os.path.join(self.staging, f"{seq:06d}.ckpt")
        with open(sidecar_path, "rb") as f:
            meta = loads(f.read())
        if not os.path.exists(blob) or (not meta.get("keep_all") and not _source_alive(meta["source"])):
            self._drop(seq)  # deleted or replaced locally before upload: nothing to mirror
            return
        if seq in self.stages:
            self._drop(seq)  # stored and listed; the process stopped before cleaning up
            return
        size = os.path.getsize(blob)
        digest: list[str] = []
        hasher = threading.Thread(target=lambda: digest.append(_sha256(blob)), daemon=True)
        hasher.start()  # hashing runs beside the upload (both release the GIL)
        with self._lock:
            # save order in the run: never reused, even after deletions, so neither are names
            order = self.manifest.get("next_seq", max((e["seq"] for e in self.manifest["checkpoints"]), default=-1) + 1)
            name = _unique_name(meta["file"], self.used, order)
        log.debug("uploading checkpoint %s (%d bytes) to %s", name, size, self.storage.full_url(self.prefix))
        self.storage.put_file(blob, f"{self.prefix}/{MODELS_DIR}/{name}", link=True)
        step, epoch = _read_step_epoch(blob)
        hasher.join()
        entry = {"name": name, "file": meta["file"], "seq": order,
                 "step": step if step is not None else meta.get("step"), "epoch": epoch,
                 "monitor": meta.get("monitor"), "mode": meta.get("mode"), "score": meta.get("score"),
                 "size": size, "sha256": digest[0], "saved_time": meta.get("time"),
                 "uploaded_time": time.time(), "state": "stored", "aliases": []}  # fmt: skip
        with self._lock:
            self.used.add(name)
            self.stages[seq] = name
            self.manifest["next_seq"] = order + 1
            self.manifest["checkpoints"].append(entry)
            self.sources[name] = meta["source"]
        self._commit()  # the entry appears only now, after the object is complete
        self._drop(seq)

    def _drop(self, seq: int) -> None:
        for ext in (".ckpt", ".json"):
            try:
                os.remove(os.path.join(self.staging, f"{seq:06d}{ext}"))
            except FileNotFoundError:
                pass

    def _mirror_deletions(self) -> None:
        if self.keep_all:
            return
        with self._lock:
            gone = [e["name"] for e in self.manifest["checkpoints"]
                    if e["name"] in self.sources and not _source_alive(self.sources[e["name"]])]  # fmt: skip
            if gone:
                self.manifest["checkpoints"] = [e for e in self.manifest["checkpoints"] if e["name"] not in gone]
                for name in gone:
                    self.sources.pop(name, None)
                self.doomed += [n for n in gone if n not in self.doomed]
        if gone:
            self._commit()  # unlisted first, deleted second: a listed object always exists
        for name in list(self.doomed):
            self.storage.rm(f"{self.prefix}/{MODELS_DIR}/{name}")
            with self._lock:
                self.doomed.remove(name)
                self._save_local_state()

    def _commit(self) -> None:
        """Resolves aliases and writes the local state, then the manifest (one put)."""
        with self._lock:
            by_seq = {e["seq"]: e for e in self.manifest["checkpoints"]}
            names = {e["name"] for e in by_seq.values()}
            aliases = {a: n for a, n in self.manifest["aliases"].items() if n in names}
            for alias, stage in self.alias_seq.items():
                if self.stages.get(stage) in names:
                    aliases[alias] = self.stages[stage]
            aliases.pop("latest", None)
            if by_seq:
                aliases["latest"] = by_seq[max(by_seq)]["name"]
            self.manifest["aliases"] = dict(sorted(aliases.items()))
            for entry in self.manifest["checkpoints"]:
                entry["aliases"] = sorted(a for a, n in aliases.items() if n == entry["name"])
            content = dumps({k: v for k, v in self.manifest.items() if k != "updated"})
            if content == self._written:
                return
            self.manifest["updated"] = time.time()
            self._save_local_state()
            data = dumps(self.manifest)
        # outside the lock: the training thread must never wait for this put
        self.storage.write_bytes(f"{self.prefix}/{MODELS_FILE}", data)
        self._written = content

    # -- closing ----------------------------------------------------------------------
    def close(self, timeout: float = 60.0, progress: bool = False) -> bool:
        """Waits up to ``timeout`` seconds for the uploads; what is left stays staged.

        Args:
            timeout: the longest wait, in seconds.
            progress: show a progress bar on a terminal while waiting.

        Returns:
            Whether every checkpoint is stored.
        """
        self._kick()
        if self.offline:
            return False
        self._retry_now.set()
        deadline = time.monotonic() + timeout
        total = self.pending_bytes()
        bar = _progress_bar(total) if progress and total and sys.stderr.isatty() else None
        try:
            while (thread := self._thread) is not None and time.monotonic() < deadline:
                thread.join(min(0.2, max(0.0, deadline - time.monotonic())))
                if bar is not None:
                    bar(total - self.pending_bytes())
        finally:
            if bar is not None:
                bar(None)
        done = not self.staged() and not self.doomed and self.error is None
        if not done:
            log.warning(
                "%d checkpoints (%.1f MB) of run %s are not uploaded to %s yet (%s); they are kept in %s. "
                "Upload them later with: lightning-tracker sync %s",
                len(self.staged()), self.pending_bytes() / 1e6, self.prefix, self.storage.url,
                f"{type(self.error).__name__}: {self.error}" if self.error else "timed out",
                self.staging, self.local_dir,
            )  # fmt: skip
        return done


def _progress_bar(total: int) -> Callable[[int | None], None]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(TextColumn("uploading checkpoints"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   transient=True)  # fmt: skip
    task = bar.add_task("upload", total=total)
    bar.start()

    def update(done: int | None) -> None:
        if done is None:
            bar.stop()
        else:
            bar.update(task, completed=done)

    return update


def sync_checkpoints(local_dir: str, storage: Storage, prefix: str) -> tuple[list[str], BaseException | None]:
    """Uploads a run's staged checkpoints (``lightning-tracker sync``).

    Returns:
        The staged snapshots still pending and the error that stopped the round, if any.
    """
    if not os.path.isdir(os.path.join(local_dir, STAGING_DIR)):
        return [], None
    uploader = CheckpointUploader(storage, prefix, local_dir)
    uploader.run_once()
    pending = [f"{STAGING_DIR}/{seq:06d}.ckpt" for seq in uploader.staged()]
    return pending, uploader.error
