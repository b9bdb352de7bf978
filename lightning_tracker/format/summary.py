"""One value per (key, step), and the per-metric summary computed from those values.

Both rules live only here. A (key, step) may be logged more than once (a resumed run
logs a step again); the last row in read order wins: live chunks in
``(session, first, last)`` order, then row order. The summary a writer publishes while a
run is live is :func:`summarize` of every point so far, the same value a reader computes
after the run ends: :func:`fold` extends it exactly when a batch only adds later steps,
and names the keys that need :func:`summarize` over the whole history otherwise.

The run's own summary, its duration, lives here too (:func:`active_seconds`): the
seconds its sessions ran, which the CLI, the API and the page show alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["SUMMARY_FIELDS", "active_seconds", "fold", "keep_last", "summarize"]

# per metric: distinct steps; the last value logged (in read order) with its step and time;
# the extremes (NaN ignored, None if every value is NaN); the highest step with a value
SUMMARY_FIELDS = ("count", "last", "last_step", "last_time", "min", "min_step", "max", "max_step", "high_step")


def keep_last(groups: Sequence[np.ndarray], steps: np.ndarray) -> np.ndarray:
    """A mask keeping, for each (group..., step), only the last row in read order.

    Args:
        groups: integer codes naming the series of each row (a metric key; a tensor and kind).
        steps: the step of each row.

    Example:
        >>> keep_last([np.array([0, 0, 1, 0])], np.array([1, 2, 1, 1])).tolist()
        [False, True, True, True]
    """
    n = len(steps)
    if n == 0:
        return np.zeros(0, dtype=bool)
    rows = np.arange(n)
    order = np.lexsort((rows, steps, *reversed(groups)))  # the first group sorts first
    last = np.ones(n, dtype=bool)
    same = steps[order][1:] == steps[order][:-1]
    for g in groups:
        same &= g[order][1:] == g[order][:-1]
    last[:-1] = ~same
    keep = np.zeros(n, dtype=bool)
    keep[order[last]] = True
    return keep


def _columns(table: pa.Table) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    key = table.column("key")
    if not pa.types.is_dictionary(key.type):
        key = key.dictionary_encode()
    key = key.unify_dictionaries().combine_chunks() if isinstance(key, pa.ChunkedArray) else key
    if isinstance(key, pa.ChunkedArray):
        key = key.chunk(0) if key.num_chunks else pa.array([], pa.string()).dictionary_encode()
    names = [str(k) for k in key.dictionary.to_pylist()]
    codes = key.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    steps = table.column("step").to_numpy().astype(np.int64)
    times = table.column("time").to_numpy().astype(np.float64)
    values = table.column("value").to_numpy().astype(np.float64)
    return names, codes, steps, times, values


def summarize(table: pa.Table) -> dict[str, dict[str, Any]]:
    """The summary of metric points (columns ``step``, ``time``, ``key``, ``value``) in read order.

    Example:
        >>> t = pa.table({"step": [0, 1, 1, 2], "time": [0.0, 1.0, 2.0, 3.0], "key": ["a"] * 4,
        ...               "value": [3.0, 9.0, 1.0, float("nan")]})
        >>> s = summarize(t)["a"]
        >>> s["count"], s["last"], s["min"], s["min_step"], s["max"], s["max_step"], s["high_step"]
        (3, nan, 1.0, 1, 3.0, 0, 2)
    """
    if table.num_rows == 0:
        return {}
    names, codes, steps, times, values = _columns(table)
    keep = keep_last([codes], steps)
    codes, steps, times, values = codes[keep], steps[keep], times[keep], values[keep]
    order = np.argsort(codes, kind="stable")  # read order within each key
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    ends = np.r_[starts[1:], len(order)]
    out: dict[str, dict[str, Any]] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = order[start:end]
        v, s = values[rows], steps[rows]
        entry: dict[str, Any] = {
            "count": int(end - start),
            "last": float(v[-1]),
            "last_step": int(s[-1]),
            "last_time": float(times[rows[-1]]),
            "min": None,
            "min_step": None,
            "max": None,
            "max_step": None,
            "high_step": int(s.max()),
        }
        finite = np.flatnonzero(~np.isnan(v))
        if len(finite):
            lo, hi = finite[np.argmin(v[finite])], finite[np.argmax(v[finite])]
            entry.update(min=float(v[lo]), min_step=int(s[lo]), max=float(v[hi]), max_step=int(s[hi]))
        out[names[int(sorted_codes[start])]] = entry
    return dict(sorted(out.items()))


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` followed by ``new``, whose steps are all above ``old``'s: exact."""
    out = {**old, "count": old["count"] + new["count"], "high_step": new["high_step"]}
    out.update(last=new["last"], last_step=new["last_step"], last_time=new["last_time"])
    if new["min"] is not None and (old["min"] is None or new["min"] < old["min"]):
        out.update(min=new["min"], min_step=new["min_step"])
    if new["max"] is not None and (old["max"] is None or new["max"] > old["max"]):
        out.update(max=new["max"], max_step=new["max_step"])
    return out


