"""The read side: ``Store`` and ``Run`` return runs, configs and full metric histories.

Imports neither torch nor Lightning. Histories are never sampled: ``Run.metrics()``
returns every point, one value per metric and step (the last one written wins, so a
resumed run that logs a step again supersedes the earlier value).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.exceptions import RunNotFoundError
from lightning_tracker.run import (
    CONFIG_FILE,
    GIT_DIFF_FILE,
    META_FILE,
    METRICS_DIR,
    RUN_FILE,
    SUMMARY_FILE,
    live_chunks,
    loads,
    run_state,
)
from lightning_tracker.storage import Storage

__all__ = ["Run", "Store"]

_NONFINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _decode(value: Any) -> Any:
    return _NONFINITE.get(value, value) if isinstance(value, str) else value


class Store:
    """A folder or URL holding projects of runs.

    Args:
        url: the ``save_dir`` the runs were logged to (local folder or fsspec URL).
        storage_options: fsspec options (credentials, endpoint), kept in memory only.

    Example:
        >>> from lightning_tracker import TrackerLogger
        >>> for lr in (0.1, 0.01):
        ...     logger = TrackerLogger("memory://doc-store", name="sweep", run_name=f"lr={lr}")
        ...     logger.log_hyperparams({"lr": lr})
        ...     logger.log_metrics({"loss": lr * 2}, step=0)
        ...     logger.finalize("success")
        >>> table = Store("memory://doc-store").table("sweep")
        >>> sorted(table["config.lr"])
        [0.01, 0.1]
    """

    def __init__(self, url: str = "./runs", storage_options: dict[str, Any] | None = None) -> None:
        self.storage = Storage(url, storage_options)

    def __repr__(self) -> str:
        return f"Store({self.storage.url!r})"

    def projects(self) -> list[str]:
        """Names of the projects in the store."""
        return [p for p in self.storage.listdir() if not p.startswith(".")]

    def runs(
        self,
        project: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        group: str | None = None,
    ) -> list[Run]:
        """Runs of one project (or all), oldest first, optionally filtered.

        Args:
            project: a project name; None for every project.
            tags: keep runs that have all of these tags.
            status: keep runs in this status (``running``, ``finished``, ``failed``,
                ``crashed``) or any of these statuses.
            group: keep runs of this group.
        """
        projects = [project] if project is not None else self.projects()
        rels: list[str] = []
        for proj in projects:
            rels += [f"{proj}/{rid}/{RUN_FILE}" for rid in self.storage.listdir(proj) if not rid.startswith(".")]
        docs = self.storage.read_many(rels)
        runs = []
        for rel in rels:
            if rel not in docs:
                continue
            try:
                doc = loads(docs[rel])
            except ValueError:
                continue
            runs.append(Run(self.storage, rel.rsplit("/", 1)[0], doc))
        wanted_tags = set(tags or [])
        statuses = {status} if isinstance(status, str) else set(status or [])
        runs = [
            r for r in runs
            if wanted_tags <= set(r.tags)
            and (not statuses or r.status in statuses)
            and (group is None or r.group == group)
        ]  # fmt: skip
        return sorted(runs, key=lambda r: (r.start_time or 0.0, r.id))

    def run(self, run_id: str, project: str | None = None) -> Run:
        """One run by id (or by a unique id prefix or its exact name).

        Raises:
            RunNotFoundError: no run, or more than one, matches.
        """
        candidates = self.runs(project)
        exact = [r for r in candidates if r.id == run_id]
        matches = exact or [r for r in candidates if r.id.startswith(run_id) or r.name == run_id]
        if len(matches) == 1:
            return matches[0]
        where = f"project {project!r} of " if project else ""
        if not matches:
            raise RunNotFoundError(
                f"no run {run_id!r} in {where}{self.storage.url}; list runs with: lightning-tracker runs {self.storage.url}"
            )
        raise RunNotFoundError(
            f"{run_id!r} matches {len(matches)} runs in {where}{self.storage.url} "
            f"({', '.join(r.id for r in matches[:5])}); give more of the id"
        )

    def table(self, project: str | None = None, **filters: Any) -> pd.DataFrame:
        """One row per run: identity, status, times, every hyperparameter and metric summary.

        Columns: ``id, name, project, group, tags, status, start, duration_s``, then
        ``config.<dotted key>`` for each hyperparameter and, for each metric,
        ``summary.<metric>`` (last value), ``min.<metric>`` and ``max.<metric>``.
        """
        runs = self.runs(project, **filters)
        extra = self.storage.read_many(
            [f"{r.path}/{name}" for r in runs for name in (CONFIG_FILE, SUMMARY_FILE)]
        )
        rows = []
        for r in runs:
            r._prefetched = {name: extra.get(f"{r.path}/{name}") for name in (CONFIG_FILE, SUMMARY_FILE)}
            row: dict[str, Any] = {
                "id": r.id, "name": r.name, "project": r.project, "group": r.group,
                "tags": ",".join(r.tags), "status": r.status,
                "start": pd.Timestamp(r.start_time, unit="s", tz="UTC") if r.start_time else pd.NaT,
                "duration_s": r.duration,
            }  # fmt: skip
            for key, value in r.flat_config.items():
                row[f"config.{key}"] = value if not isinstance(value, (list, dict)) else repr(value)
            for key, stats in r.summary.items():
                row[f"summary.{key}"] = stats.get("last")
                row[f"min.{key}"] = stats.get("min")
                row[f"max.{key}"] = stats.get("max")
            rows.append(row)
        return pd.DataFrame(rows)


class Run:
    """One recorded run. Documents are read on first access and cached.

    Attributes:
        id: the run id (its folder name).
        project: the project (folder) it belongs to.
        doc: the raw ``run.json`` document.
    """

    def __init__(self, storage: Storage, path: str, doc: dict[str, Any]) -> None:
        self.storage = storage
        self.path = path
        self.doc = doc
        self.project, self.id = path.split("/", 1)
        self._prefetched: dict[str, bytes | None] = {}

    def __repr__(self) -> str:
        return f"Run({self.project}/{self.id}, name={self.name!r}, status={self.status!r})"

    def _doc(self, name: str) -> Any:
        data = self._prefetched.get(name)
        if data is None:
            try:
                data = self.storage.read_bytes(f"{self.path}/{name}")
            except FileNotFoundError:
                return None
        return loads(data)

    @property
    def name(self) -> str:
        """The readable name."""
        return self.doc.get("name") or self.id

    @property
    def group(self) -> str | None:
        """The group, if any."""
        return self.doc.get("group")

    @property
    def tags(self) -> list[str]:
        """The tags."""
        return list(self.doc.get("tags") or [])

    @property
    def notes(self) -> str | None:
        """The notes."""
        return self.doc.get("notes")

    @property
    def status(self) -> str:
        """``running``, ``finished``, ``failed`` or ``crashed`` (heartbeat stopped)."""
        return run_state(self.doc)

    @property
    def start_time(self) -> float | None:
        """Start, in Unix seconds."""
        return self.doc.get("start_time")

    @property
    def end_time(self) -> float | None:
        """End, in Unix seconds (None while running or after a crash)."""
        return self.doc.get("end_time")

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or to the last heartbeat."""
        start = self.start_time
        end = self.end_time or self.doc.get("heartbeat") or (time.time() if self.status == "running" else None)
        return None if start is None or end is None else float(end) - float(start)

    @property
    def url(self) -> str:
        """Where the run lives."""
        return self.storage.full_url(self.path)

    @cached_property
    def _config_doc(self) -> dict[str, Any]:
        return self._doc(CONFIG_FILE) or {"nested": {}, "flat": {}, "history": []}

    @property
    def config(self) -> dict[str, Any]:
        """Hyperparameters, nested as logged."""
        return self._config_doc.get("nested", {})

    @property
    def flat_config(self) -> dict[str, Any]:
        """Hyperparameters as ``{"dotted.key": value}``."""
        return self._config_doc.get("flat", {})

    @property
    def config_history(self) -> list[dict[str, Any]]:
        """Every change to a hyperparameter after it was first logged."""
        return self._config_doc.get("history", [])

    @cached_property
    def summary(self) -> dict[str, dict[str, Any]]:
        """Per metric: ``last``, ``last_step``, ``min``, ``min_step``, ``max``, ``max_step``, ``count``."""
        doc = self._doc(SUMMARY_FILE) or {}
        return {k: {f: _decode(v) for f, v in s.items()} for k, s in (doc.get("metrics") or {}).items()}

    @cached_property
    def meta(self) -> dict[str, Any]:
        """Host, user, command, versions, GPUs and git state of the first session."""
        return self._doc(META_FILE) or {}

    @property
    def git_diff(self) -> str:
        """Uncommitted changes when the run started ('' when clean or outside git)."""
        try:
            return self.storage.read_bytes(f"{self.path}/{GIT_DIFF_FILE}").decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _metrics_table(self) -> pa.Table:
        for _attempt in range(5):
            names = live_chunks(self.storage.listdir(f"{self.path}/{METRICS_DIR}"))
            try:
                tables = []
                for name in names:
                    with self.storage.open(f"{self.path}/{METRICS_DIR}/{name}") as f:
                        tables.append(pq.read_table(f))
            except FileNotFoundError:
                continue  # compacted between listing and reading: list again
            if not tables:
                return pa.table({"step": pa.array([], pa.int64()), "time": pa.array([], pa.float64()),
                                 "key": pa.array([], pa.string()), "value": pa.array([], pa.float64())})  # fmt: skip
            return pa.concat_tables(tables, promote_options="permissive")
        raise RunNotFoundError(f"the metrics of run {self.url} kept changing while being read; try again")

    def metrics(self, keys: Iterable[str] | None = None, *, wide: bool = True) -> pd.DataFrame:
        """The full history: every point, one value per metric and step.

        Args:
            keys: metric names to return (default: all).
            wide: one row per step with ``step``, ``time`` and a column per metric
                (``time`` is the latest wall time at that step); False gives the long
                form ``step, time, key, value``.
        """
        table = self._metrics_table()
        df = table.to_pandas()
        df["key"] = df["key"].astype(str)
        if keys is not None:
            df = df[df["key"].isin(list(keys))]
        df = df.drop_duplicates(["key", "step"], keep="last")
        if not wide:
            return df.sort_values(["key", "step"], kind="stable").reset_index(drop=True)
        values = df.pivot(index="step", columns="key", values="value")
        values.columns.name = None
        times = df.groupby("step")["time"].max()
        out = values.reset_index()
        out.insert(1, "time", times.reindex(out["step"]).to_numpy())
        return out
