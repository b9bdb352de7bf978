"""A folder of immutable Parquet chunks of one session's writer: writing and log-structured compaction.

Metric points and histograms are both stored this way (only their schema differs). Each
flush writes one chunk ``<session>-<writer>-<seq>-<seq>.parquet``; compaction merges chunks into
one named for their whole range, written before the chunks it replaces are deleted, so
by the coverage rule (:mod:`lightning_tracker.format.layout`) a reader never sees a
point twice or misses one.
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.layout import ChunkId, chunk_name, live_chunks, parse_chunk_name
from lightning_tracker.format.schemas import PARQUET_OPTIONS, with_chunk_version
from lightning_tracker.format.validate import decode_chunk
from lightning_tracker.storage import atomic_write, remove_file

__all__ = ["COMPACT_FANIN", "ChunkFolder"]

COMPACT_FANIN = 16  # chunks of one size class merged at once


def _level(first: int, last: int) -> int:
    span, level = last - first + 1, 0
    while span >= COMPACT_FANIN:
        span //= COMPACT_FANIN
        level += 1
    return level


def _span(name: str) -> ChunkId:
    """The id of a name that ``live_chunks`` kept (so a chunk name)."""
    parsed = parse_chunk_name(name)
    assert parsed is not None, name
    return parsed


def write_chunk(table: pa.Table, path: str, schema: pa.Schema) -> None:
    """Writes one chunk file whole (a reader or a crash never sees it half written), stamped
    with the chunk format version (:func:`~lightning_tracker.format.schemas.with_chunk_version`)."""
    stamped = with_chunk_version(table)
    atomic_write(path, lambda f: pq.write_table(stamped, f, **PARQUET_OPTIONS[schema]))


class ChunkFolder:
    """The chunks of one session's writer in one folder of a run.

    Args:
        folder: the local folder (``<run>/metrics`` or ``<run>/histograms``).
        schema: the chunks' Arrow schema (:mod:`lightning_tracker.format.schemas`).
        session: the session number; its sequence numbers start at 0.
        writer: the session's writer key (:func:`~lightning_tracker.format.layout.new_writer_key`).

    Example:
        >>> import tempfile
        >>> from lightning_tracker.format.schemas import METRICS
        >>> chunks = ChunkFolder(tempfile.mkdtemp(), METRICS, session=2, writer="w")
        >>> table = pa.table({"step": [0], "time": [0.0], "key": ["a"], "value": [1.0]}).cast(METRICS)
        >>> chunks.write(table), chunks.write(table)
        ('002-w-00000000-00000000.parquet', '002-w-00000001-00000001.parquet')
        >>> chunks.compact(final=True)
        ['002-w-00000000-00000000.parquet', '002-w-00000001-00000001.parquet']
        >>> chunks.session_chunks(), chunks.read().num_rows
        (['002-w-00000000-00000001.parquet'], 2)
    """

    def __init__(self, folder: str, schema: pa.Schema, session: int, writer: str) -> None:
        self.dir = folder
        self.schema = schema
        self.session = session
        self.writer = writer
        self.seq = 0
        self._skipped: set[str] = set()  # damaged chunks already warned about

    def write(self, table: pa.Table) -> str | None:
        """Writes ``table`` as the next chunk; returns its name (None when it has no rows)."""
        if table.num_rows == 0:
            return None
        name = chunk_name(self.session, self.seq, self.seq, self.writer)
        write_chunk(table, os.path.join(self.dir, name), self.schema)
        self.seq += 1
        return name

    def _names(self) -> list[str]:
        try:
            return live_chunks(os.listdir(self.dir))
        except FileNotFoundError:
            return []

    def session_chunks(self) -> list[str]:
        """Live chunk names of this session's writer, in order."""
        return [n for n in self._names() if (_span(n).session, _span(n).writer) == (self.session, self.writer)]

    def read(self) -> pa.Table:
        """Every live chunk of every session, in read order, as one table of the schema.

        A chunk that cannot be decoded (an earlier session's, truncated or overwritten) is
        left out with a warning naming it, so a resumed run still starts and logs on.
        """
        tables = []
        for name in self._names():
            path = os.path.join(self.dir, name)
            with open(path, "rb") as f:
                data = f.read()
            try:
                tables.append(decode_chunk(data, self.schema))
            except StorageError as err:
                if name not in self._skipped:
                    self._skipped.add(name)
                    logging.getLogger(__name__).warning("chunk %s is damaged (%s); it is left out", path, err)
        return pa.concat_tables(tables).unify_dictionaries() if tables else self.schema.empty_table()

    def compact(self, final: bool = False) -> list[str]:
        """Merges chunks of this session; returns the names it deleted.

        Without ``final``, merges the newest ``COMPACT_FANIN`` chunks of one size class,
        and again one class up while that fills a run too (each point is rewritten
        O(log n) times and a session keeps O(log n) files); with ``final``, merges every
        chunk of the session into one.
        """
        deleted: list[str] = []
        while group := self._group(final):
            tables = [pq.read_table(os.path.join(self.dir, n)) for n in group]
            merged = pa.concat_tables(tables).unify_dictionaries().combine_chunks()
            first, last = _span(group[0])[1], _span(group[-1])[2]
            write_chunk(merged, os.path.join(self.dir, chunk_name(self.session, first, last, self.writer)), self.schema)
            for name in group:
                remove_file(os.path.join(self.dir, name))
            deleted += group
            if final:
                break
        return deleted

    def _group(self, final: bool) -> list[str]:
        chunks = self.session_chunks()
        if final:
            return chunks if len(chunks) > 1 else []
        levels = [_level(_span(n).first, _span(n).last) for n in chunks]
        group: list[str] = []
        for name, level in zip(reversed(chunks), reversed(levels), strict=True):
            if level != levels[-1]:
                break
            group.insert(0, name)
        return group if len(group) >= COMPACT_FANIN else []