def fold(summary: dict[str, dict[str, Any]], batch: pa.Table) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Extends ``summary`` (of every point so far) by the points of ``batch``, which follow them.

    Returns:
        The new summary, and the keys for which ``batch`` logs a step at or below one
        already summarized: their entries are not updated, and :func:`summarize` over
        the key's whole history gives the exact value.

    Example:
        >>> t = lambda steps, values: pa.table({"step": steps, "time": [0.0] * len(steps),
        ...                                     "key": ["a"] * len(steps), "value": values})
        >>> s, stale = fold({}, t([0, 1], [5.0, 2.0]))
        >>> s["a"]["count"], s["a"]["min"], stale
        (2, 2.0, set())
        >>> s, stale = fold(s, t([1, 2], [9.0, 1.0]))
        >>> s["a"]["count"], stale
        (2, {'a'})
    """
    out = dict(summary)
    stale: set[str] = set()
    if batch.num_rows == 0:
        return out, stale
    names, codes, steps, _, _ = _columns(batch)
    low = {names[int(c)]: int(steps[codes == c].min()) for c in np.unique(codes)}
    for key, entry in summarize(batch).items():
        old = out.get(key)
        if old is None:
            out[key] = entry
        elif old.get("high_step") is None or low[key] <= old["high_step"]:
            stale.add(key)
        else:
            out[key] = _merge(old, entry)
    return out, stale


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def active_seconds(run: dict[str, Any], now: float | None = None) -> float | None:
    """The seconds a ``run.json`` document's sessions ran: the idle time between a run and its resume left out.

    A session ends at its own ``heartbeat`` (its last write); one written before sessions
    recorded it ends where the next begins. The last session ends at the run's
    ``end_time``, else its last heartbeat, else ``now`` (pass it for a running run).
    A document without sessions counts from ``start_time``.

    Args:
        run: a ``run.json`` document.
        now: the time a running run has reached; None for one that is not running.

    Returns:
        The seconds, or None when the document has no start or no end.

    Example:
        >>> run = {"start_time": 0.0, "end_time": 1000.0, "heartbeat": 1000.0, "sessions": [
        ...     {"start_time": 0.0, "heartbeat": 60.0}, {"start_time": 900.0, "heartbeat": 1000.0}]}
        >>> active_seconds(run)
        160.0
        >>> active_seconds({"start_time": 10.0, "heartbeat": 25.0, "sessions": []})
        15.0
    """
    sessions = [
        s for s in run.get("sessions") or [] if isinstance(s, dict) and _seconds(s.get("start_time")) is not None
    ]
    sessions.sort(key=lambda s: float(s["start_time"]))
    run_end = _seconds(run.get("end_time")) or _seconds(run.get("heartbeat")) or now
    if not sessions:
        start = _seconds(run.get("start_time"))
        return None if start is None or run_end is None else max(0.0, run_end - start)
    total = 0.0
    for session, following in zip(sessions, [*sessions[1:], None], strict=True):
        start = float(session["start_time"])
        if following is None:  # the last session: the run's end is its end
            end = _seconds(run.get("end_time")) or _seconds(session.get("heartbeat")) or run_end
        else:  # never past the next session's start, however its clock ran
            end = min(_seconds(session.get("heartbeat")) or float("inf"), float(following["start_time"]))
        if end is None:
            return None
        total += max(0.0, end - start)
    return total
