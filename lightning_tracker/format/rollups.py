"""Rollups: a level-of-detail summary of each metric of a run, for charts over many runs.

A rollup is a Parquet table of :data:`ROLLUPS` rows in ``<run>/rollups/``, one row per
metric and *step bucket*: the steps ``[b * width, (b + 1) * width)`` of bucket ``b``, with
the min, max and mean of the bucket's finite values, its last value (at its highest step)
and how many points it holds. A chart drawn from it shows every spike (the min–max
envelope holds every value), unlike a sample of the points. At most :data:`MAX_BUCKETS`
buckets per metric; a width is a power of two, so two rollups of one metric combine
exactly (a bucket of the narrower width lies inside one bucket of the wider).

**Names and coverage.** A rollup is named like the metric chunks it summarizes
(:func:`~lightning_tracker.format.layout.chunk_name`): ``rollups/<session>-<writer>-<first>-<last>.parquet``
holds every point of the metric chunks of that session and writer whose sequence range
lies in ``[first, last]``, one value per step (the last, :func:`~lightning_tracker.format.summary.keep_last`).
:func:`plan` is the rule a reader follows: per session and writer, the rollup that covers
the most live chunks, used only when no live chunk straddles its range; every live chunk it
does not cover is read raw (the live tail of a running run) and folded into the same
buckets by :func:`from_points`, the function that also summarizes a run that has no rollup
(a store written before rollups). Parts whose steps overlap for a metric (a step logged
again by a later session) cannot be combined exactly: :func:`overlapping` says so, and
the reader then folds every point of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightning_tracker.format.layout import ChunkId, live_chunks, parse_chunk_name
from lightning_tracker.format.summary import keep_last

__all__ = ["MAX_BUCKETS", "ROLLUPS", "ROLLUPS_DIR", "Plan", "combine", "from_points", "only", "overlapping", "plan"]

ROLLUPS_DIR = "rollups"  # in a run folder, beside metrics/
MAX_BUCKETS = 1024  # buckets per metric in a stored rollup

ROLLUPS = pa.schema(
    [
        ("key", pa.dictionary(pa.int32(), pa.string())),  # metric name
        ("width", pa.int64()),  # steps per bucket (a power of two); the bucket is first_step // width
        ("first_step", pa.int64()),  # lowest step with a point in the bucket
        ("last_step", pa.int64()),  # highest step with a point in the bucket
        ("count", pa.int64()),  # points (one per step)
        ("finite", pa.int64()),  # of them finite (not NaN or ±inf)
        ("min", pa.float64()),  # of the finite values; NaN when none
        ("max", pa.float64()),
        ("mean", pa.float64()),
        ("last", pa.float64()),  # the value at last_step (NaN and ±inf as they are)
        ("time", pa.float64()),  # wall time of the point at last_step, Unix seconds
    ]
)
_NUMERIC = [f.name for f in ROLLUPS if f.name != "key"]


class Plan(NamedTuple):
    """What a reader reads of a run's metrics: rollups, and the live chunks they do not cover (raw)."""

    rollups: list[str]
    raw: list[str]


def plan(chunks: list[str], rollups: list[str]) -> Plan:
    """The coverage rule of rollups: which rollups and raw chunks together hold every point once.

    Args:
        chunks: the names in ``metrics/`` (a listing; covered chunks are dropped here).
        rollups: the names in ``rollups/``.

    Returns:
        Per session and writer, the rollup covering the most live chunks among those no
        live chunk straddles (a chunk is wholly inside its range or wholly outside), and
        the live chunks no chosen rollup covers, in read order.

    Example:
        >>> plan(["000-w-00000000-00000015.parquet", "000-w-00000016-00000016.parquet"],
        ...      ["000-w-00000000-00000015.parquet", "000-w-00000000-00000007.parquet"])
        Plan(rollups=['000-w-00000000-00000015.parquet'], raw=['000-w-00000016-00000016.parquet'])
    """
    live = [(name, parsed) for name in live_chunks(chunks) if (parsed := parse_chunk_name(name)) is not None]
    chosen: dict[tuple[int, str], tuple[int, int, str]] = {}  # (session, writer) -> (chunks, width, name)
    for name in rollups:
        r = parse_chunk_name(name)
        if r is None:
            continue
        mine = [c for _, c in live if (c.session, c.writer) == (r.session, r.writer)]
        inside = [c for c in mine if r.first <= c.first and c.last <= r.last]
        if not inside or any(_straddles(r, c) for c in mine):
            continue  # covers nothing, or a compaction merged across its edge since it was written
        best = chosen.get((r.session, r.writer))
        candidate = (len(inside), r.last - r.first, name)
        if best is None or candidate[:2] > best[:2]:
            chosen[(r.session, r.writer)] = candidate
    used = {key: parse_chunk_name(name) for key, (_, _, name) in chosen.items()}
    raw = [
        name
        for name, c in live
        if (r := used.get((c.session, c.writer))) is None or not (r.first <= c.first and c.last <= r.last)
    ]
    return Plan(sorted(name for _, _, name in chosen.values()), raw)


