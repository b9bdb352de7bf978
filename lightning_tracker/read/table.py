"""The runs table's cells: one row per run, as ``Store.table`` shows it, kept as Arrow columns.

:func:`table_row` is the one rule for what a run shows in a runs table; ``Store.table``
builds its rows with it from :class:`~lightning_tracker.read.run.Run` objects, and the
project index keeps the same rows as typed Arrow columns (:func:`cells`), so that a table
of 100,000 runs is a column copy instead of 100,000 documents decoded. A column whose
values are of several types (a hyperparameter that is a number in one run and a string in
another) is kept as JSON text and decoded when read (:func:`frame`), so each cell reads
back as the value the run holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lightning_tracker.format import codec
from lightning_tracker.read.run import Run

__all__ = ["SORT_KEY", "cells", "concat", "frame", "select", "table_row"]

SORT_KEY = "__start_s"
"""A cell column the table is sorted by (the start in Unix seconds, 0 when unknown), then ``id``; not shown."""

_JSON_KEY = b"lightning_tracker.json_columns"  # the columns kept as JSON text (values of several types)


def table_row(run: Run) -> dict[str, Any]:
    """The runs-table row of ``run``: identity, status, times, each hyperparameter and metric summary."""
    row: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "project": run.project,
        "group": run.group,
        "tags": ",".join(run.tags),
        "status": run.status,
        "start": pd.Timestamp(run.start_time, unit="s", tz="UTC") if run.start_time else pd.NaT,
        "duration_s": run.duration,
        "damage": run.damage,
        "monitor": (run.monitor or {}).get("name"),
    }
    for key, value in run.flat_config.items():
        row[f"config.{key}"] = value if not isinstance(value, (list, dict)) else repr(value)
    for key, stats in run.summary.items():
        row[f"summary.{key}"] = stats.get("last")
        row[f"min.{key}"] = stats.get("min")
        row[f"max.{key}"] = stats.get("max")
    return row


def cells(runs: Iterable[Run]) -> pa.Table:
    """The rows of ``runs`` as typed Arrow columns (JSON text where a column's values differ in type).

    A key a run does not have is null; a NaN it holds stays NaN, so a column no run has
    is all null.
    """
    rows = []
    for run in runs:
        row = table_row(run)
        row[SORT_KEY] = float(run.start_time or 0.0)
        rows.append(row)
    names = list(dict.fromkeys(key for row in rows for key in row))  # in order of first appearance
    arrays, json_columns = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            if {type(v) for v in values} >= {int, float}:  # kept as given: pandas decides with the other runs
                raise TypeError("integers and floats")
            if name == "start":
                array = pa.Array.from_pandas(pd.Series(values, dtype="datetime64[ns, UTC]"))
            else:
                array = pa.array(values)
            arrays.append(array.cast(pa.string()) if pa.types.is_large_string(array.type) else array)
        except (pa.ArrowException, ValueError, TypeError, OverflowError):  # several types: kept as JSON text
            arrays.append(pa.array([None if v is None else codec.dumps(v).decode() for v in values], pa.string()))
            json_columns.append(name)
    table = pa.Table.from_arrays(arrays, names=names) if rows else pa.table({})
    return table.replace_schema_metadata({_JSON_KEY: codec.dumps(json_columns)})


def select(
    table: pa.Table, statuses: set[str], group: str | None, keep: Callable[[str], bool] | None = None
) -> pa.Table:
    """The rows of ``table`` in one of ``statuses`` (all: empty), of ``group`` (all: None), whose id ``keep`` keeps."""
    import pyarrow.compute as pc

    mask = np.ones(table.num_rows, dtype=bool)
    if statuses:
        mask &= pc.is_in(table.column("status"), value_set=pa.array(sorted(statuses))).to_numpy(zero_copy_only=False)
    if group is not None:
        mask &= pc.fill_null(pc.equal(table.column("group"), group), False).to_numpy(zero_copy_only=False)
    if keep is not None:
        mask &= np.fromiter(map(keep, table.column("id").to_pylist()), dtype=bool, count=table.num_rows)
    return table if mask.all() else table.filter(mask)


def concat(base: pa.Table, drop: Iterable[str], added: pa.Table) -> pa.Table:
    """``base`` without the rows of the run ids ``drop``, then ``added``'s rows; columns united
    (a column whose types differ between the two becomes JSON text)."""
    import pyarrow.compute as pc

    gone = pa.array(sorted(drop), pa.string())
    if base.num_columns and len(gone):
        held = pc.is_in(base.column("id"), value_set=gone)
        if pc.any(held).as_py():  # new runs only: the base is kept, not copied
            base = base.filter(pc.invert(held))
    if not added.num_rows:
        return base
    if not base.num_rows:
        return added
    json_columns = set(_json_columns(base)) | set(_json_columns(added))
    for name in set(base.column_names) & set(added.column_names):
        if name not in json_columns and not _compatible(base.schema.field(name).type, added.schema.field(name).type):
            json_columns.add(name)
    base, added = _as_json(base, json_columns), _as_json(added, json_columns)
    table = pa.concat_tables([base, added], promote_options="permissive")
    return table.replace_schema_metadata({_JSON_KEY: codec.dumps(sorted(json_columns))})


def frame(table: pa.Table) -> pd.DataFrame:
    """The cells as the runs table's frame, sorted by start and id: JSON columns decoded, the
    columns no row has left out (no frame at all without rows, as ``pd.DataFrame([])``)."""
    if not table.num_rows:
        return pd.DataFrame()
    table = table.sort_by([(SORT_KEY, "ascending"), ("id", "ascending")])
    keep = [n for n in table.column_names if n != SORT_KEY and (n in _FIXED or table.column(n).null_count < len(table))]
    table = table.select(keep)
    for i, name in enumerate(keep):
        if table.column(i).null_count == len(table):  # all None: pandas keeps objects, not strings
            table = table.set_column(i, name, pa.nulls(len(table)))
    out = table.to_pandas()
    for name in set(_json_columns(table)) & set(keep):
        values = [codec.loads(v) if isinstance(v, str) else np.nan for v in out[name]]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        out[name] = pd.Series(values, dtype=float if numbers else object, index=out.index)
    for name in keep:
        if name not in _FIXED and out[name].dtype == object:  # a key a run lacks reads NaN, as in pandas
            out[name] = out[name].where(out[name].notna(), np.nan)
    return out


# the identity columns every runs table has, even when no run has a value in them
_FIXED = ("id", "name", "project", "group", "tags", "status", "start", "duration_s", "damage", "monitor")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NaT


def _json_columns(table: pa.Table) -> list[str]:
    raw = (table.schema.metadata or {}).get(_JSON_KEY)
    return list(codec.loads(raw)) if raw else []


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    if a == b or pa.types.is_null(a) or pa.types.is_null(b):
        return True
    return (pa.types.is_integer(a) or pa.types.is_floating(a)) and (pa.types.is_integer(b) or pa.types.is_floating(b))


def _as_json(table: pa.Table, names: set[str]) -> pa.Table:
    """``table`` with the columns ``names`` as JSON text (those already so left alone)."""
    done = set(_json_columns(table))
    for name in names & set(table.column_names) - done:
        values = table.column(name).to_pylist()
        texts = [None if _missing(v) else codec.dumps(v).decode() for v in values]
        table = table.set_column(table.column_names.index(name), name, pa.array(texts, pa.string()))
    return table
