"""The storage base: a root location and the seven primitives every backend implements.

A backend (a local folder, any fsspec filesystem) subclasses :class:`Storage` and
implements ``read_bytes``, ``open``, ``write_bytes``, ``put_file``, ``rm``, ``listdir``
and ``find``; everything else the tracker needs is built here on those. Paths given to
the methods are relative to the root and always use ``/``. An eighth, ``create_bytes``
(write only where nothing is, atomically), is what makes ``resume="never"`` exclusive; a
backend that cannot do it leaves it out and says so (see :meth:`Storage.create_bytes`).

``Storage(url)`` picks the backend, the way ``pathlib.Path`` does: it asks the registry
(:mod:`.registry`) which class opens the URL's protocol. A local folder gives a
``LocalStorage``, a URL an ``FsspecStorage`` unless a backend registered its protocol with
:func:`~lightning_tracker.storage.register_storage`. The base never imports a backend;
the registry imports one when a URL first needs it, so importing this package never
imports fsspec.
"""

from __future__ import annotations

import os
from typing import IO, Any, NamedTuple

from lightning_tracker.exceptions import InvalidArgumentError, StorageError
from lightning_tracker.storage.registry import storage_class
from lightning_tracker.storage.urls import parse_url

__all__ = ["FileInfo", "Storage"]


class FileInfo(NamedTuple):
    """One file of a listing: its size and when it was last written (:meth:`Storage.find_info`)."""

    size: int
    modified: float | None  # Unix seconds; None when the backend does not say


