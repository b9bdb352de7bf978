"""One storage location behind fsspec: the only module that talks to fsspec.

A :class:`Storage` is a root URL (a local folder, ``memory://``, ``s3://``, ``gs://``,
``az://`` …) plus the ``storage_options`` needed to reach it. Paths given to its methods
are relative to the root and always use ``/``.

Credentials never leave memory: user info embedded in the URL
(``s3://key:secret@bucket``) is moved into the options, and :attr:`Storage.url` is the
redacted form that may be written to disk or printed.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any
from urllib.parse import unquote

import fsspec

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError

__all__ = ["Storage", "redact_url"]

# protocol -> (pip extra, the package that implements it)
_EXTRAS = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
    "az": ("azure", "adlfs"),
    "abfs": ("azure", "adlfs"),
    "abfss": ("azure", "adlfs"),
}
# the option each protocol expects for the user:password part of a URL
_URL_CREDENTIALS = {
    "s3": ("key", "secret"),
    "s3a": ("key", "secret"),
    "az": ("account_name", "account_key"),
    "abfs": ("account_name", "account_key"),
    "abfss": ("account_name", "account_key"),
}


_URL_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """Splits ``scheme://userinfo@host/path`` into (scheme, userinfo, host/path).

    Secrets often hold an unencoded ``/`` (AWS keys do), so the user info runs to the
    last ``@`` before the path when the text before that ``@`` has a ``user:`` part.
    """
    match = _URL_RE.match(url)
    if match is None:
        return None
    scheme, rest = match["scheme"], match["rest"]
    host = rest.split("/", 1)[0]
    if "@" in host:
        info, _, tail = rest.partition(host)[1].rpartition("@")
        return scheme, info, tail + rest[len(host):]
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        info, _, tail = rest.rpartition("@")
        if ":" in info.split("/", 1)[0]:
            return scheme, info, tail
    return None


def redact_url(url: str) -> str:
    """Returns ``url`` without the ``user:password@`` part, safe to print and store.

    Example:
        >>> redact_url("s3://AKIA:hunter2@bucket/exp")
        's3://bucket/exp'
        >>> redact_url("s3://AKIA:abc/def+ghi@bucket/exp")
        's3://bucket/exp'
        >>> redact_url("./runs")
        './runs'
    """
    parts = _userinfo(url)
    return url if parts is None else f"{parts[0]}://{parts[2]}"


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    parts = _userinfo(url)
    if parts is None:
        return url, {}
    scheme, info, _ = parts
    user, _, password = info.partition(":")
    names = _URL_CREDENTIALS.get(scheme, ("username", "password"))
    creds = {names[0]: unquote(user)}
    if password:
        creds[names[1]] = unquote(password)
    return redact_url(url), creds


class Storage:
    """A root URL on any fsspec filesystem, with the few primitives the tracker needs.

    Args:
        url: a local folder (``"./runs"``, ``"file:///data/runs"``) or any fsspec URL
            (``"memory://exp"``, ``"s3://bucket/exp"``).
        storage_options: passed to the fsspec filesystem (credentials, endpoint);
            kept in memory only.

    Raises:
        MissingDependencyError: the package for the URL's protocol is not installed.
        InvalidArgumentError: ``url`` is empty.

    Example:
        >>> store = Storage("memory://doc-storage")
        >>> store.write_bytes("a/b.json", b"{}")
        >>> store.read_bytes("a/b.json")
        b'{}'
        >>> store.is_local
        False
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        if not isinstance(url, (str, os.PathLike)) or not str(url):
            raise InvalidArgumentError(
                f"save_dir={url!r} is not a folder or URL; pass a path such as './runs' "
                "or a URL such as 's3://bucket/experiments'."
            )
        url, creds = _split_credentials(os.fspath(url))
        self._options: dict[str, Any] = {**creds, **(storage_options or {})}
        self.protocol = url.split("://", 1)[0] if "://" in url else "file"
        self.is_local = self.protocol in ("file", "local")
        if self.is_local:
            self.root = os.path.abspath(url.split("://", 1)[1] if "://" in url else url)
            self.url = self.root
        else:
            self.root = url.split("://", 1)[1].rstrip("/")
            self.url = f"{self.protocol}://{self.root}"
        self._fs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fs"] = None
        return state

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, created on first use."""
        if self._fs is None:
            try:
                self._fs = fsspec.filesystem(self.protocol, **self._options)
            except ImportError as err:
                extra, package = _EXTRAS.get(self.protocol, (None, self.protocol))
                hint = f'pip install "lightning-tracker[{extra}]"' if extra else f"pip install {package}"
                raise MissingDependencyError(
                    f"save_dir={self.url!r} needs the package {package!r} for {self.protocol}://; "
                    f"install it with: {hint}"
                ) from err
        return self._fs

    def path(self, rel: str = "") -> str:
        """Returns the full path of ``rel`` as the filesystem names it."""
        if not rel:
            return self.root
        if self.is_local:
            return os.path.join(self.root, *rel.split("/"))
        return f"{self.root}/{rel}"

    def full_url(self, rel: str = "") -> str:
        """Returns the printable URL of ``rel`` (credentials removed)."""
        return self.path(rel) if self.is_local else f"{self.protocol}://{self.path(rel)}"

    # -- writing ----------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Writes ``data`` to ``rel`` in one step: readers see the old or the new file."""
        if self.is_local:
            atomic_write(self.path(rel), data)
        else:
            self.fs.pipe_file(self.path(rel), data)

    def put_file(self, local_path: str, rel: str, link: bool = False) -> None:
        """Uploads a local file to ``rel`` (streamed; multipart where the backend can).

        Args:
            local_path: the file to upload.
            rel: where to put it.
            link: on a local store, hard-link instead of copying where possible (for
                immutable files only: both names share the bytes).
        """
        if self.is_local:
            dest = self.path(rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = f"{dest}.{os.getpid()}.tmp"
            if os.path.lexists(tmp):
                os.remove(tmp)  # never write through a link a crashed attempt left
            linked = False
            if link:
                try:
                    os.link(local_path, tmp)
                    linked = True
                except OSError:
                    pass  # another filesystem: copy
            if not linked:
                with open(local_path, "rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 22):
                        dst.write(chunk)
            os.replace(tmp, dest)
        else:
            self.fs.put_file(local_path, self.path(rel))

    def rm(self, rel: str) -> None:
        """Deletes the file ``rel``; a missing file is not an error."""
        try:
            if self.is_local:
                os.remove(self.path(rel))
            else:
                self.fs.rm_file(self.path(rel))
        except FileNotFoundError:
            pass

    def makedirs(self, rel: str) -> None:
        """Creates the folder ``rel`` where the backend has folders."""
        if self.is_local:
            os.makedirs(self.path(rel), exist_ok=True)
        else:
            self.fs.makedirs(self.path(rel), exist_ok=True)

    # -- reading ----------------------------------------------------------------------
    def read_bytes(self, rel: str) -> bytes:
        """Returns the content of ``rel``; raises ``FileNotFoundError`` when missing."""
        if self.is_local:
            with open(self.path(rel), "rb") as f:
                return f.read()
        return self.fs.cat_file(self.path(rel))

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """Reads many small files at once (concurrently on object stores); missing ones are left out."""
        if not rels:
            return {}
        if self.is_local:
            out: dict[str, bytes] = {}
            for rel in rels:
                try:
                    out[rel] = self.read_bytes(rel)
                except (FileNotFoundError, NotADirectoryError):
                    continue
            return out
        paths = {self.fs._strip_protocol(self.path(rel)): rel for rel in rels}
        found = self.fs.cat(list(paths), on_error="omit")
        return {paths[self.fs._strip_protocol(p)]: data for p, data in found.items() if isinstance(data, bytes)}

    def open(self, rel: str, mode: str = "rb") -> Any:
        """Opens ``rel`` for reading as a file object."""
        if self.is_local:
            return open(self.path(rel), mode)
        return self.fs.open(self.path(rel), mode)

    def exists(self, rel: str) -> bool:
        """Whether the file or folder ``rel`` exists."""
        if self.is_local:
            return os.path.exists(self.path(rel))
        return self.fs.exists(self.path(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) of the entries directly under ``rel``; empty when missing."""
        if self.is_local:
            try:
                return sorted(os.listdir(self.path(rel)))
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            entries = self.fs.ls(self.path(rel), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        base = self.path(rel).rstrip("/")
        names = {e.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.rstrip("/") != base}
        return sorted(names)

    def find(self, rel: str = "") -> dict[str, int]:
        """All files below ``rel``, as paths relative to ``rel`` mapped to their sizes."""
        if self.is_local:
            base = self.path(rel)
            out: dict[str, int] = {}
            for dirpath, _, files in os.walk(base):
                for name in files:
                    full = os.path.join(dirpath, name)
                    try:
                        out[os.path.relpath(full, base).replace(os.sep, "/")] = os.path.getsize(full)
                    except FileNotFoundError:
                        continue
            return out
        base = self.path(rel).rstrip("/")
        try:
            found = self.fs.find(base, detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        strip = len(self.fs._strip_protocol(base)) + 1
        return {
            self.fs._strip_protocol(p)[strip:]: int(info.get("size") or 0)
            for p, info in found.items()
            if info.get("type", "file") == "file"
        }


def atomic_write(path: str, data: bytes) -> None:
    """Writes a local file so that a reader or a crash never sees it half written."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
