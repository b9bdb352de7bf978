"""The fsspec backend: ``memory://``, ``s3://``, ``gs://``, ``az://`` and any other fsspec URL.

The only module of the package that imports fsspec. Object stores cannot append or
rename, so every write here is one whole object in one request.
"""

from __future__ import annotations

import os
from typing import IO, Any

import fsspec

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError, StorageError
from lightning_tracker.storage.base import Storage
from lightning_tracker.storage.registry import install_hint

__all__ = ["FsspecStorage"]


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
                    f"save_dir={self.url!r} needs the package {package!r} for {self.protocol}://; "
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

    def put_file(self, local_path: str, rel: str) -> None:
        self.fs.put_file(local_path, self._path(rel))

    def rm(self, rel: str) -> None:
        try:
            self.fs.rm_file(self._path(rel))
        except FileNotFoundError:
            pass

    def listdir(self, rel: str = "") -> list[str]:
        path = self._path(rel)
        try:
            entries = self.fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        base = self.fs._strip_protocol(path).rstrip("/")
        names = {e.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.rstrip("/") != base}
        return sorted(names)

    def folders(self, rel: str = "") -> list[str]:
        path = self._path(rel)
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
        base = self.fs._strip_protocol(self._path(rel)).rstrip("/")
        try:
            found = self.fs.find(base, detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        strip = len(base) + 1
        return {
            self.fs._strip_protocol(path)[strip:]: int(info.get("size") or 0)
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
