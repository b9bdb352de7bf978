"""SQL over a store: DuckDB, in process, over two views, ``runs`` and ``metrics``.

:meth:`Store.sql <lightning_tracker.read.store.Store.sql>` runs a query with
:func:`run_sql`. The views are Arrow data handed to DuckDB, read through our
:class:`~lightning_tracker.storage.Storage`, so a local folder, ``memory://`` and every
bucket work alike, and no DuckDB extension is needed (``httpfs`` and ``delta`` download
themselves at run time, which fails offline; automatic installs are turned off):

- ``runs``: :meth:`Store.table <lightning_tracker.read.store.Store.table>`'s frame, one
  row per run (``id, name, project, group, tags, status, start, duration_s, damage,
  monitor``, then ``"config.<key>"``, ``"summary.<metric>"``, ``"min.<metric>"``,
  ``"max.<metric>"``: quote names with dots or slashes in SQL).
- ``metrics``: every point, ``project, run, key, step, time, value`` (:data:`POINTS`),
  exactly what :meth:`Run.metrics(wide=False) <lightning_tracker.read.run.Run.metrics>`
  returns for each run of ``runs``: only live chunks (the coverage rule of
  :mod:`~lightning_tracker.format.layout`), the last value per step
  (:func:`~lightning_tracker.format.summary.keep_last`).

Only the views a query names are read. DuckDB is the optional extra ``duckdb``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError
from lightning_tracker.format.layout import METRICS_DIR
from lightning_tracker.format.schemas import METRICS
from lightning_tracker.format.summary import keep_last
from lightning_tracker.read.cache import ReadCache, read_chunks
from lightning_tracker.storage import Storage

if TYPE_CHECKING:
    from lightning_tracker.read.store import Store

__all__ = ["DUCKDB_EXTRA", "POINTS", "VIEWS", "metric_points", "points_of_runs", "run_points", "run_sql", "runs_arrow"]

DUCKDB_EXTRA = "pip install 'lightning-tracker[duckdb]'"
_NAME = pa.dictionary(pa.int32(), pa.string())
POINTS = pa.schema(
    [
        ("project", _NAME),
        ("run", _NAME),  # the run id
        ("key", _NAME),  # the metric name
        ("step", pa.int64()),
        ("time", pa.float64()),
        ("value", pa.float64()),
    ]
)
"""The columns of the ``metrics`` view (and of the Delta export's points)."""
VIEWS = ("runs", "metrics")
_RUN_COLUMNS = pa.schema(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("project", pa.string()),
        ("group", pa.string()),
        ("tags", pa.string()),
        ("status", pa.string()),
        ("start", pa.timestamp("ns", tz="UTC")),
        ("duration_s", pa.float64()),
        ("damage", pa.string()),
        ("monitor", pa.string()),
    ]
)
_READERS = 8  # runs read at once: chunk reads wait on the store, and Parquet decodes without the GIL


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise MissingDependencyError(f"Store.sql needs DuckDB, which is not installed; {DUCKDB_EXTRA}") from None
    return duckdb


def run_points(storage: Storage, path: str, cache: ReadCache | None = None) -> pa.Table:
    """One run's points, ``step, time, key, value``: what ``Run.metrics(wide=False)`` holds, unsorted.

    Args:
        storage: the store.
        path: the run, ``<project>/<id>``.
        cache: the store's :class:`~lightning_tracker.read.cache.ReadCache`, if any.

    Raises:
        StorageError: a chunk is damaged (the message names it).

    Example:
        >>> from lightning_tracker import TrackerLogger
        >>> logger = TrackerLogger("memory://doc-points", name="p", version="r1")
        >>> logger.log_metrics({"loss": 2.0}, step=0)
        >>> logger.log_metrics({"loss": 1.0}, step=0)
        >>> logger.finalize("success")
        >>> run_points(Storage("memory://doc-points"), "p/r1").to_pylist()[0]["value"]
        1.0
    """
    table = read_chunks(storage, f"{path}/{METRICS_DIR}", METRICS, cache, what="metrics")
    if not table.num_rows:
        return METRICS.empty_table()
    key = table.column("key").unify_dictionaries().combine_chunks()
    codes = key.indices.to_numpy(zero_copy_only=False)
    steps = table.column("step").to_numpy()
    keep = None if _no_step_twice(codes, steps) else keep_last([codes], steps)
    out = pa.table(
        [table.column("step"), table.column("time"), key, table.column("value")], names=["step", "time", "key", "value"]
    )
    return out if keep is None or keep.all() else out.filter(pa.array(keep))


