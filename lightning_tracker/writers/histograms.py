"""Histograms of tensors to immutable Parquet chunks in the run's ``histograms/`` folder.

One row per tensor, kind and step, with the columns of
:data:`lightning_tracker.format.schemas.HISTOGRAMS`; the edges are stored with the
counts, so histograms of different steps stay comparable although each step has its own
range. Chunks are named and compacted like metric chunks (:mod:`.chunks`).

This module imports neither torch nor Lightning: a capture (``GradientMonitor``) is an
object whose ``resolve()``, called on the flusher thread, returns plain columns and the
norm metrics computed from them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from lightning_tracker.format.layout import HISTOGRAMS_DIR
from lightning_tracker.format.schemas import HISTOGRAMS as SCHEMA
from lightning_tracker.writers.chunks import ChunkFolder

if TYPE_CHECKING:
    from lightning_tracker.writers.tensorboard import TensorBoardWriter

__all__ = ["HISTOGRAM_MEMORY_BYTES", "Capture", "HistogramProducer", "to_table"]

HISTOGRAM_MEMORY_BYTES = 64 * 2**20  # histogram rows a full disk refused, kept in memory for the next flush


class Capture(Protocol):
    """What ``TrackerLogger.log_histograms`` takes: resolved on the flusher thread only."""

    def resolve(self) -> tuple[Mapping[str, Any], list[tuple[str, int, float, float]]]:
        """Waits for the capture's device work, then returns one list or array per column of
        the histogram schema, and the metric points ``(key, step, time, value)`` it derives
        (norms per module and in total)."""


def to_table(columns: Mapping[str, Any]) -> pa.Table:
    """Builds a table of :data:`SCHEMA` from plain columns (lists or numpy arrays).

    Example:
        >>> t = to_table({"step": [0], "time": [1.0], "tensor": ["w"], "kind": ["gradient"], "numel": [3],
        ...               "edges": [[0.0, 0.5, 1.0]], "counts": [[1, 2]], "norm": [1.0], "min": [0.0],
        ...               "max": [1.0], "sum": [1.5], "zeros": [1], "nan": [0], "posinf": [0], "neginf": [0],
        ...               "update_ratio": [None]})
        >>> t.num_rows, t.column("counts").to_pylist()
        (1, [[1, 2]])
    """
    arrays = []
    for field in SCHEMA:
        values = columns[field.name]
        if pa.types.is_dictionary(field.type):
            arrays.append(pa.array(list(values), pa.string()).dictionary_encode())
        elif pa.types.is_list(field.type) and isinstance(values, np.ndarray) and values.ndim == 2:
            rows, width = values.shape  # one flat buffer instead of a Python list per row
            offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * width)
            flat = pa.array(values.reshape(-1).astype(field.type.value_type.to_pandas_dtype()))
            arrays.append(pa.ListArray.from_arrays(offsets, flat))
        elif pa.types.is_list(field.type):
            arrays.append(pa.array([np.asarray(v).tolist() for v in values], field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


class HistogramProducer:
    """Writes histogram chunks of one session of a run into its local ``histograms/`` folder.

    A full disk loses nothing it can hold: the rows it refused are written with the next
    flush, the norm metrics derived from them are returned all the same, and past
    ``memory_bytes`` of refused rows the oldest are given up with a warning that counts them.

    Args:
        run_dir: the run's local folder.
        session: the session number (0 for a new run, +1 at each resume).
        writer: the session's writer key, in its chunk names.
        tensorboard: where histograms also go, or None.
        warn: ``(key, message, *args)``, de-duplicated per key.
        memory_bytes: the bound on refused rows kept in memory (:data:`HISTOGRAM_MEMORY_BYTES`).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> w = HistogramProducer(d, session=0, writer="kqfbxzab")
        >>> w.write([to_table({"step": [0], "time": [0.0], "tensor": ["w"], "kind": ["gradient"],
        ...     "numel": [2], "edges": [[0.0, 1.0]], "counts": [[2]], "norm": [1.0], "min": [0.0],
        ...     "max": [1.0], "sum": [1.0], "zeros": [1], "nan": [0], "posinf": [0], "neginf": [0],
        ...     "update_ratio": [None]})])
        '000-kqfbxzab-00000000-00000000.parquet'
        >>> sorted(os.listdir(os.path.join(d, "histograms")))
        ['000-kqfbxzab-00000000-00000000.parquet']
    """

    def __init__(
        self,
        run_dir: str,
        session: int,
        writer: str,
        tensorboard: TensorBoardWriter | None = None,
        warn: Callable[..., None] | None = None,
        memory_bytes: int = HISTOGRAM_MEMORY_BYTES,
    ) -> None:
        self.chunks = ChunkFolder(os.path.join(run_dir, HISTOGRAMS_DIR), SCHEMA, session, writer)
        self.tensorboard = tensorboard
        self.memory_bytes = memory_bytes
        self._warn = warn or (lambda key, msg, *args: logging.getLogger(__name__).warning(msg, *args))
        self._captures: list[tuple[Capture, str]] = []  # resolved on the flusher thread
        self._unwritten: list[pa.Table] = []  # resolved rows a full disk refused: written with the next flush
        self.given_up = [0, 0]  # rows and bytes of refused rows given up to stay within memory_bytes

    def add(self, capture: Capture, metric_prefix: str = "") -> None:
        """Queues a capture (the training thread: memory only); its norm metrics get ``metric_prefix``."""
        self._captures.append((capture, metric_prefix))

    @property
    def pending(self) -> bool:
        """Whether captures, or rows a full disk refused, wait for the next flush."""
        return bool(self._captures or self._unwritten)

    def flush(self) -> list[tuple[str, int, float, float]]:
        """Resolves the queued captures, writes them with the rows refused before as one chunk (and to TensorBoard).

        A disk error keeps the rows for the next flush (warned about; see the class); the
        derived points are returned all the same (the point buffer keeps its own).

        Returns:
            The metric points ``(key, step, time, value)`` the captures derive (norms).
        """
        n = len(self._captures)
        captures, self._captures[:n] = self._captures[:n], []
        tables, points = [], []
        for capture, prefix in captures:
            columns, derived = capture.resolve()
            tables.append(to_table(columns))
            points += [(f"{prefix}{k}", s, t, v) for k, s, t, v in derived]
        tables, self._unwritten = self._unwritten + tables, []
        try:
            self.write(tables)
        except OSError as err:
            self._keep(tables, err)
            return points
        if self.tensorboard is not None:
            for table in tables:
                self.tensorboard.write_histograms(table)
        return points

    def _keep(self, tables: list[pa.Table], err: OSError) -> None:
        """Keeps refused rows for the next flush; past ``memory_bytes`` the oldest are given up, counted."""
        self._unwritten = tables
        while len(self._unwritten) > 1 and sum(t.nbytes for t in self._unwritten) > self.memory_bytes:
            oldest = self._unwritten.pop(0)
            self.given_up[0] += oldest.num_rows
            self.given_up[1] += oldest.nbytes
        rows = sum(t.num_rows for t in self._unwritten)
        self._warn(
            "histograms:write",
            "could not write histograms to %s (%s); %d rows (%.1f MB) are kept in memory and written at the next "
            "flush%s",
            self.chunks.dir,
            err,
            rows,
            sum(t.nbytes for t in self._unwritten) / 2**20,
            f"; {self.given_up[0]} older rows ({self.given_up[1] / 2**20:.1f} MB) were given up to stay within "
            f"{self.memory_bytes / 2**20:.0f} MB"
            if self.given_up[0]
            else "",
        )

    def give_up(self) -> tuple[int, int]:
        """Gives up the rows still refused (the run ends with its disk full).

        Returns:
            The rows and bytes given up over the session, these included.
        """
        self.given_up[0] += sum(t.num_rows for t in self._unwritten)
        self.given_up[1] += sum(t.nbytes for t in self._unwritten)
        self._unwritten = []
        return self.given_up[0], self.given_up[1]

    def write(self, tables: Sequence[pa.Table]) -> str | None:
        """Writes ``tables`` (of the histogram schema) as one chunk.

        Returns:
            The chunk's file name, or None when there are no rows.
        """
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return None
        return self.chunks.write(pa.concat_tables(tables).unify_dictionaries().combine_chunks())

    def compact(self, final: bool = False) -> list[str]:
        """Merges this session's chunks (see :meth:`ChunkFolder.compact`)."""
        return self.chunks.compact(final)