def _straddles(r: ChunkId, c: ChunkId) -> bool:
    return c.first <= r.last and r.first <= c.last and not (r.first <= c.first and c.last <= r.last)


def from_points(table: pa.Table, max_buckets: int = MAX_BUCKETS) -> pa.Table:
    """Folds metric points (the chunk schema, in read order) into a rollup, one value per step.

    Example:
        >>> points = pa.table({"step": [0, 1, 2, 1], "time": [0.0, 1.0, 2.0, 3.0], "key": ["a"] * 4,
        ...                    "value": [1.0, 5.0, 2.0, 7.0]})
        >>> row = from_points(points, max_buckets=1).to_pylist()[0]
        >>> row["count"], row["max"], row["last"], row["width"]  # step 1 logged again: 7.0 replaced 5.0
        (3, 7.0, 2.0, 4)
    """
    if table.num_rows == 0:
        return ROLLUPS.empty_table()
    names, codes = _codes(table.column("key"))
    steps = table.column("step").to_numpy()
    keep = keep_last([codes], steps)
    codes, steps = codes[keep], steps[keep]
    values = table.column("value").to_numpy()[keep]
    times = table.column("time").to_numpy()[keep]
    finite = np.isfinite(values)
    ones = np.ones(len(steps), dtype=np.int64)
    rows = {
        "width": ones,
        "first_step": steps,
        "last_step": steps,
        "count": ones,
        "finite": finite.astype(np.int64),
        "min": np.where(finite, values, np.nan),
        "max": np.where(finite, values, np.nan),
        "mean": np.where(finite, values, np.nan),
        "last": values,
        "time": times,
    }
    return _combine(names, codes, rows, max_buckets, power_of_two=True)


def combine(tables: Sequence[pa.Table], max_buckets: int = MAX_BUCKETS, *, power_of_two: bool = True) -> pa.Table:
    """Rollups (or parts of one) as one rollup of at most ``max_buckets`` buckets per metric.

    A bucket's last value is that of its highest step; on a tie the later table wins (the
    last row in read order, as for points). With ``power_of_two`` a metric's width is its
    widest input width times a power of two (what is stored); without, any multiple of it,
    so a chart gets closer to ``max_buckets`` points. Either way each input bucket lies
    in one output bucket: nothing is split, every min and max is kept.

    Example:
        >>> points = pa.table({"step": list(range(8)), "time": [0.0] * 8, "key": ["a"] * 8,
        ...                    "value": [0.0, 0, 0, 9, 0, 0, 0, 1]})
        >>> [(r["first_step"], r["max"], r["mean"]) for r in combine([from_points(points)], 2).to_pylist()]
        [(0, 9.0, 2.25), (4, 1.0, 0.25)]
    """
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return ROLLUPS.empty_table()
    table = pa.concat_tables([t.cast(ROLLUPS) for t in tables]).unify_dictionaries()
    names, codes = _codes(table.column("key"))
    rows = {c: table.column(c).to_numpy() for c in _NUMERIC}
    return _combine(names, codes, rows, max_buckets, power_of_two)


def overlapping(parts: Sequence[pa.Table]) -> list[str]:
    """The metrics that two rollups among ``parts`` hold in overlapping step ranges (sorted).

    Then a step may be in both (logged again by a later session) and only the points say
    which value is last: combine the points instead.

    Example:
        >>> a = from_points(pa.table({"step": [0, 5], "time": [0.0, 0.0], "key": ["x", "x"], "value": [1.0, 2.0]}))
        >>> b = from_points(pa.table({"step": [6, 9], "time": [0.0, 0.0], "key": ["x", "x"], "value": [1.0, 2.0]}))
        >>> overlapping([a, b]), overlapping([a, a])
        ([], ['x'])
    """
    parts = [p for p in parts if p.num_rows]
    if len(parts) < 2:
        return []
    spans: dict[str, list[tuple[int, int]]] = {}
    for part in parts:
        if not part.num_rows:
            continue
        names, codes = _codes(part.column("key"))
        low = np.full(len(names), np.iinfo(np.int64).max)
        np.minimum.at(low, codes, part.column("first_step").to_numpy())
        high = np.full(len(names), np.iinfo(np.int64).min)
        np.maximum.at(high, codes, part.column("last_step").to_numpy())
        for code, name in enumerate(names):
            if low[code] <= high[code]:  # the name has rows
                spans.setdefault(name, []).append((int(low[code]), int(high[code])))
    found = []
    for name, ranges in spans.items():
        ranges.sort()
        if any(b[0] <= a[1] for a, b in zip(ranges, ranges[1:], strict=False)):
            found.append(name)
    return sorted(found)


