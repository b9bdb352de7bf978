"""Metric points: immutable Parquet chunks in ``metrics/`` and the run's summary.

Each flush writes the points buffered since the last one as one chunk of
:data:`lightning_tracker.format.schemas.METRICS` and folds them into the summary with
:func:`lightning_tracker.format.summary.fold`. When a batch logs a step again (a resumed
run), the keys concerned are summarized again from every chunk on disk, so the summary
published while the run is live is the one a reader computes after it ends.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lightning_tracker.format import rollups
from lightning_tracker.format.layout import METRICS_DIR, chunk_name, parse_chunk_name
from lightning_tracker.format.schemas import METRICS, with_chunk_version
from lightning_tracker.format.summary import fold, summarize
from lightning_tracker.storage import atomic_write, remove_file
from lightning_tracker.writers.chunks import ChunkFolder

__all__ = ["MetricsProducer", "Point", "to_table"]

Point = tuple  # (key: str, step: int, time: float, value: float)


def to_table(points: list[Point]) -> pa.Table:
    """Points as a table of the metrics schema, in the order given.

    Example:
        >>> to_table([("loss", 0, 1.0, 0.5), ("acc", 0, 1.0, 0.9), ("loss", 1, 2.0, 0.4)]).column("key").to_pylist()
        ['loss', 'acc', 'loss']
    """
    keys, steps, times, values = zip(*points, strict=True)
    # keys repeat: encode them once per distinct name instead of once per point
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), np.int32, len(keys))
    return pa.table(
        {
            "step": np.fromiter(steps, np.int64, len(steps)),
            "time": np.fromiter(times, np.float64, len(times)),
            "key": pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(list(index), pa.string())),
            "value": np.fromiter(values, np.float64, len(values)),
        },
        schema=METRICS,
    )


class MetricsProducer:
    """Writes the metric chunks of one session of a run and keeps its summary exact.

    Args:
        run_dir: the run's local folder.
        session: the session number (0 for a new run, +1 at each resume).
        writer: the session's writer key, in its chunk names.

    Example:
        >>> import tempfile
        >>> metrics = MetricsProducer(tempfile.mkdtemp(), session=0, writer="kqfbxzab")
        >>> metrics.write([("loss", 0, 0.0, 3.0), ("loss", 1, 1.0, 2.0)])
        '000-kqfbxzab-00000000-00000000.parquet'
        >>> metrics.write([("loss", 1, 2.0, 9.0)])  # step 1 again: it supersedes 2.0
        '000-kqfbxzab-00000001-00000001.parquet'
        >>> metrics.summary["loss"]["count"], metrics.summary["loss"]["max"]
        (2, 9.0)
        >>> len(metrics.compact(final=True)), os.listdir(metrics.rollups_dir)  # the rollup of chunks 0..1
        (2, ['000-kqfbxzab-00000000-00000001.parquet'])
    """

    def __init__(self, run_dir: str, session: int, writer: str) -> None:
        self.chunks = ChunkFolder(os.path.join(run_dir, METRICS_DIR), METRICS, session, writer)
        self.summary: dict[str, dict[str, Any]] = {}
        self.rollups_dir = os.path.join(run_dir, rollups.ROLLUPS_DIR)
        self._rollup = rollups.ROLLUPS.empty_table()  # every point of this session's writer so far
        self._rolled: str | None = None  # the name of the rollup stored last

    def load_summary(self) -> None:
        """Summarizes every chunk already in the folder (a resumed run's earlier sessions)."""
        self.summary = summarize(self.chunks.read())

    def write(self, points: list[Point]) -> str | None:
        """Writes ``points`` as one chunk and updates the summary.

        Returns:
            The chunk's file name, or None when ``points`` is empty.
        """
        if not points:
            return None
        table = to_table(points)
        name = self.chunks.write(table)
        self._fold_rollup(table)
        self.summary, stale = fold(self.summary, table)
        if stale:  # a step logged again: summarize those keys over their whole history
            history = self.chunks.read()
            history = history.filter(pc.is_in(history.column("key").cast(pa.string()), pa.array(sorted(stale))))
            self.summary = dict(sorted({**self.summary, **summarize(history)}.items()))
        return name

    def compact(self, final: bool = False) -> list[str]:
        """Merges this session's chunks (see :meth:`ChunkFolder.compact`); after a merge and at
        finalize, stores the rollup of every chunk of the session (:meth:`store_rollup`)."""
        deleted = self.chunks.compact(final)
        if deleted or final:
            self.store_rollup()
        return deleted

    def _fold_rollup(self, table: pa.Table) -> None:
        """Folds a new chunk into the session's rollup; a metric whose step this session logs
        again is folded anew from the session's chunks (only the points say which value is last)."""
        new = rollups.from_points(table)
        stale = rollups.overlapping([self._rollup, new])
        if stale:
            names = self.chunks.session_chunks()
            history = pa.concat_tables([pq.read_table(os.path.join(self.chunks.dir, n)) for n in names])
            folded = rollups.from_points(rollups.only(history, stale))
            self._rollup = rollups.only(self._rollup, stale, keep=False)
            new = rollups.combine([rollups.only(new, stale, keep=False), folded])
        self._rollup = rollups.combine([self._rollup, new])

    def store_rollup(self) -> str | None:
        """Writes the rollup of chunks ``0..seq - 1`` of this session's writer, then deletes the one
        it replaces (this writer's rollups, also under a session number it held before a merge);
        returns its name (None when there is nothing new)."""
        if self.chunks.seq == 0 or not self._rollup.num_rows:
            return None
        name = chunk_name(self.chunks.session, 0, self.chunks.seq - 1, self.chunks.writer)
        if name == self._rolled:
            return None
        stamped = with_chunk_version(self._rollup)
        atomic_write(os.path.join(self.rollups_dir, name), lambda f: pq.write_table(stamped, f, compression="zstd"))
        self._rolled = name
        for old in os.listdir(self.rollups_dir):
            parsed = parse_chunk_name(old)
            if parsed is not None and parsed.writer == self.chunks.writer and old != name:
                remove_file(os.path.join(self.rollups_dir, old))
        return name
