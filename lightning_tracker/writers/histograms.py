"""Histograms of tensors to immutable Parquet chunks in the run's ``histograms/`` folder.

One row per tensor, kind and step. Each flush writes one chunk
``histograms/<session>-<first>-<last>.parquet`` (the same names as metric chunks) with
the columns of :data:`SCHEMA`; the edges are stored with the counts, so histograms of
different steps stay comparable although each step has its own range. Chunks are
compacted exactly like metric chunks (the compaction of
:class:`~lightning_tracker.writers.metrics.MetricsWriter` is reused), and readers drop
covered chunks with :func:`lightning_tracker.run.live_chunks`.

This module imports neither torch nor Lightning: the capture (``GradientMonitor``) hands
over objects whose ``resolve()`` returns plain columns, called here on the flusher thread.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.run import HISTOGRAMS_DIR, chunk_name
from lightning_tracker.writers.metrics import MetricsWriter

__all__ = ["SCHEMA", "Capture", "HistogramWriter", "empty_table", "norm_points", "to_table"]

SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("time", pa.float64()),
        ("tensor", pa.dictionary(pa.int32(), pa.string())),
        ("kind", pa.dictionary(pa.int32(), pa.string())),
        ("numel", pa.int64()),
        ("edges", pa.list_(pa.float64())),
        ("counts", pa.list_(pa.int64())),
        ("norm", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("sum", pa.float64()),
        ("zeros", pa.int64()),
        ("nan", pa.int64()),
        ("posinf", pa.int64()),
        ("neginf", pa.int64()),
        ("update_ratio", pa.float64()),
    ]
)
COLUMNS = tuple(SCHEMA.names)


class Capture(Protocol):
    """What ``RunWriter.log_histograms`` buffers: resolved on the flusher thread only."""

    def resolve(self) -> dict[str, Any]:
        """Waits for the capture's device work, then returns one list or array per column of :data:`SCHEMA`."""


def empty_table() -> pa.Table:
    """A table with the histogram schema and no rows."""
    return SCHEMA.empty_table()


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


def _module_of(tensor: str) -> str:
    return tensor.rsplit(".", 1)[0] if "." in tensor else tensor


def norm_points(table: pa.Table) -> list[tuple[str, int, float, float]]:
    """L2 norms per module and in total, and the total update-to-weight ratio, as metric points.

    Keys are ``<kind>s/norm/<module>``, ``<kind>s/norm_total`` and
    ``parameters/update_ratio_total`` (the L2 norm of the whole update over that of the
    weights before it); a module's norm is the L2 norm of all its tensors together.

    Example:
        >>> t = to_table({"step": [4, 4], "time": [0.0, 0.0], "tensor": ["a.w", "a.b"],
        ...               "kind": ["gradient"] * 2, "numel": [1, 1], "edges": [[0.0, 1.0]] * 2,
        ...               "counts": [[1], [1]], "norm": [3.0, 4.0], "min": [0.0] * 2, "max": [1.0] * 2,
        ...               "sum": [0.0] * 2, "zeros": [0] * 2, "nan": [0] * 2, "posinf": [0] * 2,
        ...               "neginf": [0] * 2, "update_ratio": [None] * 2})
        >>> norm_points(t)
        [('gradients/norm/a', 4, 0.0, 5.0), ('gradients/norm_total', 4, 0.0, 5.0)]
    """
    if table.num_rows == 0:
        return []
    cols = {n: table.column(n).to_pylist() for n in ("step", "time", "tensor", "kind", "norm", "update_ratio")}
    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for step, t, tensor, kind, norm, ratio in zip(*cols.values()):
        g = groups.setdefault((step, kind), {"time": t, "modules": {}, "total": 0.0, "update": 0.0, "ok": True})
        sq = norm * norm
        g["modules"][_module_of(tensor)] = g["modules"].get(_module_of(tensor), 0.0) + sq
        g["total"] += sq
        if ratio is None or math.isnan(ratio):
            g["ok"] = False
        else:
            g["update"] += (ratio * norm) ** 2
    points = []
    for (step, kind), g in groups.items():
        for module, sq in g["modules"].items():
            points.append((f"{kind}s/norm/{module}", step, g["time"], math.sqrt(sq)))
        points.append((f"{kind}s/norm_total", step, g["time"], math.sqrt(g["total"])))
        if kind == "parameter" and g["ok"] and g["total"] > 0:
            points.append(("parameters/update_ratio_total", step, g["time"], math.sqrt(g["update"] / g["total"])))
    return points


class HistogramWriter(MetricsWriter):
    """Writes histogram chunks of one session of a run into its local ``histograms/`` folder.

    Compaction (``compact``, ``session_chunks``) is the metric writer's; only the chunk
    contents differ, and histograms keep no summary.

    Args:
        run_dir: the local folder of the run (the run itself, or its spool copy).
        session: the session number (0 for a new run, +1 at each resume).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> w = HistogramWriter(d, session=0)
        >>> w.write_tables([to_table({"step": [0], "time": [0.0], "tensor": ["w"], "kind": ["gradient"],
        ...     "numel": [2], "edges": [[0.0, 1.0]], "counts": [[2]], "norm": [1.0], "min": [0.0],
        ...     "max": [1.0], "sum": [1.0], "zeros": [1], "nan": [0], "posinf": [0], "neginf": [0],
        ...     "update_ratio": [None]})])
        '000-00000000-00000000.parquet'
        >>> sorted(os.listdir(os.path.join(d, "histograms")))
        ['000-00000000-00000000.parquet']
    """

    def __init__(self, run_dir: str, session: int, first_seq: int = 0) -> None:
        super().__init__(run_dir, session, first_seq)
        self.dir = os.path.join(run_dir, HISTOGRAMS_DIR)

    def write_tables(self, tables: Sequence[pa.Table]) -> str | None:
        """Writes ``tables`` (of :data:`SCHEMA`) as one chunk.

        Returns:
            The chunk's file name, or None when there are no rows.
        """
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return None
        table = pa.concat_tables(tables).unify_dictionaries().combine_chunks()
        os.makedirs(self.dir, exist_ok=True)
        name = chunk_name(self.session, self.seq, self.seq)
        path = os.path.join(self.dir, name)
        tmp = f"{self.dir}/.tmp-{name}.part"
        # keeping the dictionary columns dictionary-encoded halves the write time
        pq.write_table(table, tmp, compression="zstd", use_dictionary=["tensor", "kind"])
        os.replace(tmp, path)
        self.seq += 1
        return name

    def recompute_summary(self) -> None:
        """Histograms keep no summary."""