def only(table: pa.Table, keys: Sequence[str], *, keep: bool = True) -> pa.Table:
    """The rows of ``table`` whose ``key`` is one of ``keys`` (with ``keep=False``: is none of them).

    Example:
        >>> points = pa.table({"step": [0, 0], "time": [0.0, 0.0], "key": ["a", "b"], "value": [1.0, 2.0]})
        >>> only(points, ["b"]).column("value").to_pylist(), only(points, ["b"], keep=False).num_rows
        ([2.0], 1)
    """
    found = pc.is_in(table.column("key").cast(pa.string()), pa.array(list(keys), pa.string()))
    return table.filter(found if keep else pc.invert(found))


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[list[str], np.ndarray]:
    """The distinct names of a key column and each row's index into them (decided per dictionary entry)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.unify_dictionaries().combine_chunks() if column.num_chunks else pa.array([], pa.string())
    if not pa.types.is_dictionary(column.type):
        column = column.cast(pa.string()).dictionary_encode()
    distinct: dict[str, int] = {}  # a dictionary may repeat a name: one code per name
    remap = np.array(
        [distinct.setdefault(str(n), len(distinct)) for n in column.dictionary.to_pylist()], dtype=np.int64
    )
    indices = column.indices.to_numpy(zero_copy_only=False)
    return list(distinct), remap[indices] if len(remap) else np.zeros(len(indices), dtype=np.int64)


def _widths(base: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_buckets: int, power_of_two: bool) -> np.ndarray:
    """Per metric, the narrowest allowed width whose buckets over ``[lo, hi]`` number at most ``max_buckets``."""
    need = np.maximum(1, -(-(hi - lo + 1) // (base * max_buckets)))  # ceil: a lower bound on the factor
    if power_of_two:
        need = 2 ** np.ceil(np.log2(need)).astype(np.int64)
    width = base * need
    while (over := (hi // width - lo // width + 1) > max_buckets).any():  # alignment may need one more step
        width = np.where(over, width * 2 if power_of_two else width + base, width)
    return width


def _combine(
    names: list[str], codes: np.ndarray, rows: dict[str, np.ndarray], max_buckets: int, power_of_two: bool
) -> pa.Table:
    if max_buckets < 1:
        raise ValueError(f"max_buckets={max_buckets!r} must be at least 1")
    n = len(names)
    base = np.ones(n, dtype=np.int64)
    np.maximum.at(base, codes, rows["width"])
    lo = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(lo, codes, rows["first_step"])
    hi = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(hi, codes, rows["last_step"])
    width = _widths(base, lo, hi, max_buckets, power_of_two)[codes]
    bucket = rows["first_step"] // width
    order = np.lexsort((np.arange(len(codes)), rows["last_step"], bucket, codes))
    codes, bucket, width = codes[order], bucket[order], width[order]
    sorted_rows = {c: v[order] for c, v in rows.items()}
    starts = np.flatnonzero(np.r_[True, (codes[1:] != codes[:-1]) | (bucket[1:] != bucket[:-1])])
    ends = np.r_[starts[1:], len(codes)] - 1  # the row with the highest step (the latest on a tie)
    finite = np.add.reduceat(sorted_rows["finite"], starts)
    weighted = np.where(sorted_rows["finite"] > 0, sorted_rows["mean"] * sorted_rows["finite"], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite > 0, np.add.reduceat(weighted, starts) / np.maximum(finite, 1), np.nan)
    out = {
        "width": width[starts],
        "first_step": np.minimum.reduceat(sorted_rows["first_step"], starts),
        "last_step": sorted_rows["last_step"][ends],
        "count": np.add.reduceat(sorted_rows["count"], starts),
        "finite": finite,
        "min": np.fmin.reduceat(sorted_rows["min"], starts),
        "max": np.fmax.reduceat(sorted_rows["max"], starts),
        "mean": mean,
        "last": sorted_rows["last"][ends],
        "time": sorted_rows["time"][ends],
    }
    # keys in name order, so a rollup reads the same whatever order its points came in
    rank = np.argsort(np.argsort(np.asarray(names, dtype=object)))
    final = np.lexsort((out["first_step"], rank[codes[starts]]))
    key = pa.DictionaryArray.from_arrays(pa.array(codes[starts][final].astype(np.int32)), pa.array(names, pa.string()))
    return pa.table({"key": key, **{c: v[final] for c, v in out.items()}}, schema=ROLLUPS)
