"""The fsspec backend: ``memory://``, ``s3://``, ``gs://``, ``az://`` and any other fsspec URL.

The only module of the package that imports fsspec. Object stores cannot append or
rename, so every write here is one whole object in one request.

``create_bytes`` (write only where nothing is) is one conditional request on the three
object stores, which each apply it atomically: S3's ``If-None-Match: *`` (AWS since
August 2024; MinIO and moto too; a store that ignores the header gives no guarantee),
GCS's ``ifGenerationMatch=0`` and Azure's ``If-None-Match: *``. ``memory://`` lives in
one process, where a lock makes it atomic. Other protocols have no such request in
fsspec (its generic create checks, then writes): they refuse it.
"""

from __future__ import annotations

import errno
import importlib.metadata
import os
import re
import threading
import time
from typing import IO, Any

import fsspec

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError, StorageError
from lightning_tracker.storage.base import FileInfo, Storage
from lightning_tracker.storage.registry import install_hint, protocol_family

__all__ = ["FsspecStorage"]

# the families whose fsspec package sends pipe_file(mode="create") as one conditional request,
# from the release that first does (older ones would check, then write, or pass the mode on)
_CONDITIONAL_CREATE = {"s3": (2024, 12), "gs": (2024, 12), "az": (2024, 12)}
# memory:// checks, then writes; its files live in this process, so a lock makes that one step
_MEMORY_LOCK = threading.Lock()
# S3 answers 409 ConditionalRequestConflict while another conditional write of the key is
# in flight; once it lands, the retry gets the definite answer (412: it exists)
_CONFLICT_RETRIES = (0.05, 0.2, 0.5, 1.0, 2.0)


def _release(package: str) -> tuple[int, ...]:
    """The installed release of ``package`` as numbers (``(2024, 12, 0)``); empty when unknown."""
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


# where each fsspec filesystem's listing says when an object was last written: s3fs, adlfs,
# gcsfs (a datetime), memory:// and the local filesystem (Unix seconds)
_MODIFIED_KEYS = ("LastModified", "last_modified", "mtime", "created")


def _modified(info: dict[str, Any]) -> float | None:
    """An object's last-modified time from its listing entry, in Unix seconds; None when not said."""
    for key in _MODIFIED_KEYS:
        value: Any = info.get(key)
        if hasattr(value, "timestamp"):  # a datetime
            return float(value.timestamp())
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _conflict(err: OSError) -> bool:
    response = getattr(err.__cause__, "response", None) or {}
    return (response.get("Error") or {}).get("Code") == "ConditionalRequestConflict"


