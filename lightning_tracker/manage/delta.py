"""A project's runs and points as Delta Lake tables, for engines beyond one machine.

:func:`export_delta` writes two tables under one URL (a local folder or ``s3://``,
``gs://``, ``az://``: whatever delta-rs opens), with ``deltalake`` (delta-rs: no JVM, no
server):

- ``<url>/points``: every point, ``project, run, key, step, time, value``
  (:data:`~lightning_tracker.read.sql.POINTS`, names as text), exactly the ``metrics``
  view of :meth:`Store.sql <lightning_tracker.read.store.Store.sql>`: live chunks only,
  the last value per step. Partitioned by ``project`` and ``run``, so a query of one
  project or run reads only its files.
- ``<url>/runs``: one row per run (:data:`RUNS`): identity, status, times,
  hyperparameters and summary as JSON text, and what was exported of it
  (``points``, ``fingerprint``, ``exported_at``). It is also the export's state.

A run's ``fingerprint`` is the sha256 of its summary (``run.json``): any point logged
changes it (the time of the metric's last value at least), so an export compares
fingerprints with the runs table and reads the chunks of changed runs only. A run
exported before and changed since (resumed, synced) is replaced, never doubled: its rows
are deleted and its points written in one commit (``write_deltalake(mode="overwrite",
predicate=...)``). Points are committed before the runs table, so an export cut short
is finished by the next one, without a double.

On S3, delta-rs 1.x commits with conditional writes (``If-None-Match``, which AWS S3,
MinIO and R2 honour): two writers never overwrite each other's commit and no lock
service (DynamoDB) is needed. No unsafe option (``AWS_S3_ALLOW_UNSAFE_RENAME``) is set.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError, StorageError
from lightning_tracker.format.codec import dumps
from lightning_tracker.read.run import Run
from lightning_tracker.read.sql import points_of_runs
from lightning_tracker.read.store import Store

__all__ = ["DELTA_EXTRA", "POINTS_TABLE", "RUNS", "RUNS_TABLE", "Exported", "export_delta"]

DELTA_EXTRA = "pip install 'lightning-tracker[delta]'"
POINTS_TABLE = "points"  # under the export URL
RUNS_TABLE = "runs"
_POINTS = pa.schema(
    [
        ("project", pa.string()),
        ("run", pa.string()),
        ("key", pa.string()),
        ("step", pa.int64()),
        ("time", pa.float64()),
        ("value", pa.float64()),
    ]
)
RUNS = pa.schema(
    [
        ("project", pa.string()),
        ("id", pa.string()),
        ("name", pa.string()),
        ("group", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("status", pa.string()),
        ("start_time", pa.float64()),  # Unix seconds
        ("end_time", pa.float64()),
        ("duration_s", pa.float64()),
        ("params", pa.string()),  # JSON: {"dotted.key": value}
        ("summary", pa.string()),  # JSON: {metric: {"last", "min", "max", ...}}
        ("points", pa.int64()),  # points exported
        ("fingerprint", pa.string()),  # sha256 of the summary the points were exported at
        ("exported_at", pa.float64()),  # Unix seconds
    ]
)
"""The columns of the runs table."""
_BATCH_POINTS = 20_000_000  # points held before a commit (about 0.7 GB)
_BATCH_RUNS = 32  # runs read together (in parallel) between checks of the batch's size


@dataclass(frozen=True)
class Exported:
    """What one :func:`export_delta` did."""

    runs: int  # runs whose points were written (new or replaced)
    replaced: int  # of which were exported before
    points: int  # points written
    unchanged: int  # runs skipped: exported before and unchanged since
    seconds: float


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError:
        raise MissingDependencyError(f"export delta needs deltalake, which is not installed; {DELTA_EXTRA}") from None
    return deltalake


def fingerprint(run: Run) -> str:
    """The sha256 of a run's summary: changes with every point the run logs."""
    return hashlib.sha256(dumps(run.doc.get("summary") or {})).hexdigest()


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _predicate(project: str, column: str, runs: list[str]) -> str:
    return f"project = {_quoted(project)} AND {column} IN ({', '.join(map(_quoted, runs))})"


def _table(deltalake: Any, uri: str, options: dict[str, str] | None) -> Any:
    """The Delta table at ``uri``, or None where there is none yet."""
    try:
        return deltalake.DeltaTable(uri, storage_options=options)
    except deltalake.exceptions.TableNotFoundError:
        return None


def _exported(runs: Any, project: str) -> dict[str, str]:
    """``{run id: fingerprint}`` of the runs of ``project`` in the runs table."""
    if runs is None:
        return {}
    rows = runs.to_pyarrow_table(columns=["id", "fingerprint"], filters=[("project", "=", project)])
    return dict(zip(rows.column("id").to_pylist(), rows.column("fingerprint").to_pylist(), strict=True))


