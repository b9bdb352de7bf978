"""Reading a run's chunk folders, and a cache of what stays valid between reads.

A chunk file (``metrics/*.parquet``, ``histograms/*.parquet``) never gets new content
under its name, so once parsed its table stays right for as long as the name is listed.
:func:`read_chunks` lists a folder, keeps the live chunks (the coverage rule of
:mod:`lightning_tracker.format.layout`) and reads each one, through a :class:`ReadCache`
when given one: a second read of an unchanged folder then costs one listing and opens
no file. The live dashboard holds one cache; ``Store(url, cache=ReadCache())`` gives one
to any reader. The cache is not bounded: it holds the tables of the live chunks of every
run read (a compaction drops the tables of the chunks it replaced), plus one memo per key.
A chunk that cannot be decoded (truncated, not Parquet) is an error naming it, or, when the
caller asks, left out and reported while the other chunks read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, NamedTuple, TypeVar

import pyarrow as pa

from lightning_tracker.exceptions import StorageError, StoreChangedError
from lightning_tracker.format.layout import live_chunks
from lightning_tracker.format.validate import decode_chunk
from lightning_tracker.storage import Storage

__all__ = ["Damaged", "ReadCache", "read_chunk", "read_chunks"]

_T = TypeVar("_T")
_ATTEMPTS = 5  # listings tried when compaction deletes chunks between listing and reading


class Damaged(NamedTuple):
    """A chunk that could not be decoded, and why (cached like a table: a chunk never changes)."""

    name: str
    reason: str


class ReadCache:
    """Parsed chunk tables by (store, folder, chunk name), and memos of results built from them.

    Thread-safe; share one between the readers of one store.

    Example:
        >>> cache = ReadCache()
        >>> builds = []
        >>> def build():
        ...     builds.append(1)
        ...     return "built"
        >>> cache.memo("part", ("sig", 1), build), cache.memo("part", ("sig", 1), build), len(builds)
        ('built', 'built', 1)
        >>> _ = cache.memo("part", ("sig", 2), build)
        >>> len(builds)
        2
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, str], dict[str, pa.Table | Damaged]] = {}
        self._memos: dict[Hashable, tuple[Hashable, Any]] = {}

    def __repr__(self) -> str:
        chunks = sum(len(t) for t in self._tables.values())
        return f"ReadCache({chunks} chunks in {len(self._tables)} folders, {len(self._memos)} memos)"

    def tables(
        self, storage: Storage, folder: str, names: list[str], read: Callable[[str], pa.Table | Damaged]
    ) -> list[pa.Table | Damaged]:
        """The tables of the chunks ``names`` of ``folder``, reading (``read(name)``) only new ones.

        ``names`` is the folder's live listing: cached tables of other chunks (covered by
        a compaction, or deleted) are dropped. A damaged chunk is remembered as such, so
        a refresh does not download it again.
        """
        key = (storage.url, folder)
        with self._lock:
            known = self._tables.get(key, {})
        fresh = {name: known[name] if name in known else read(name) for name in names}
        with self._lock:
            self._tables[key] = fresh
        return list(fresh.values())

    def memo(self, key: Hashable, signature: Hashable, build: Callable[[], _T]) -> _T:
        """``build()``, reused while ``signature`` (everything the result depends on) is unchanged.

        One result is kept per ``key``: a new signature replaces the old result.
        """
        with self._lock:
            held = self._memos.get(key)
        if held is not None and held[0] == signature:
            return held[1]  # stored by this method for this key, as _T
        value = build()
        with self._lock:
            self._memos[key] = (signature, value)
        return value

    def forget(self, keep: Callable[[Hashable], bool]) -> None:
        """Drops the memos whose key ``keep`` rejects (for example, runs no longer listed)."""
        with self._lock:
            self._memos = {k: v for k, v in self._memos.items() if keep(k)}


def read_chunk(storage: Storage, folder: str, schema: pa.Schema, name: str) -> pa.Table | Damaged:
    """The chunk ``name`` of ``folder`` as a table of ``schema``, or :class:`Damaged` saying why it cannot be.

    A network error is raised, not taken for damage.

    Example:
        >>> storage = Storage("memory://doc-chunk")
        >>> storage.write_bytes("p/r1/metrics/x.parquet", b"cut short")
        >>> from lightning_tracker.format.schemas import METRICS
        >>> read_chunk(storage, "p/r1/metrics", METRICS, "x.parquet").name
        'x.parquet'
    """
    with storage.open(f"{folder}/{name}") as f:
        data = f.read()  # a network error is raised here, not taken for damage
    try:
        return decode_chunk(data, schema)
    except StorageError as err:
        return Damaged(name, str(err))


def read_chunks(
    storage: Storage,
    folder: str,
    schema: pa.Schema,
    cache: ReadCache | None = None,
    *,
    what: str = "chunks",
    on_damaged: Callable[[str], None] | None = None,
) -> pa.Table:
    """Every live chunk of ``folder`` in read order, as one table of ``schema``.

    Args:
        storage: the store.
        folder: the chunk folder, relative to the store (``"p/r1/metrics"``).
        schema: the schema to cast each chunk to (see :mod:`lightning_tracker.format.schemas`).
        cache: reuse the tables of chunks read before, and keep the new ones.
        what: names the data in the error message.
        on_damaged: called with a message naming each chunk that cannot be decoded
            (:func:`~lightning_tracker.format.validate.decode_chunk`), which is then left
            out; None raises instead.

    Raises:
        StoreChangedError: chunks kept disappearing between listing and reading (transient).
        StorageError: a chunk is damaged (truncated, not Parquet, rows without a step or
            name) and ``on_damaged`` is None; the message names the chunk.

    Example:
        >>> import io
        >>> import pyarrow.parquet as pq
        >>> from lightning_tracker.format.layout import chunk_name
        >>> from lightning_tracker.format.schemas import METRICS
        >>> storage, buf = Storage("memory://doc-chunks"), io.BytesIO()
        >>> pq.write_table(pa.table({"step": [0], "time": [0.0], "key": ["loss"], "value": [1.0]}), buf)
        >>> storage.write_bytes(f"p/r1/metrics/{chunk_name(0, 0, 0)}", buf.getvalue())
        >>> read_chunks(storage, "p/r1/metrics", METRICS).column("value").to_pylist()
        [1.0]
    """

    read = partial(read_chunk, storage, folder, schema)
    for _attempt in range(_ATTEMPTS):
        names = live_chunks(storage.listdir(folder))
        try:
            parts = cache.tables(storage, folder, names, read) if cache is not None else [read(n) for n in names]
        except FileNotFoundError:
            continue  # compacted between listing and reading: list again
        for part in parts:
            if isinstance(part, Damaged):
                message = f"the {what} chunk {storage.full_url(f'{folder}/{part.name}')} is damaged: {part.reason}"
                if on_damaged is None:
                    raise StorageError(
                        f"{message}; the other chunks are intact: read them with skip_damaged=True, "
                        "or move the damaged file out of the run folder"
                    )
                on_damaged(message)
        tables = [p for p in parts if not isinstance(p, Damaged)]
        return pa.concat_tables(tables) if tables else schema.empty_table()
    raise StoreChangedError(
        f"the {what} at {storage.full_url(folder)} kept changing while being read ({_ATTEMPTS} listings); try again"
    )
