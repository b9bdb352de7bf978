"""The data behind the report and the dashboard: runs, configs and series drawn from rollups.

A chart over many runs draws each run from its rollup (:meth:`Run.rollups
<lightning_tracker.read.run.Run.rollups>`: the stored rollups plus the live tail, or the
points of a run without rollups, folded alike), never from all its points: a series is at
most ``max_points`` step buckets, each drawn at its mean with its min/max as an envelope,
so a spike in one step never disappears from a chart; a series whose buckets hold one
point each is drawn as its points. A page of many runs draws fewer buckets per line
(:func:`line_points`: :data:`PAGE_POINTS` in all, at least :data:`MIN_LINE_POINTS` each).
A zoomed chart shows the points themselves (:func:`zoom_series`), for the few runs drawn:
the dashboard answers them from its server (``/api/points``), a report embeds them only
while all its bucketed series hold at most :data:`REPORT_RAW_POINTS` points (``points``;
the payload's ``zoom`` says which), so a report of a big sweep stays small and draws
rollups, zoomed in or not. Cumulative counters
(disk and network bytes) are drawn as per-second rates and byte series carry their unit
(see :func:`rate` and :func:`unit_of`); a run's record names the metric its
``ModelCheckpoint`` monitors. The payload's ``keys`` carry what
:mod:`~lightning_tracker.format.keys` decides, so that the page asks the same owner as the
CLI: ``order`` (every metric in the order it matters: the page opens on the first that
is a score, and orders its sections, charts and table columns by it), ``families``
(``{metric: family}`` for the monitor families, drawn in closed sections) and ``labels``
(``{"config.K"|"summary.K": header}``, distinct when a hyperparameter and a metric share a
name).

The live dashboard refreshes through :func:`payload_bytes`: what is drawn of a run (its
series, histograms, checkpoints and media index, see :mod:`~lightning_tracker.report.media`)
is kept as JSON text in the store's :class:`~lightning_tracker.read.cache.ReadCache` and
built again only when the run's live chunks, its checkpoint manifest or its start time change.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lightning_tracker.exceptions import InvalidArgumentError, StorageError
from lightning_tracker.format import keys, rollups
from lightning_tracker.format.keys import family, unprefixed
from lightning_tracker.format.layout import (
    HISTOGRAMS_DIR,
    MEDIA_DIR,
    METRICS_DIR,
    MODELS_FILE,
    RUN_FILE,
    live_chunks,
    validate_path_name,
)
from lightning_tracker.format.status import DAMAGED
from lightning_tracker.read.rollups import read_rollup
from lightning_tracker.read.store import Run, Store
from lightning_tracker.report.media import fit_budget, media_limits, media_part

__all__ = [
    "COUNTERS", "DEFAULT_MAX_POINTS", "PAGE_POINTS", "REPORT_RAW_POINTS", "ZOOM_POINTS", "build_payload", "is_counter",
    "line_points", "payload_bytes", "payload_json", "points_answer", "rate", "store_name", "unit_of", "zoom_series",
]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_MAX_POINTS = 500
ZOOM_POINTS = 2000  # the most points a zoomed chart draws per run (more: buckets of them)
# a report embeds the points of its bucketed series (for zooming in, offline) while it holds
# at most this many points in all; a bigger one draws rollups only, zoomed in or not
REPORT_RAW_POINTS = 200_000
_DRAW_THREADS = 8  # runs drawn at once from a remote store: their round trips overlap
# from a local store: there is no round trip to hide, and drawing holds the GIL (decoding
# releases it), so more threads only hand the GIL around: 8 cost 1.5-2.5 s more CPU than
# 2 for a report of 1,000 runs, and were slower (benchmarks/report_scale.py)
_LOCAL_DRAW_THREADS = 2
# the buckets one page draws in all: a page of many runs draws fewer per line (the envelope
# still holds every spike), so a report of 1,000 runs x 10 metrics stays a few MB
PAGE_POINTS = 300_000
MIN_LINE_POINTS = 32  # but never fewer than this per line


def line_points(runs: Sequence[Run], max_points: int) -> int:
    """The most buckets per line on a page of ``runs``: ``max_points``, or fewer when the page's
    lines (one per run and metric, counted from the runs' summaries) would draw more than
    :data:`PAGE_POINTS` in all; at least :data:`MIN_LINE_POINTS` (or ``max_points`` when smaller).

    Example:
        >>> class R:
        ...     summary = dict.fromkeys(f"m{i}" for i in range(10))
        >>> line_points([R()] * 10, 500), line_points([R()] * 1000, 500), line_points([R()] * 1000, 20)
        (500, 32, 20)
    """
    lines = sum(len(run.summary) for run in runs)
    return max(min(max_points, MIN_LINE_POINTS), min(max_points, PAGE_POINTS // max(lines, 1)))


PAYLOAD_VERSION = 1


# SystemMonitor (callbacks/system.py) records disk and network traffic as bytes counted since
# fitting started (no traffic is lost between samples); drawn as they are, they are rising lines
# that say little, so the report draws them as bytes per second. tests/report/test_units.py
# checks that these are the counters SystemMonitor really writes.
COUNTERS = ("system/disk_read_bytes", "system/disk_write_bytes", "system/net_sent_bytes", "system/net_recv_bytes")


def is_counter(key: str) -> bool:
    """Whether ``key`` is a cumulative counter drawn as a rate (also under a logger ``prefix``).

    Example:
        >>> is_counter("system/net_sent_bytes"), is_counter("fit-system/net_sent_bytes")
        (True, True)
        >>> is_counter("system/ram_used_bytes"), is_counter("mysystem/net_sent_bytes")
        (False, False)
        >>> is_counter("val/system/net_sent_bytes")
        False
    """
    return family(key) == "system" and unprefixed(key) in COUNTERS


def unit_of(key: str) -> str | None:
    """The unit a series is drawn in (the page labels its axis in KB, MB, GB): ``"B/s"``, ``"B"`` or None.

    Example:
        >>> unit_of("system/disk_read_bytes"), unit_of("system/gpu0/memory_used_bytes"), unit_of("val/loss")
        ('B/s', 'B', None)
    """
    if is_counter(key):
        return "B/s"
    return "B" if key.endswith("_bytes") else None


def rate(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-second rates of a cumulative counter, one for each sample after the first.

    A sample where the counter went down (a resumed run counts from zero again) or the
    clock did not advance gets NaN, a gap in the line, never a negative rate.

    Example:
        >>> rate(np.array([0.0, 2.0, 4.0, 5.0, 6.0]), np.array([0.0, 100.0, 300.0, 0.0, 50.0])).tolist()
        [50.0, 100.0, nan, 50.0]
    """
    dv, dt = np.diff(np.asarray(values, dtype=np.float64)), np.diff(np.asarray(times, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((dv >= 0) & (dt > 0), dv / np.where(dt > 0, dt, 1.0), np.nan)


def _series(run: Run, max_points: int) -> dict[str, Any]:
    """What each metric of a run draws, from its rollups (the stored ones plus the live tail)."""

    def skip(problem: str) -> None:  # as Run.rollups(skip_damaged=True) does
        log.warning("%s; it is left out", problem)
        run.problems.append(problem)

    if max_points < 2:
        raise InvalidArgumentError(f"max_points={max_points!r} must be at least 2; charts need two points per line")
    rows = read_rollup(run.storage, run.path, run.cache, max_buckets=max_points, power_of_two=False, on_damaged=skip)
    if not rows.num_rows:
        return {}
    start = run.start_time if run.start_time is not None else float(pc.min(rows.column("time")).as_py())
    return _draw(rows, start)


def _draw(table: pa.Table, start: float) -> dict[str, Any]:
    """Rollup rows (combined to as many buckets as are drawn) as the page's series.

    A metric whose buckets hold one point each is drawn as its points (``step``, ``t``,
    ``y``); else each bucket at its middle step with its mean as ``y`` and its min and max
    as the envelope (``lo``, ``hi``): a spike in one step shows in the overview. ``n``
    counts the points. A counter is drawn as the rate between the buckets' last values.
    """
    names = table.column("key").cast(pa.string()).to_numpy(zero_copy_only=False)
    cols = {
        c: table.column(c).to_numpy()
        for c in ("first_step", "last_step", "count", "min", "max", "mean", "last", "time")
    }
    out: dict[str, Any] = {}
    bounds = np.flatnonzero(np.r_[True, names[1:] != names[:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        key = str(names[lo])
        part = {c: v[lo:hi] for c, v in cols.items()}
        unit = unit_of(key)
        if is_counter(key):  # bytes since fitting started: drawn as bytes per second
            order = np.argsort(part["time"], kind="stable")
            values = rate(part["time"][order], part["last"][order])
            if not len(values):
                continue
            series = {"step": part["last_step"][order][1:], "t": part["time"][order][1:] - start, "y": values}
        elif (part["count"] == 1).all():
            series = {"step": part["first_step"], "t": part["time"] - start, "y": part["last"]}
        else:
            middle = part["first_step"] + (part["last_step"] - part["first_step"]) // 2
            series = {
                "step": middle,
                "t": part["time"] - start,
                "y": part["mean"],
                "lo": part["min"],
                "hi": part["max"],
            }
        out[key] = {"n": int(part["count"].sum()), **series}
        if unit is not None:
            out[key]["unit"] = unit
    return out


def zoom_series(run: Run, key: str, low: float, high: float, max_points: int = ZOOM_POINTS) -> dict[str, Any]:
    """One metric of a run between steps ``low`` and ``high``, drawn from its points: each point
    when there are at most ``max_points`` (a zoomed chart shows the data itself), else buckets
    of them with their envelope (see :func:`_draw`).

    Example:
        >>> from lightning_tracker import TrackerLogger
        >>> logger = TrackerLogger("memory://doc-zoom", name="p", tensorboard=False)
        >>> for step in range(1000):
        ...     logger.log_metrics({"loss": float(step)}, step=step)
        >>> logger.finalize("success")
        >>> zoomed = zoom_series(Store("memory://doc-zoom").run(logger.version), "loss", 10, 14)
        >>> zoomed["step"].tolist(), zoomed["y"].tolist(), "lo" in zoomed
        ([10, 11, 12, 13, 14], [10.0, 11.0, 12.0, 13.0, 14.0], False)
    """
    points = run.metrics([key], wide=False, skip_damaged=True)
    start = run.start_time if run.start_time is not None else float(points["time"].min() if len(points) else 0.0)
    return _zoom(points, start, key, low, high, max_points)


def points_answer(store: Store, query: str, project: str | None = None) -> bytes | None:
    """The dashboard's ``/api/points?run=<project>/<run id>&key=<metric>&from=<step>&to=<step>``:
    :func:`zoom_series` as JSON; None when the run is not in the store (or not in ``project``).

    Raises:
        InvalidArgumentError: a parameter is missing or malformed (a run that is not
            ``<project>/<run id>`` of folder names, a step that is not a number).

    Example:
        >>> points_answer(Store("memory://doc-points-none"), "run=p/r1&key=loss&from=0&to=9") is None
        True
    """
    args = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        run_project, run_id = (validate_path_name("run", p) for p in args["run"].split("/"))
        low, high, key = float(args["from"]), float(args["to"]), args["key"]
    except (KeyError, ValueError) as err:
        raise InvalidArgumentError(
            f"query {query!r} is not run=<project>/<run id>&key=<metric>&from=<step>&to=<step> ({err})"
        ) from None
    if project is not None and run_project != project:
        return None
    path = f"{run_project}/{run_id}"
    try:
        doc = store.storage.read_bytes(f"{path}/{RUN_FILE}")
    except FileNotFoundError:
        return None
    run = Run(store.storage, path, doc, cache=store.cache)
    return payload_json(zoom_series(run, key, low, high)).encode("utf-8")


def _zoom(points: pd.DataFrame, start: float, key: str, low: float, high: float, max_points: int) -> dict[str, Any]:
    """:func:`zoom_series` of the long-form points of one metric (in step order)."""
    steps = points["step"].to_numpy()
    inside = (steps >= low) & (steps <= high)
    if is_counter(key):  # a rate needs the point before the range too
        before = np.flatnonzero(steps < low)
        if len(before):
            inside[before[-1]] = True
    table = pa.Table.from_pandas(points[inside], preserve_index=False)
    if not table.num_rows:
        return {"n": 0, "step": np.zeros(0, dtype=np.int64), "t": np.zeros(0), "y": np.zeros(0)}
    folded = rollups.combine([rollups.from_points(table, max_buckets=table.num_rows)], max_points, power_of_two=False)
    drawn = _draw(folded, start)
    return drawn.get(key) or {"n": 0, "step": np.zeros(0, dtype=np.int64), "t": np.zeros(0), "y": np.zeros(0)}


def _embed_points(payload: dict[str, Any], runs: Sequence[Run]) -> None:
    """Adds the points of each bucketed series to a report (``points``) when they number at most
    :data:`REPORT_RAW_POINTS` in all, so that zooming in offline shows the data itself; else
    the report holds rollups only and says so (``zoom``)."""
    bucketed = {(run, m): s["n"] for run, series in payload["series"].items() for m, s in series.items() if "lo" in s}
    fits = sum(bucketed.values()) <= REPORT_RAW_POINTS
    payload["zoom"] = "points" if fits else "rollups"
    payload["points"] = {}
    if not bucketed or not fits:
        return
    for run in runs:
        key = f"{run.project}/{run.id}"
        wanted = sorted(m for r, m in bucketed if r == key)
        if not wanted:
            continue
        long = run.metrics(wanted, wide=False, skip_damaged=True)
        start = run.start_time if run.start_time is not None else float(long["time"].min())
        payload["points"][key] = {
            m: _zoom(group, start, m, -math.inf, math.inf, REPORT_RAW_POINTS) for m, group in long.groupby("key")
        }


MAX_HISTOGRAM_STEPS = 200  # columns of a heatmap; more steps are thinned for drawing only


def _histograms(run: Run) -> dict[str, Any] | None:
    """Histograms per tensor and kind as ``{"step": [...], "edges": [[...]], "counts": [[...]]}``.

    A heatmap shows at most ``MAX_HISTOGRAM_STEPS`` steps, evenly spread.
    """
    frame = run.histograms(skip_damaged=True)
    if frame.empty:
        return None
    out: dict[str, Any] = {}
    for (tensor, kind), group in frame.groupby(["tensor", "kind"], sort=True):
        group = group.sort_values("step", kind="stable")
        if len(group) > MAX_HISTOGRAM_STEPS:
            group = group.iloc[np.linspace(0, len(group) - 1, MAX_HISTOGRAM_STEPS).astype(int)]
        out[f"{tensor} ({kind})"] = {
            "step": group["step"].to_numpy(),
            "edges": [np.asarray(e, dtype=float) for e in group["edges"]],
            "counts": [np.asarray(c, dtype=float) for c in group["counts"]],
        }
    return out


_CHECKPOINT_COLUMNS = ("name", "step", "epoch", "monitor", "score", "size", "aliases", "state")


def _checkpoints(run: Run) -> list[dict[str, Any]] | None:
    """Checkpoints with their aliases."""
    return [{c: ref.entry.get(c) for c in _CHECKPOINT_COLUMNS if c in ref.entry} for ref in run.checkpoints]


def _run_record(run: Run, damage: list[str]) -> dict[str, Any]:
    """A run's row; ``damage`` adds what drawing it found damaged to what its documents showed."""
    problems = [*run.problems, *(d for d in damage if d not in run.problems)]
    return {
        "key": f"{run.project}/{run.id}",
        "id": run.id,
        "name": run.name,
        "project": run.project,
        "group": run.group,
        "tags": run.tags,
        "status": DAMAGED if problems else run.status,
        "monitor": run.monitor,
        "damage": "; ".join(problems) or None,
        "start": run.start_time,
        "duration": run.duration,
        "notes": run.notes,
        "config": {k: v if not isinstance(v, (list, dict)) else json.dumps(v) for k, v in run.flat_config.items()},
        "summary": {k: s.get("last") for k, s in run.summary.items()},
        "min": {k: s.get("min") for k, s in run.summary.items()},  # for the filter box's min.K and max.K
        "max": {k: s.get("max") for k, s in run.summary.items()},
    }


def _keys(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What :mod:`~lightning_tracker.format.keys` decides for these runs, for the page to follow."""
    params = list(dict.fromkeys(k for r in records for k in r["config"]))
    metrics = list(dict.fromkeys(k for r in records for k in r["summary"]))
    monitors = keys.monitored((r["monitor"] or {}).get("name") for r in records)
    return {
        "order": keys.metric_order(metrics, monitors),
        "families": {k: f for k in metrics if (f := keys.family(k)) is not None},
        "scores": [k for k in metrics if keys.is_score(k)],
        "labels": keys.labels(params, metrics),
    }


# what damaged data raises while a run is drawn (a network error is none of these and fails the read)
_DAMAGE = (StorageError, ValueError, TypeError, KeyError, IndexError)


_PART_FILES = {"histograms": HISTOGRAMS_DIR, "checkpoints": MODELS_FILE, "media": MEDIA_DIR}


def _drawn(run: Run, max_points: int, embed: bool) -> dict[str, Any]:
    """What is drawn of a run besides its record: decided by its files alone (see :func:`_inputs`).

    ``embed`` puts the media previews into the part ``files`` (the report); without, the
    page loads them from the dashboard's server (see :mod:`lightning_tracker.report.media`).

    A damaged chunk is left out and a part that cannot be built from damaged data is left
    empty; either is named in ``damage``, so one damaged run never hides the others.
    """
    known = len(run.problems)
    builds: dict[str, Callable[[], Any]] = {
        "series": lambda: _series(run, max_points),
        "histograms": lambda: _histograms(run),
        "checkpoints": lambda: _checkpoints(run),
        "media": lambda: media_part(run, embed=embed),
    }
    # a part whose files the run does not have is empty: one listing instead of a read each
    # (most runs of a sweep have no histograms, media or checkpoints)
    files = set(run.storage.listdir(run.path))
    absent = {part for part, name in _PART_FILES.items() if name not in files}
    parts: dict[str, Any] = {"series": {}, "histograms": None, "checkpoints": None, "media": None}
    damage: list[str] = []
    for name, build in builds.items():
        if name in absent:
            continue
        try:
            parts[name] = build()
        except _DAMAGE as err:
            damage.append(f"{name}: {err}")
    parts["damage"] = [*run.problems[known:], *damage]
    parts["files"] = parts["media"].pop("files", {}) if parts["media"] else {}
    parts["media"] = parts["media"]["keys"] if parts["media"] else None
    return parts


def _inputs(run: Run) -> tuple[Any, ...]:
    """Everything :func:`_drawn` depends on, from listings of the run and its chunk folders and one small read.

    Chunks never change under their name, so their live names stand for their content; a
    compaction that has written its covering chunk changes them, its deletions do not. The
    run is not listed recursively: its media objects and checkpoints may be many thousands.
    """
    files = run.storage.listdir(run.path)
    chunks = [
        tuple(live_chunks(run.storage.listdir(f"{run.path}/{folder}"))) if folder in files else ()
        for folder in (METRICS_DIR, HISTOGRAMS_DIR, MEDIA_DIR)
    ]
    try:
        models = run.storage.read_bytes(f"{run.path}/{MODELS_FILE}") if MODELS_FILE in files else None
    except FileNotFoundError:
        models = None
    return (run.start_time, *chunks, models)


def store_name(store: Store) -> str:
    """How the page names the store: a local folder by its own name, a remote store by its URL.

    A report is shared: the absolute path of a local folder names the user's home and
    machine, and says nothing to the reader that the folder's name does not.

    Example:
        >>> store_name(Store("/home/alice/work/runs")), store_name(Store("memory://team/exp"))
        ('runs', 'memory://team/exp')
    """
    storage = store.storage
    if storage.is_local:
        return os.path.basename(os.path.normpath(storage.root)) or storage.root
    return storage.url


class _Json(str):
    """JSON text made by :func:`payload_json`, which copies it into a payload as it is."""


def _payload(
    store: Store,
    runs: Sequence[Run] | None,
    project: str | None,
    title: str | None,
    on_run: Callable[[Run], None] | None,
    drawn: Callable[[Run, int], dict[str, Any]],
    embed: bool,
    max_points: int,
) -> dict[str, Any]:
    if runs is None:
        runs = store.runs(project)
    per_line = line_points(runs, max_points)
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "title": title or f"Runs in {store_name(store)}",
        "store": store_name(store),
        "generated": time.time(),
        "runs": [],
        "series": {},
        "histograms": {},
        "checkpoints": {},
        "media": {},
        "files": {},  # media previews by object name (report only), each stored once
        "media_limits": media_limits(embed),  # what the report embeds (stated in the page); the dashboard shows all
        # where a zoomed chart gets its points: the server (dashboard), the report's own
        # "points" (build_payload, when they fit) or nowhere (rollups only)
        "zoom": "rollups" if embed else "server",
        "line_points": per_line,  # the most buckets drawn per line on this page (see line_points)
    }
    # runs are read side by side: on a bucket each costs round trips, and decoding releases the GIL
    threads = _LOCAL_DRAW_THREADS if store.storage.is_local else _DRAW_THREADS
    with ThreadPoolExecutor(threads, thread_name_prefix="lt-draw") as pool:
        drawings = pool.map(lambda run: drawn(run, per_line), runs)
    for run, parts in zip(runs, drawings, strict=True):
        key = f"{run.project}/{run.id}"
        payload["runs"].append(_run_record(run, parts["damage"]))
        payload["series"][key] = parts["series"]
        if parts["histograms"]:
            payload["histograms"][key] = parts["histograms"]
        if parts["checkpoints"]:
            payload["checkpoints"][key] = parts["checkpoints"]
        if parts["media"]:
            payload["media"][key] = parts["media"]
        payload["files"].update(parts["files"])
        if on_run is not None:
            on_run(run)
    payload["keys"] = _keys(payload["runs"])
    if embed:  # one budget for the whole page: a sweep of many runs thins its media evenly
        fit_budget(payload["media"], payload["files"])
    return payload


def build_payload(
    store: Store,
    runs: Sequence[Run] | None = None,
    *,
    project: str | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    title: str | None = None,
    on_run: Callable[[Run], None] | None = None,
) -> dict[str, Any]:
    """Everything the report draws, as a JSON-ready structure of lists and arrays.

    Args:
        store: the store the runs come from.
        runs: the runs to include (default: every run of ``project``, or of the store).
        project: the project when ``runs`` is not given.
        max_points: the most points drawn per line (longer series are bucketed).
        title: the page title (default: the store's name, :func:`store_name`).
        on_run: called after each run is read (for progress bars).

    Example:
        >>> from lightning_tracker import TrackerLogger
        >>> logger = TrackerLogger("memory://doc-payload", name="p", version="r1")
        >>> logger.log_hyperparams({"lr": 0.1})
        >>> logger.log_metrics({"loss": 1.0}, step=0)
        >>> logger.finalize("success")
        >>> payload = build_payload(Store("memory://doc-payload"))
        >>> payload["runs"][0]["config"], payload["series"]["p/r1"]["loss"]["y"].tolist()
        ({'lr': 0.1}, [1.0])
    """
    if runs is None:
        runs = store.runs(project)
    payload = _payload(store, runs, project, title, on_run, lambda run, n: _drawn(run, n, embed=True), True, max_points)
    _embed_points(payload, runs)
    return payload


def payload_bytes(
    store: Store, *, project: str | None = None, max_points: int = DEFAULT_MAX_POINTS, title: str | None = None
) -> bytes:
    """``payload_json(build_payload(...))`` as UTF-8, for the live dashboard's refreshes.

    With a :class:`~lightning_tracker.read.cache.ReadCache` in ``store.cache``, what is
    drawn of a run is built again only when its inputs (live chunk names, checkpoint
    manifest, start time) changed, and then from the new chunks only; an unchanged run
    costs one listing and at most one small read. Only the run records (status, duration,
    summary) are made anew each time.

    Example:
        >>> import json
        >>> from lightning_tracker import TrackerLogger
        >>> from lightning_tracker.read.cache import ReadCache
        >>> def log(step, loss):  # a session of run r1 (the second one resumes it)
        ...     logger = TrackerLogger("memory://doc-bytes", name="p", version="r1", tensorboard=False)
        ...     logger.log_metrics({"loss": loss}, step=step)
        ...     logger.finalize("success")
        >>> log(0, 1.0)
        >>> store = Store("memory://doc-bytes", cache=ReadCache())
        >>> json.loads(payload_bytes(store))["series"]["p/r1"]["loss"]["y"]  # 5 significant digits: enough to draw
        [1]
        >>> log(1, 0.5)
        >>> json.loads(payload_bytes(store))["series"]["p/r1"]["loss"]["y"]
        [1, 0.5]
    """
    cache = store.cache
    if cache is None:
        payload = _payload(store, None, project, title, None, lambda run, n: _drawn(run, n, False), False, max_points)
        return payload_json(payload).encode("utf-8")
    shown: set[str] = set()

    def drawn(run: Run, points: int) -> dict[str, Any]:
        shown.add(run.path)

        def build() -> dict[str, Any]:
            # empty parts stay as they are: the payload leaves them out; damage joins the record
            return {
                name: _Json(payload_json(part)) if part and name != "damage" else part
                for name, part in _drawn(run, points, embed=False).items()
            }

        return cache.memo(("report", run.path, points), _inputs(run), build)

    payload = _payload(store, None, project, title, None, drawn, False, max_points)
    cache.forget(lambda key: not (isinstance(key, tuple) and key[0] == "report") or key[1] in shown)
    return payload_json(payload).encode("utf-8")


def _array(arr: np.ndarray, digits: int) -> str:
    if arr.dtype.kind in "iub":
        return "[" + ",".join(map(str, arr.tolist())) + "]"
    form = f"%.{digits}g"  # printf per value: about twice as fast as np.char.mod, same text
    text = ",".join([form % v for v in arr.astype(np.float64).tolist()])
    # JSON has no NaN or infinities: they become null (a gap in the line)
    text = text.replace("-inf", "null").replace("inf", "null").replace("nan", "null")
    return "[" + text + "]"


def payload_json(obj: Any, digits: int = 5) -> str:
    """Compact JSON of a payload; arrays with ``digits`` significant digits (enough to draw), NaN as null.

    Example:
        >>> payload_json({"y": np.array([1 / 3, np.nan]), "s": np.array([1, 2]), "n": float("inf")}, digits=3)
        '{"y":[0.333,null],"s":[1,2],"n":null}'
    """
    if isinstance(obj, _Json):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{payload_json(v, digits)}" for k, v in obj.items()) + "}"
    if isinstance(obj, np.ndarray):
        return _array(obj, digits)
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(payload_json(v, digits) for v in obj) + "]"
    if isinstance(obj, (float, np.floating)):
        return repr(float(obj)) if math.isfinite(obj) else "null"
    if isinstance(obj, (np.integer, np.bool_)):
        return json.dumps(obj.item())
    if isinstance(obj, pd.Timestamp):
        return json.dumps(obj.isoformat())
    try:
        return json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(str(obj))