class FsspecStorage(Storage):
    """A location on an fsspec filesystem. Build it with ``Storage(url, storage_options)``.

    It opens every protocol fsspec knows that no other backend registered; a protocol
    fsspec does not know is refused here, when the storage is built.

    The filesystem object is created on first use and dropped when pickled (it may hold
    sockets and threads); the unpickled copy creates its own.

    Example:
        >>> import pickle
        >>> store = Storage("memory://doc-remote")
        >>> store.put_file(__file__, "src/remote.py")
        >>> copy = pickle.loads(pickle.dumps(store))
        >>> copy, copy.listdir(), copy.read_bytes("src/remote.py") == open(__file__, "rb").read()
        (FsspecStorage('memory://doc-remote'), ['src'], True)
    """

    def __init__(self, url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(url, storage_options)
        if self.protocol not in fsspec.available_protocols():
            raise InvalidArgumentError(
                f"save_dir={self.url!r} has the protocol {self.protocol!r}, which no storage backend opens; "
                "use a local folder or a URL fsspec knows (s3://, gs://, az://, memory://, ...), install the "
                f"fsspec implementation of {self.protocol}://, or register a backend for it with "
                f"lightning_tracker.storage.register_storage({self.protocol!r}, YourStorage)"
            )
        self._fs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None}

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, created on first use.

        Raises:
            MissingDependencyError: the package for the protocol is not installed.
        """
        if self._fs is None:
            try:
                self._fs = fsspec.filesystem(self.protocol, **self._options)
            except ImportError as err:
                package, hint = install_hint(self.protocol)
                raise MissingDependencyError(
                    f"the store {self.url!r} needs the package {package!r} for {self.protocol}://; "
                    f"install it with: {hint}"
                ) from err
        return self._fs

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self._path(rel))

    def open(self, rel: str) -> IO[bytes]:
        return self.fs.open(self._path(rel), "rb")

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(rel), data)

    def create_bytes(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        if self.protocol == "memory":
            with _MEMORY_LOCK:
                if self.fs.exists(path):
                    raise FileExistsError(errno.EEXIST, "File exists", self.full_url(rel))
                self.fs.pipe_file(path, data)
            return
        family = protocol_family(self.protocol)
        if family is None or family.name not in _CONDITIONAL_CREATE:
            raise NotImplementedError(
                f"{self.full_url(rel)} cannot be created only-if-absent: fsspec's {self.protocol}:// has no atomic "
                "create (it would check, then write), so two processes could both create it; use a local folder, "
                "s3://, gs:// or az:// where that matters"
            )
        needed = _CONDITIONAL_CREATE[family.name]
        if _release(family.package) < needed:
            raise NotImplementedError(
                f"{self.full_url(rel)} cannot be created only-if-absent: {family.package} "
                f"{'.'.join(map(str, _release(family.package))) or '(version unknown)'} sends no conditional write; "
                f'upgrade it: pip install "{family.package}>={".".join(map(str, needed))}"'
            )
        # s3fs sends anything past 2 chunks as a multipart upload, without the condition: one PUT always
        options = {"chunksize": len(data) + 1} if family.name == "s3" else {}
        for wait in (*_CONFLICT_RETRIES, None):
            try:
                self.fs.pipe_file(path, data, mode="create", **options)
                return
            except FileExistsError:
                raise
            except OSError as err:
                if wait is None or not _conflict(err):
                    raise
                time.sleep(wait)

    def put_file(self, local_path: str, rel: str) -> None:
        self.fs.put_file(local_path, self._path(rel))

    def rm(self, rel: str) -> None:
        try:
            self.fs.rm_file(self._path(rel))
        except FileNotFoundError:
            pass

    def rm_many(self, rels: list[str]) -> None:
        if not rels:
            return
        try:  # fsspec batches them: S3 one DeleteObjects request per thousand keys
            self.fs.rm([self._path(rel) for rel in rels])
        except FileNotFoundError:
            pass

    def listdir(self, rel: str = "") -> list[str]:
        path = self._path(rel)
        self.fs.invalidate_cache(path)  # adlfs's ls ignores refresh=True: a deleted folder stayed listed
        try:
            entries = self.fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        base = self.fs._strip_protocol(path).rstrip("/")
        names = {e.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.rstrip("/") != base}
        return sorted(names)

    def folders(self, rel: str = "") -> list[str]:
        path = self._path(rel)
        self.fs.invalidate_cache(path)  # as in listdir
        try:
            entries = self.fs.ls(path, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        base = self.fs._strip_protocol(path).rstrip("/")
        # an object store lists a folder only while something is in it
        names = {
            e["name"].rstrip("/").rsplit("/", 1)[-1]
            for e in entries
            if e.get("type") == "directory" and e["name"].rstrip("/") != base
        }
        return sorted(names)

    def find(self, rel: str = "") -> dict[str, int]:
        return {path: info.size for path, info in self.find_info(rel).items()}

    def find_info(self, rel: str = "") -> dict[str, FileInfo]:
        base = self.fs._strip_protocol(self._path(rel)).rstrip("/")
        try:
            found = self.fs.find(base, detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        strip = len(base) + 1
        return {
            self.fs._strip_protocol(path)[strip:]: FileInfo(int(info.get("size") or 0), _modified(info))
            for path, info in found.items()
            if info.get("type", "file") == "file"
        }

    def sign(self, rel: str, expires_s: int) -> str:
        try:
            return str(self.fs.sign(self._path(rel), expiration=int(expires_s)))
        except NotImplementedError:
            return super().sign(rel, expires_s)
        except Exception as err:  # each backend fails its own way (no key to sign with, no SAS)
            raise StorageError(
                f"{self.full_url(rel)} cannot be shared by a signed link: {type(err).__name__}: {err}; "
                "signing needs credentials that can sign (S3 keys, a GCS service account, an Azure account key)"
            ) from err

    def read_many(self, rels: list[str], max_bytes: int | None = None) -> dict[str, bytes]:
        """Reads many small files concurrently (at most ``max_bytes`` of each); the missing ones are left out.

        Any other failure (a file this account may not read) is raised.
        """
        if not rels:
            return {}
        paths = {self.fs._strip_protocol(self._path(rel)): rel for rel in rels}
        bounds = {} if max_bytes is None else {"start": 0, "end": max_bytes}
        found = self.fs.cat(list(paths), on_error="return", **bounds)
        out: dict[str, bytes] = {}
        for path, data in found.items():
            rel = paths[self.fs._strip_protocol(path)]
            if isinstance(data, (FileNotFoundError, NotADirectoryError)):
                continue
            if isinstance(data, BaseException):
                # S3 refuses a byte range of an empty object: read it again through a file object
                # (which asks its size first); a file that cannot be read raises here
                data = self.read_bytes(rel) if max_bytes is None else self.read_head(rel, max_bytes)
            out[rel] = bytes(data)
        return out
