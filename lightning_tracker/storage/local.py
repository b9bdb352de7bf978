"""The local-folder backend, and the one atomic write for local files.

Every local file the tracker writes goes through :func:`atomic_write`: a temporary file
in the same folder, then ``os.replace``, so a reader or a crash sees the old or the new
file, never half of one. Temporary names start with ``.`` and readers skip such names.
:func:`atomic_create` writes a file only where none is, the one way a run is claimed.

Files are created with the mode the umask leaves of ``0666`` (folders ``0777``), as
``open`` and ``mkdir`` do: under ``umask 002`` a teammate in the group can read and
write a shared store, under ``077`` nobody else can. ``tempfile.mkstemp`` is not used: its
files are always ``0600``, whatever the umask, and ``os.replace`` keeps that mode.

A store is often a shared folder, so whatever is in it may have been planted: a read
opens only a regular file whose real path is inside the store. A symbolic link that leads
out of the store (to ``~/.aws/credentials``, to ``/dev/zero``) or anything that is not a
regular file (a FIFO, a device, a socket) is refused with :class:`StorageError`, without
reading it or waiting on it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from typing import IO, Any

from lightning_tracker.exceptions import StorageError
from lightning_tracker.storage.base import FileInfo, Storage

__all__ = ["LocalStorage", "atomic_create", "atomic_write", "is_temporary"]

_COPY_CHUNK = 1 << 22
_TMP_PREFIX, _TMP_SUFFIX = ".tmp-", ".part"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
# a link is resolved before the open (and refused if it leads out of the store); O_NOFOLLOW
# refuses one swapped in meanwhile, O_NONBLOCK keeps a FIFO from blocking the open
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)

# what atomic_write accepts: the bytes, or a function that writes into a binary file
Content = bytes | Callable[[IO[bytes]], Any]


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temporary files (a crash leaves them behind).

    Example:
        >>> is_temporary(".tmp-0123abcd.part"), is_temporary("run.json")
        (True, False)
    """
    return name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)


