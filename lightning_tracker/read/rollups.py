"""Reading a run's rollups: the stored ones, plus the live tail folded into the same buckets.

:func:`read_rollup` lists ``metrics/`` and ``rollups/`` and follows
:func:`~lightning_tracker.format.rollups.plan`: it reads the chosen rollups and the raw
points of the live chunks they do not cover (a running run's newest chunks, or every chunk
of a run written before rollups existed) and combines them
(:func:`~lightning_tracker.format.rollups.combine`), so a chart of a running run is
current. When the parts hold overlapping steps of one metric (a step logged again by a
later session), every point of the run is folded instead, so the last value of a step is
the one :meth:`Run.metrics <lightning_tracker.read.run.Run.metrics>` shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import pyarrow as pa

from lightning_tracker.exceptions import StorageError, StoreChangedError
from lightning_tracker.format import rollups
from lightning_tracker.format.layout import METRICS_DIR
from lightning_tracker.format.schemas import METRICS
from lightning_tracker.read.cache import Damaged, ReadCache, read_chunk
from lightning_tracker.storage import Storage

__all__ = ["read_rollup"]

_ATTEMPTS = 5  # listings tried when compaction replaces files between listing and reading


def read_rollup(
    storage: Storage,
    path: str,
    cache: ReadCache | None = None,
    *,
    keys: Iterable[str] | None = None,
    max_buckets: int = rollups.MAX_BUCKETS,
    power_of_two: bool = True,
    on_damaged: Callable[[str], None] | None = None,
) -> pa.Table:
    """The rollup of every metric point of the run at ``path`` (a table of ``format.rollups.ROLLUPS``).

    Args:
        storage: the store.
        path: the run, ``<project>/<run id>``.
        cache: reuse the parsed files read before (rollups and chunks never change under their name).
        keys: only these metrics (default: all).
        max_buckets: the most buckets per metric.
        power_of_two: widths as stored (see :func:`~lightning_tracker.format.rollups.combine`);
            False lets a chart get closer to ``max_buckets``.
        on_damaged: called with a message naming a damaged file, which is then left out
            (a damaged rollup: its chunks are read raw instead); None raises.

    Raises:
        StorageError: a chunk is damaged and ``on_damaged`` is None.
        StoreChangedError: the files kept changing while being read.

    Example:
        >>> import io
        >>> import pyarrow.parquet as pq
        >>> from lightning_tracker.format.layout import chunk_name
        >>> storage, buf = Storage("memory://doc-rollup"), io.BytesIO()
        >>> points = {"step": [0, 1, 2], "time": [0.0] * 3, "key": ["a"] * 3, "value": [1.0, 9.0, 2.0]}
        >>> pq.write_table(pa.table(points), buf)
        >>> storage.write_bytes(f"p/r1/metrics/{chunk_name(0, 0, 0)}", buf.getvalue())
        >>> row = read_rollup(storage, "p/r1", max_buckets=1).to_pylist()[0]
        >>> row["min"], row["max"], row["last"], row["count"]
        (1.0, 9.0, 2.0, 3)
    """
    chosen = None if keys is None else sorted(set(keys))
    for _attempt in range(_ATTEMPTS):
        chunks = storage.listdir(f"{path}/{METRICS_DIR}")
        stored = storage.listdir(f"{path}/{rollups.ROLLUPS_DIR}")
        plan = rollups.plan(chunks, stored)
        try:
            parts = _read(storage, f"{path}/{rollups.ROLLUPS_DIR}", plan.rollups, rollups.ROLLUPS, cache, None)
            damaged = [p for p in parts if isinstance(p, Damaged)]
            if damaged:  # read what they cover raw instead
                plan = rollups.plan(chunks, [n for n in plan.rollups if n not in {d.name for d in damaged}])
                parts = [p for p in parts if not isinstance(p, Damaged)]
            raw = _points(storage, f"{path}/{METRICS_DIR}", plan.raw, cache, on_damaged)
            # a finished run's rollups cover every chunk: no tail to fold (folding nothing still builds a table)
            tails = [rollups.from_points(raw)] if raw.num_rows else []
            if rollups.overlapping([*parts, *tails]):
                every = rollups.plan(chunks, []).raw
                parts, tails = (
                    [],
                    [rollups.from_points(_points(storage, f"{path}/{METRICS_DIR}", every, cache, on_damaged))],
                )
        except FileNotFoundError:
            continue  # compacted between listing and reading: list again
        for part in damaged:
            message = (
                f"the rollup {storage.full_url(f'{path}/{rollups.ROLLUPS_DIR}/{part.name}')} is damaged: {part.reason}"
            )
            if on_damaged is not None:
                on_damaged(f"{message}; its points were read instead")
        if chosen is not None:
            parts, tails = [rollups.only(p, chosen) for p in [*parts, *tails]], []
        table = rollups.combine([*parts, *tails], max_buckets, power_of_two=power_of_two)
        return table
    raise StoreChangedError(
        f"the metrics at {storage.full_url(path)} kept changing while being read ({_ATTEMPTS} listings); try again"
    )


def _read(
    storage: Storage, folder: str, names: list[str], schema: pa.Schema, cache: ReadCache | None, tag: str | None
) -> list[pa.Table | Damaged]:
    read = partial(read_chunk, storage, folder, schema)
    if cache is None:
        return [read(n) for n in names]
    # the cache keeps one listing per key: the tail is a part of metrics/, so it is kept apart
    return cache.tables(storage, folder if tag is None else f"{folder}#{tag}", names, read)


def _points(
    storage: Storage, folder: str, names: list[str], cache: ReadCache | None, on_damaged: Callable[[str], None] | None
) -> pa.Table:
    tables = []
    for part in _read(storage, folder, names, METRICS, cache, "rollup-tail"):
        if isinstance(part, Damaged):
            message = f"the metrics chunk {storage.full_url(f'{folder}/{part.name}')} is damaged: {part.reason}"
            if on_damaged is None:
                raise StorageError(f"{message}; read the others with skip_damaged=True")
            on_damaged(message)
        else:
            tables.append(part)
    return pa.concat_tables(tables) if tables else METRICS.empty_table()