def _no_step_twice(codes: np.ndarray, steps: np.ndarray) -> bool:
    """Whether no (key, step) holds two points, told in O(n) by a count per cell where the
    steps are dense (the common case: then ``keep_last`` keeps every row, and its sort is saved)."""
    low, span = int(steps.min()), int(steps.max()) - int(steps.min()) + 1
    cells = span * (int(codes.max()) + 1)
    if cells > 8 * len(steps):
        return False  # sparse steps: keep_last decides
    return int(np.bincount(codes.astype(np.int64) * span + (steps - low), minlength=cells).max()) <= 1


def _labelled(points: pa.Table, project: str, run: str) -> pa.Table:
    """``points`` with constant ``project`` and ``run`` columns (dictionaries: 4 bytes a row)."""
    zeros = pa.array(np.zeros(points.num_rows, dtype=np.int32))
    one = lambda name: pa.DictionaryArray.from_arrays(zeros, pa.array([name]))  # noqa: E731 (a local shorthand)
    columns = [one(project), one(run), *(points.column(c) for c in ("key", "step", "time", "value"))]
    return pa.Table.from_arrays(columns, schema=POINTS)


def points_of_runs(store: Store, runs: Iterable[tuple[str, str]]) -> list[pa.Table]:
    """The points of each of ``runs`` (``(project, run id)`` pairs), in order, each a table of :data:`POINTS`.

    Raises:
        StorageError: a chunk is damaged (the message names it).
    """

    def read(pair: tuple[str, str]) -> pa.Table:
        project, run = pair
        return _labelled(run_points(store.storage, f"{project}/{run}", store.cache), project, run)

    with ThreadPoolExecutor(_READERS) as pool:
        return list(pool.map(read, runs))


def metric_points(store: Store, runs: Iterable[tuple[str, str]]) -> pa.Table:
    """Every point of ``runs`` (``(project, run id)`` pairs) as one table of :data:`POINTS`.

    Raises:
        StorageError: a chunk is damaged (the message names it).
    """
    parts = [p for p in points_of_runs(store, runs) if p.num_rows]
    if not parts:
        return POINTS.empty_table()
    return pa.concat_tables(parts).unify_dictionaries()


def runs_arrow(table: pd.DataFrame) -> pa.Table:
    """:meth:`Store.table`'s frame as Arrow; a column of mixed types (a hyperparameter that is a
    number in one run and text in another) becomes text, as the CLI shows it."""
    if table.empty and not len(table.columns):
        return _RUN_COLUMNS.empty_table()
    columns, fields = [], []
    for name in table.columns:
        series = table[name]
        try:
            column = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            column = pa.array([None if pd.isna(v) else str(v) for v in series], pa.string())
        if pa.types.is_null(column.type):
            column = column.cast(_RUN_COLUMNS.field(name).type if name in _RUN_COLUMNS.names else pa.string())
        columns.append(column)
        fields.append(pa.field(str(name), column.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _one_line(err: Exception) -> str:
    """DuckDB's message without its ``LINE 1: ... ^^^`` pointer, on one line."""
    lines = [line.strip() for line in str(err).splitlines()]
    kept = [line for line in lines if line and not line.startswith("LINE ") and not set(line) <= {"^"}]
    return re.sub(r"\s+", " ", " ".join(kept))


def _fail(sql: str, err: Exception) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"sql query {sql!r} failed: {_one_line(err)}; query the views runs (id, name, project, status, "
        '"config.<key>", "summary.<metric>", ...) and metrics (project, run, key, step, time, value), '
        'double-quoting names with dots or slashes, e.g. select "config.lr", count(*) from runs group by 1'
    )


def run_sql(store: Store, sql: str, project: str | None = None) -> pd.DataFrame:
    """The result of ``sql`` over the views ``runs`` and ``metrics`` of ``project`` (None: every project).

    Raises:
        InvalidArgumentError: ``sql`` is not text, or DuckDB cannot run it (the message
            names the query, DuckDB's reason and the views).
        MissingDependencyError: DuckDB is not installed.
        StorageError: a chunk is damaged (the message names it).
    """
    duckdb = _duckdb()
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidArgumentError(f"sql={sql!r} is not a query; pass SQL text, e.g. 'select count(*) from runs'")
    # no download at run time: a query naming an extension's function fails at once, offline or not
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    with duckdb.connect(config=config) as con:
        try:
            named = {name.lower() for name in con.get_table_names(sql)}
        except duckdb.Error as err:
            raise _fail(sql, err) from None
        if named & set(VIEWS):
            table = store.table(project)
            con.register("runs", runs_arrow(table))
            if "metrics" in named:
                pairs = list(zip(table["project"], table["id"], strict=True)) if len(table) else []
                con.register("metrics", metric_points(store, pairs))
        try:
            return con.execute(sql).df()
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as err:
            raise _fail(sql, err) from None