def remove_file(path: str) -> None:
    """Deletes a local file; a file already gone is not an error."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _temporary(folder: str) -> tuple[int, str]:
    """A new, empty temporary file in ``folder`` (created if missing), opened for writing.

    Its mode is what the umask (and a default ACL) leaves of ``0666``, as for ``open``.
    """
    os.makedirs(folder or ".", exist_ok=True)
    while True:
        tmp = os.path.join(folder or ".", f"{_TMP_PREFIX}{uuid.uuid4().hex}{_TMP_SUFFIX}")
        try:
            return os.open(tmp, _CREATE, 0o666), tmp
        except FileExistsError:  # never expected with a fresh uuid: try another name
            continue


def _write_temporary(folder: str, data: Content) -> str:
    """Writes ``data`` into a new temporary file in ``folder``; returns its path."""
    fd, tmp = _temporary(folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                data(f)
    except BaseException:
        remove_file(tmp)
        raise
    return tmp


def atomic_write(path: str, data: Content) -> None:
    """Writes a local file so that a reader or a crash never sees it half written.

    The file gets the mode the umask leaves of ``0666`` (``0644`` under ``umask 022``),
    the same whether it is new or replaces an older one.

    Args:
        path: the file to write; missing parent folders are created.
        data: the content, or a function that writes it into the binary file object it
            is given (``lambda f: pq.write_table(table, f)``).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "a", "b.txt")
        >>> atomic_write(path, b"one")
        >>> atomic_write(path, lambda f: f.write(b"two"))
        >>> open(path, "rb").read(), os.listdir(os.path.dirname(path))
        (b'two', ['b.txt'])
    """
    tmp = _write_temporary(os.path.dirname(path), data)
    try:
        os.replace(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise


def atomic_create(path: str, data: bytes) -> None:
    """Creates a local file holding ``data`` unless ``path`` exists, in one step that cannot race.

    The content is written to a temporary file first and then hard-linked to ``path``,
    which fails when the name exists: of processes creating the same file at once (on
    one machine or over NFS) exactly one succeeds, and a reader sees the whole file or
    none. A file system without hard links gets an exclusive create of ``path`` instead
    (still one winner; a reader may then see the file empty for a moment).

    Args:
        path: the file to create; missing parent folders are created.
        data: its content.

    Raises:
        FileExistsError: ``path`` exists (another process created it first).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "p", "run.json")
        >>> atomic_create(path, b"mine")
        >>> atomic_create(path, b"theirs")
        Traceback (most recent call last):
        ...
        FileExistsError: ...
        >>> open(path, "rb").read(), os.listdir(os.path.dirname(path))
        (b'mine', ['run.json'])
    """
    tmp = _write_temporary(os.path.dirname(path), data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "File exists", path) from None
    except OSError:  # no hard links on this file system: create the name itself exclusively
        with os.fdopen(os.open(path, _CREATE, 0o666), "wb") as f:
            f.write(data)
    finally:
        remove_file(tmp)


def _holds_something(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except OSError:  # gone, or not ours to list: nothing to read there
        return False


class LocalStorage(Storage):
    """A folder on this machine. Build it with ``Storage(path)``.

    Example:
        >>> import tempfile
        >>> store = Storage(tempfile.mkdtemp())
        >>> store.write_bytes("p/r/run.json", b"{}")
        >>> store.listdir("p"), store.find("p")
        (['r'], {'r/run.json': 2})
        >>> store.local_path("p/r") == f"{store.root}/p/r"
        True
    """

    def local_path(self, rel: str = "") -> str:
        """Returns the operating-system path of ``rel``."""
        return os.path.join(self.root, *rel.split("/")) if rel else self.root

    def _open_regular(self, rel: str) -> int:
        """A descriptor of ``rel`` opened for reading: a regular file inside the store, else an error.

        Raises:
            FileNotFoundError: ``rel`` is missing (a dangling link too).
            IsADirectoryError: ``rel`` is a folder.
            StorageError: ``rel`` is a link that leads out of the store, or not a regular
                file (a FIFO, a device, a socket).
        """
        path = self.local_path(rel)
        real, root = os.path.realpath(path), os.path.realpath(self.root)
        if os.path.commonpath([real, root]) != root:
            if not os.path.exists(real):  # a dangling link reads as missing: there is nothing to disclose
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            raise StorageError(f"{self.full_url(rel)} is a link that leads out of the store; it is not read")
        fd = os.open(real, _READ_FLAGS)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            if not stat.S_ISREG(mode):
                raise StorageError(
                    f"{self.full_url(rel)} is not a regular file (a FIFO, a device or a socket); it is not read"
                )
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_bytes(self, rel: str) -> bytes:
        with os.fdopen(self._open_regular(rel), "rb") as f:
            return f.read()

    def read_head(self, rel: str, max_bytes: int) -> bytes:
        with os.fdopen(self._open_regular(rel), "rb") as f:
            return f.read(max_bytes)

    def open(self, rel: str) -> IO[bytes]:
        return os.fdopen(self._open_regular(rel), "rb")

    def write_bytes(self, rel: str, data: bytes) -> None:
        atomic_write(self.local_path(rel), data)

    def create_bytes(self, rel: str, data: bytes) -> None:
        atomic_create(self.local_path(rel), data)

    def put_file(self, local_path: str, rel: str) -> None:
        dest = self.local_path(rel)
        folder = os.path.dirname(dest)
        os.makedirs(folder, exist_ok=True)
        # a fresh name every time: os.link refuses an existing one, so a link a crashed
        # attempt left behind is never written through
        tmp = os.path.join(folder, f"{_TMP_PREFIX}{uuid.uuid4().hex}{_TMP_SUFFIX}")
        try:
            os.link(local_path, tmp)
        except OSError:  # another filesystem, or no hard links there: copy
            with open(local_path, "rb") as src:
                atomic_write(dest, lambda dst: shutil.copyfileobj(src, dst, _COPY_CHUNK))
            return
        try:
            os.replace(tmp, dest)
        finally:
            # renaming onto another name of the same file does nothing and keeps tmp
            remove_file(tmp)

    def rm(self, rel: str) -> None:
        try:
            os.remove(self.local_path(rel))
        except (FileNotFoundError, NotADirectoryError):
            pass

    def listdir(self, rel: str = "") -> list[str]:
        try:
            return sorted(os.listdir(self.local_path(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def folders(self, rel: str = "") -> list[str]:
        try:
            with os.scandir(self.local_path(rel)) as entries:
                found = [e.path for e in entries if e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(os.path.basename(path) for path in found if _holds_something(path))

    def find(self, rel: str = "") -> dict[str, int]:
        return {path: info.size for path, info in self.find_info(rel).items()}

    def find_info(self, rel: str = "") -> dict[str, FileInfo]:
        base = self.local_path(rel)
        out: dict[str, FileInfo] = {}
        for folder, _, names in os.walk(base):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # deleted while we walked
                    continue
                out[os.path.relpath(path, base).replace(os.sep, "/")] = FileInfo(st.st_size, st.st_mtime)
        return out