class Storage:
    """A root URL (a local folder or any fsspec URL) and the primitives to use it.

    Args:
        url: a local folder (``"./runs"``, ``"file:///data/runs"``) or any fsspec URL
            (``"memory://exp"``, ``"s3://bucket/exp"``); ``user:password@`` in the URL
            is moved into ``storage_options``.
        storage_options: options for the backend (credentials, endpoint); kept in
            memory only, never printed or written.

    Attributes:
        url: the printable location (credentials removed; the absolute folder for local).
        protocol: ``"file"`` for a local folder, else the URL scheme.
        root: the absolute folder for local; ``bucket/path`` for a URL.

    Raises:
        InvalidArgumentError: ``url`` is empty or not a string or path, or its protocol
            is one no backend opens.
        MissingDependencyError: (on first use) the package for the URL's protocol is not
            installed.

    Example:
        >>> store = Storage("memory://doc-storage")
        >>> store.write_bytes("a/b.json", b"{}")
        >>> store.read_bytes("a/b.json")
        b'{}'
        >>> store.is_local, store.url, store.full_url("a/b.json")
        (False, 'memory://doc-storage', 'memory://doc-storage/a/b.json')
        >>> store.read_many(["a/b.json", "a/missing.json"])
        {'a/b.json': b'{}'}
        >>> import tempfile
        >>> Storage(tempfile.mkdtemp()).is_local
        True
    """

    url: str
    protocol: str
    root: str

    def __new__(cls, url: Any = None, storage_options: dict[str, Any] | None = None) -> Storage:
        # a backend built directly (or unpickled, which passes no arguments) is itself
        if cls is Storage:
            cls = storage_class(parse_url(url).protocol)
        return super().__new__(cls)

    def __init__(self, url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> None:
        parsed = parse_url(url)
        if not isinstance(self, storage_class(parsed.protocol)):
            raise InvalidArgumentError(
                f"save_dir={parsed.url!r} cannot be opened by {type(self).__name__}; "
                "use Storage(save_dir), which picks the backend for the URL."
            )
        self.protocol, self.root, self.url = parsed.protocol, parsed.root, parsed.url
        self._options: dict[str, Any] = {**parsed.credentials, **(storage_options or {})}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def storage_options(self) -> dict[str, Any]:
        """The backend's options, credentials from the URL included: pass them on, never print them."""
        return self._options

    def local_path(self, rel: str = "") -> str | None:
        """The operating-system path of ``rel``, or ``None`` when the store is not a local folder.

        The one way to ask whether a store is on this machine, and where: code that can
        take a shortcut through the file system (hard links, writing in place) asks this.
        """
        return None

    @property
    def is_local(self) -> bool:
        """Whether the store is a folder on this machine: ``local_path()`` is not ``None``."""
        return self.local_path() is not None

    def full_url(self, rel: str = "") -> str:
        """Returns the printable URL of ``rel`` (credentials removed)."""
        return f"{self.url.rstrip('/')}/{rel}" if rel else self.url

    def exists(self, rel: str) -> bool:
        """Whether a file or folder named ``rel`` exists (one listing of its parent).

        The root itself counts as existing once it holds anything: object stores have no
        empty folders.
        """
        parent, _, name = rel.strip("/").rpartition("/")
        return name in self.listdir(parent) if name else bool(self.listdir())

    def sign(self, rel: str, expires_s: int) -> str:
        """A time-limited https link to ``rel`` that needs no credentials to open.

        Raises:
            StorageError: the backend cannot sign (a local folder, ``memory://``, or a
                filesystem whose credentials cannot sign).
        """
        raise StorageError(
            f"{self.full_url(rel)} cannot be shared by a signed link: {self.protocol} storage has no "
            "signed https links; write it to s3://, gs:// (service-account credentials) or az:// "
            "(an account key) to get one, or send the file itself"
        )

    def folders(self, rel: str = "") -> list[str]:
        """Sorted names of the folders directly under ``rel`` that hold something; files are left out.

        An empty folder is left out too (object stores have none), so every backend answers
        alike. This default lists each entry; a backend overrides it with one listing.
        """
        return [name for name in self.listdir(rel) if self.listdir(f"{rel}/{name}" if rel else name)]

    def find_info(self, rel: str = "") -> dict[str, FileInfo]:
        """Every file below ``rel`` with its size and last-modified time: :meth:`find` with times.

        One recursive listing, as :meth:`find` (an object store answers it a page of
        objects per request, not a request per file). This default knows no times
        (``modified`` is None): a caller that acts only on old files leaves such files alone.
        """
        return {path: FileInfo(size, None) for path, size in self.find(rel).items()}

    def read_head(self, rel: str, max_bytes: int) -> bytes:
        """At most the first ``max_bytes`` bytes of ``rel``: a read bounded whatever the file's size.

        A reader that accepts up to ``n`` bytes asks for ``n + 1`` to tell a file that is too big.
        Raises as :meth:`read_bytes` does.
        """
        with self.open(rel) as f:
            return f.read(max_bytes)

    def read_many(self, rels: list[str], max_bytes: int | None = None) -> dict[str, bytes]:
        """Reads many small files (at most ``max_bytes`` of each); the missing ones are left out of the result.

        Any other failure (a file that cannot be read) is raised.
        """
        out: dict[str, bytes] = {}
        for rel in rels:
            try:
                out[rel] = self.read_bytes(rel) if max_bytes is None else self.read_head(rel, max_bytes)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return out

    def rm_many(self, rels: list[str]) -> None:
        """Deletes many files; missing ones are not an error. A backend that can deletes them in a
        few requests (S3: one per thousand); this default deletes them one by one."""
        for rel in rels:
            self.rm(rel)

    # -- the primitives each backend implements ---------------------------------------
    # Not abstract methods: ``Storage(url)`` is also the factory, and a type checker
    # rejects constructing an abstract class (our callers' and our users' alike).
    def read_bytes(self, rel: str) -> bytes:
        """Returns the content of ``rel``; raises ``FileNotFoundError`` when missing."""
        raise self._not_implemented("read_bytes")

    def open(self, rel: str) -> IO[bytes]:
        """Opens ``rel`` for reading, as a binary file object."""
        raise self._not_implemented("open")

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Writes ``data`` to ``rel`` in one step: a reader sees the old or the new content."""
        raise self._not_implemented("write_bytes")

    def create_bytes(self, rel: str, data: bytes) -> None:
        """Writes ``data`` to ``rel`` only if nothing is stored there, in one step that cannot race.

        Of processes creating the same ``rel`` at the same moment, on any machines, exactly
        one succeeds; the others get ``FileExistsError``, and ``rel`` holds the winner's
        bytes whole. The built-in backends do this with a local hard link (``O_EXCL``
        without hard links), an S3 conditional write (``If-None-Match: *``), a GCS
        precondition (``ifGenerationMatch=0``), an Azure ``If-None-Match: *`` upload, and a
        lock for ``memory://`` (one process). A backend that cannot must not fake it with a
        check and a write: it leaves this out, and callers are told two processes could
        both create the file.

        Raises:
            FileExistsError: ``rel`` exists, or another process created it first.
            NotImplementedError: the backend cannot create a file atomically.
        """
        raise self._not_implemented("create_bytes")

    def put_file(self, local_path: str, rel: str) -> None:
        """Stores the local file ``local_path`` at ``rel``, streamed.

        The file must not change afterwards: a local store hard-links it where it can.
        """
        raise self._not_implemented("put_file")

    def rm(self, rel: str) -> None:
        """Deletes the file ``rel``; a missing file is not an error."""
        raise self._not_implemented("rm")

    def listdir(self, rel: str = "") -> list[str]:
        """Sorted names (not paths) of the entries directly under ``rel``; empty when missing."""
        raise self._not_implemented("listdir")

    def find(self, rel: str = "") -> dict[str, int]:
        """Every file below ``rel``, as ``/`` paths relative to ``rel`` mapped to their sizes.

        Empty when ``rel`` is missing.
        """
        raise self._not_implemented("find")

    def _not_implemented(self, primitive: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} does not implement Storage.{primitive}(), which this operation needs; a backend "
            "implements read_bytes, open, write_bytes, put_file, rm, listdir and find (see register_storage), and "
            "create_bytes where the store can create a file only if it is absent"
        )
