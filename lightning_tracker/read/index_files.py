"""The project index's files as Arrow tables: a compacted file or a delta, encoded, decoded, stacked.

A compacted file holds every run of a project; a delta holds only the runs one fold
changed, the ids it removed and the change objects it folded beyond its parent's
(names and metadata in :mod:`lightning_tracker.format.index`). The index a reader takes is
a compacted file with its deltas stacked on it, oldest first (:func:`stack`): each delta's
rows replace the rows of the same runs below it. Stacking two deltas gives the delta of
both, which is how a fold merges the small deltas at the top of a chain into one
(:mod:`lightning_tracker.read.index`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lightning_tracker.format import codec
from lightning_tracker.format.index import FOLDED_KEY, INDEX_SCHEMA, INDEX_VERSION, IndexFile, parse_index_file_name
from lightning_tracker.read.table import concat

__all__ = ["ROW_FIELDS", "Part", "decode", "encode", "stack", "without"]

ROW_FIELDS = pa.schema(list(INDEX_SCHEMA))
"""The index columns of a row (id, __doc, __problems, __watch, __tags, __edits, __archived), without metadata."""


class Part(NamedTuple):
    """An index file as read (or the index a chain of them makes, stacked).

    Attributes:
        file: the file (the top one, for a stack).
        rows: one row per run it holds (:data:`ROW_FIELDS`).
        cells: the same runs' runs-table cells, in the same order.
        folded: the change objects folded (a delta's: those beyond its parent's).
        removed: the ids of the runs it removes from below it (a compacted file: none).
    """

    file: IndexFile
    rows: pa.Table
    cells: pa.Table
    folded: frozenset[str]
    removed: frozenset[str]

    @property
    def size(self) -> int:
        """The rows it holds and the runs it removes: what a delta weighs against a compacted file."""
        return self.rows.num_rows + len(self.removed)


def without(table: pa.Table, ids: Iterable[str]) -> pa.Table:
    """``table`` without the rows of the run ids ``ids``."""
    gone = pa.array(sorted(ids), pa.string())
    if not len(gone):
        return table
    held = pc.is_in(table.column("id"), value_set=gone)
    return table.filter(pc.invert(held)) if pc.any(held).as_py() else table  # new runs only: no copy


def stack(under: Part, over: Part) -> Part:
    """``over`` applied on ``under``: its rows replace those of the same runs, its removed runs
    leave; named ``over.file``. Two deltas stacked are the delta of both."""
    ids = set(over.rows.column("id").to_pylist())
    drop = ids | over.removed
    rows = pa.concat_tables([without(under.rows, drop), over.rows]) if under.rows.num_rows else over.rows
    return Part(
        over.file,
        rows,
        concat(under.cells, drop, over.cells),
        under.folded | over.folded,
        (under.removed - ids) | over.removed,
    )


def encode(part: Part, project: str, base: IndexFile | None) -> bytes:
    """``part`` as a Parquet file: a compacted file (``base`` None) or a delta on ``base``."""
    rest = part.cells.drop_columns(["id"]) if part.cells.num_columns else part.cells
    table = pa.Table.from_arrays(
        [*part.rows.columns, *rest.columns], names=[*part.rows.column_names, *rest.column_names]
    )
    meta: dict[str, object] = {"version": INDEX_VERSION, "project": project, "folded": sorted(part.folded)}
    if base is not None:
        meta.update(base=base.name, removed=sorted(part.removed))
    table = table.replace_schema_metadata({**(part.cells.schema.metadata or {}), FOLDED_KEY: codec.dumps(meta)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def decode(data: bytes, file: IndexFile, project: str) -> Part:
    """An index file's rows; raises ``ValueError`` (or Arrow's error) when it is damaged."""
    table = pq.read_table(pa.BufferReader(data))
    meta = codec.loads((table.schema.metadata or {}).get(FOLDED_KEY, b"null"))
    if not isinstance(meta, dict) or meta.get("version") != INDEX_VERSION or meta.get("project") != project:
        raise ValueError(
            f"its metadata {FOLDED_KEY.decode()} is {str(meta)[:200]!r}, not an index of version {INDEX_VERSION} "
            f"of project {project!r}"
        )
    for field in INDEX_SCHEMA:
        if field.name not in table.column_names or not table.schema.field(field.name).type.equals(field.type):
            raise ValueError(f"its column {field.name!r} is missing or not {field.type}")
    folded = meta.get("folded")
    if not isinstance(folded, list) or not all(isinstance(name, str) for name in folded):
        raise ValueError("its list of folded changes is not a list of names")
    removed = meta.get("removed", []) if file.delta else []
    if not isinstance(removed, list) or not all(isinstance(rid, str) for rid in removed):
        raise ValueError("its list of removed runs is not a list of ids")
    if file.delta:
        base = parse_index_file_name(str(meta.get("base")))
        if base is None or base.key != file.parent:
            raise ValueError(f"it names the base {meta.get('base')!r}, not the {file.parent!r} its name says")
    ids = table.column("id")
    if ids.null_count or table.column("__doc").null_count or pc.count_distinct(ids).as_py() != len(ids):
        raise ValueError("a run is missing its id or document, or is listed twice")
    rows = table.select(ROW_FIELDS.names).replace_schema_metadata(None)
    cells = table.drop_columns(ROW_FIELDS.names[1:])
    cells = cells.replace_schema_metadata({k: v for k, v in (table.schema.metadata or {}).items() if k != FOLDED_KEY})
    return Part(file, rows, cells, frozenset(folded), frozenset(removed))