def _row(run: Run, points: int, now: float) -> dict[str, Any]:
    return {
        "project": run.project,
        "id": run.id,
        "name": run.name,
        "group": run.group,
        "tags": run.tags,
        "status": run.status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "duration_s": run.duration,
        "params": json.dumps(run.flat_config, default=str, allow_nan=True),
        "summary": json.dumps(run.summary, default=str, allow_nan=True),
        "points": points,
        "fingerprint": fingerprint(run),
        "exported_at": now,
    }


def export_delta(
    store: Store,
    project: str,
    url: str,
    *,
    storage_options: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Exported:
    """Adds the points of the runs of ``project`` not exported yet (or changed since) to Delta tables at ``url``.

    Args:
        store: the store to read.
        project: the project to export.
        url: where the tables go: ``<url>/points`` and ``<url>/runs`` (a folder, or a URL
            delta-rs opens: ``s3://``, ``gs://``, ``az://``).
        storage_options: delta-rs options for ``url`` (``AWS_ENDPOINT_URL``,
            ``AWS_ACCESS_KEY_ID``...); None: delta-rs reads the environment (``AWS_*``).
        progress: called as ``progress(done, total)`` with runs exported.

    Returns:
        What was written (:class:`Exported`).

    Raises:
        InvalidArgumentError: ``project`` is not in the store, or ``url`` is empty.
        MissingDependencyError: deltalake is not installed.
        StorageError: a chunk is damaged, or the output could not be written.

    Example:
        >>> import tempfile
        >>> from lightning_tracker import TrackerLogger
        >>> logger = TrackerLogger("memory://doc-delta", name="p", version="r1")
        >>> logger.log_metrics({"loss": 1.0}, step=0)
        >>> logger.finalize("success")
        >>> store, out = Store("memory://doc-delta"), tempfile.mkdtemp()
        >>> export_delta(store, "p", out).points, export_delta(store, "p", out).points
        (1, 0)
    """
    deltalake = _deltalake()
    started = time.monotonic()
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgumentError(f"url={url!r} is not where to export; pass a folder or a URL, e.g. -o ./delta")
    if project not in store.projects():
        names = ", ".join(store.projects()) or "none"
        raise InvalidArgumentError(f"project={project!r} is not in {store.storage.url}; its projects: {names}")
    url = url.rstrip("/")
    points_uri, runs_uri = f"{url}/{POINTS_TABLE}", f"{url}/{RUNS_TABLE}"
    try:
        runs_table = _table(deltalake, runs_uri, storage_options)
        done = _exported(runs_table, project)
    except deltalake.exceptions.DeltaError as err:
        raise StorageError(f"cannot read the Delta table {runs_uri}: {err}") from None
    runs = store.runs(project)
    todo = [r for r in runs if done.get(r.id) != fingerprint(r)]
    total = points = replaced = 0
    pending: list[tuple[Run, pa.Table]] = []

    def commit() -> None:
        nonlocal total, points, replaced
        if not pending:
            return
        ids = [run.id for run, _ in pending]
        data = pa.concat_tables([t for _, t in pending]).cast(_POINTS)
        now = time.time()
        rows = pa.Table.from_pylist([_row(run, t.num_rows, now) for run, t in pending], schema=RUNS)
        try:  # the points first: a runs table never names points that are not there
            _write(deltalake, points_uri, data, ["project", "run"], _predicate(project, "run", ids), storage_options)
            _write(deltalake, runs_uri, rows, ["project"], _predicate(project, "id", ids), storage_options)
        except deltalake.exceptions.DeltaError as err:
            raise StorageError(f"cannot write the Delta tables at {url}: {err}") from None
        total, points = total + len(ids), points + data.num_rows
        replaced += sum(1 for i in ids if i in done)
        pending.clear()
        if progress is not None:
            progress(total, len(todo))

    for start in range(0, len(todo), _BATCH_RUNS):
        batch = todo[start : start + _BATCH_RUNS]
        tables = points_of_runs(store, [(project, run.id) for run in batch])
        pending.extend(zip(batch, tables, strict=True))
        if sum(t.num_rows for _, t in pending) >= _BATCH_POINTS:
            commit()
    commit()
    return Exported(total, replaced, points, len(runs) - len(todo), time.monotonic() - started)


def _write(
    deltalake: Any, uri: str, data: pa.Table, partitions: list[str], predicate: str, options: dict[str, str] | None
) -> None:
    """Replaces the rows ``predicate`` selects with ``data`` in one commit (creates the table the first time)."""
    if _table(deltalake, uri, options) is None:
        deltalake.write_deltalake(uri, data, partition_by=partitions, mode="append", storage_options=options)
    else:
        deltalake.write_deltalake(
            uri, data, partition_by=partitions, mode="overwrite", predicate=predicate, storage_options=options
        )
