"""Metric points to immutable Parquet chunks, a per-metric summary, and compaction.

Each flush writes one chunk ``metrics/<session>-<first>-<last>.parquet`` with columns
``step`` (int64), ``time`` (float64, Unix seconds), ``key`` (dictionary string) and
``value`` (float64). Compaction merges chunks into one that covers their range; it is
written before the chunks it replaces are deleted, and readers drop covered chunks
(:func:`lightning_tracker.run.live_chunks`), so no reader ever sees a point twice or
misses one.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.run import METRICS_DIR, chunk_name, live_chunks, parse_chunk_name

__all__ = ["COMPACT_FANIN", "MetricsWriter", "Point", "SCHEMA", "summarize_table"]

Point = tuple  # (key: str, step: int, time: float, value: float)

SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("time", pa.float64()),
        ("key", pa.dictionary(pa.int32(), pa.string())),
        ("value", pa.float64()),
    ]
)
COMPACT_FANIN = 16  # chunks of one size class merged at once (log-structured)


def _level(first: int, last: int) -> int:
    span, level = last - first + 1, 0
    while span >= COMPACT_FANIN:
        span //= COMPACT_FANIN
        level += 1
    return level


def _write_table(table: pa.Table, path: str) -> None:
    tmp = f"{os.path.dirname(path)}/.tmp-{os.path.basename(path)}.part"
    pq.write_table(table, tmp, compression="zstd", use_dictionary=["key"])
    os.replace(tmp, path)


class MetricsWriter:
    """Writes metric chunks of one session of a run into a local folder.

    Args:
        run_dir: the local folder of the run (the run itself, or its spool copy).
        session: the session number (0 for a new run, +1 at each resume).
        first_seq: the first flush sequence number to use in this session.
    """

    def __init__(self, run_dir: str, session: int, first_seq: int = 0) -> None:
        self.dir = os.path.join(run_dir, METRICS_DIR)
        self.session = session
        self.seq = first_seq
        self.summary: dict[str, dict[str, Any]] = {}

    # -- writing ----------------------------------------------------------------------
    def write(self, points: list[Point]) -> str | None:
        """Writes ``points`` as one chunk and folds them into the summary.

        Returns:
            The chunk's file name, or None when ``points`` is empty.
        """
        if not points:
            return None
        keys, steps, times, values = zip(*points)
        # keys repeat: encode them once per distinct name instead of once per point
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), np.int32, len(keys))
        step_arr = np.fromiter(steps, np.int64, len(steps))
        value_arr = np.fromiter(values, np.float64, len(values))
        table = pa.table(
            {
                "step": step_arr,
                "time": np.fromiter(times, np.float64, len(times)),
                "key": pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(list(index), pa.string())),
                "value": value_arr,
            },
            schema=SCHEMA,
        )
        os.makedirs(self.dir, exist_ok=True)
        name = chunk_name(self.session, self.seq, self.seq)
        _write_table(table, os.path.join(self.dir, name))
        self.seq += 1
        self._fold(list(index), codes, step_arr, value_arr, times)
        return name

    def _fold(self, names: list[str], codes: Any, steps: Any, values: Any, times: Any) -> None:
        """Folds a batch into the running summary, one vectorised pass per metric."""
        for code, key in enumerate(names):
            where = np.flatnonzero(codes == code)
            k_steps, k_values = steps[where], values[where]
            s = self.summary.get(key)
            if s is None:
                s = self.summary[key] = {"count": 0, "min": None, "max": None, "min_step": None, "max_step": None}
            # a value logged again for the step just logged replaces it: count new steps only
            previous = np.empty_like(k_steps)
            previous[0] = s["last_step"] if s["count"] else k_steps[0] - 1
            previous[1:] = k_steps[:-1]
            s["count"] += int(np.count_nonzero(k_steps != previous))
            s["last"], s["last_step"] = float(k_values[-1]), int(k_steps[-1])
            s["last_time"] = float(times[where[-1]])
            finite = ~np.isnan(k_values)
            if finite.any():
                candidates = np.flatnonzero(finite)
                lo = candidates[np.argmin(k_values[candidates])]
                hi = candidates[np.argmax(k_values[candidates])]
                if s["min"] is None or k_values[lo] < s["min"]:
                    s["min"], s["min_step"] = float(k_values[lo]), int(k_steps[lo])
                if s["max"] is None or k_values[hi] > s["max"]:
                    s["max"], s["max_step"] = float(k_values[hi]), int(k_steps[hi])

    # -- compaction -------------------------------------------------------------------
    def session_chunks(self) -> list[str]:
        """Live chunk names of this session, in order."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return [n for n in live_chunks(names) if parse_chunk_name(n)[0] == self.session]  # type: ignore[index]

    def compact(self, final: bool = False) -> list[str]:
        """Merges chunks of this session; returns the names it deleted.

        Without ``final``, merges the newest run of ``COMPACT_FANIN`` chunks of one size
        class, and again one class up while that fills a run too (so each point is
        rewritten O(log n) times and a session keeps O(log n) files); with ``final``,
        merges every chunk of the session into one.
        """
        deleted: list[str] = []
        while True:
            done = self._compact_once(final)
            if not done:
                return deleted
            deleted += done
            if final:
                return deleted

    def _compact_once(self, final: bool) -> list[str]:
        chunks = self.session_chunks()
        if final:
            group = chunks if len(chunks) > 1 else []
        else:
            levels = [_level(*parse_chunk_name(n)[1:]) for n in chunks]  # type: ignore[misc]
            group = []
            for name, level in zip(reversed(chunks), reversed(levels)):
                if level != levels[-1]:
                    break
                group.insert(0, name)
            if len(group) < COMPACT_FANIN:
                group = []
        if not group:
            return []
        tables = [pq.read_table(os.path.join(self.dir, n)) for n in group]
        merged = pa.concat_tables(tables).unify_dictionaries().combine_chunks()
        first = parse_chunk_name(group[0])[1]  # type: ignore[index]
        last = parse_chunk_name(group[-1])[2]  # type: ignore[index]
        _write_table(merged, os.path.join(self.dir, chunk_name(self.session, first, last)))
        for name in group:
            try:
                os.remove(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        return group

    def recompute_summary(self) -> None:
        """Rebuilds the summary exactly from every chunk in the folder (all sessions)."""
        try:
            names = live_chunks(os.listdir(self.dir))
        except FileNotFoundError:
            names = []
        if not names:
            return
        table = pa.concat_tables(
            [pq.read_table(os.path.join(self.dir, n)).cast(SCHEMA) for n in names]
        ).unify_dictionaries()
        self.summary = summarize_table(table)


def summarize_table(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Per-metric summary of a long table in write order; one value per (key, step), the last written.

    ``last`` is the value logged last (as while the run is live), ``count`` the number of
    distinct steps.

    Example:
        >>> t = pa.table({"step": [0, 1, 1], "time": [0.0, 1.0, 2.0], "key": ["a", "a", "a"],
        ...               "value": [3.0, 5.0, 1.0]})
        >>> s = summarize_table(t)["a"]
        >>> s["count"], s["last"], s["min"], s["min_step"], s["max"]
        (2, 1.0, 1.0, 1, 3.0)
    """
    df = table.to_pandas()
    df["key"] = df["key"].astype(str)
    df = df.drop_duplicates(["key", "step"], keep="last")
    out: dict[str, dict[str, Any]] = {}
    for key, group in df.groupby("key", sort=True):
        values = group["value"]
        finite = values.dropna()
        last = group.iloc[-1]
        entry: dict[str, Any] = {
            "count": int(len(group)),
            "last": float(last["value"]),
            "last_step": int(last["step"]),
            "last_time": float(last["time"]),
            "min": None, "max": None, "min_step": None, "max_step": None,
        }  # fmt: skip
        if len(finite):
            imin, imax = finite.idxmin(), finite.idxmax()
            entry.update(
                min=float(values[imin]), min_step=int(group.loc[imin, "step"]),
                max=float(values[imax]), max_step=int(group.loc[imax, "step"]),
            )  # fmt: skip
        out[str(key)] = entry
    return out
