"""The read side: ``Store`` and ``Run`` return runs, configs and full metric histories.

Imports neither torch nor Lightning. Histories are never sampled: ``Run.metrics()``
returns every point, one value per metric and step (the last one written wins, so a
resumed run that logs a step again supersedes the earlier value).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.checkpoint_refs import CheckpointList, CheckpointRef, find_checkpoint, list_checkpoints
from lightning_tracker.exceptions import InvalidArgumentError, RunNotFoundError
from lightning_tracker.run import (
    CONFIG_FILE,
    GIT_DIFF_FILE,
    HISTOGRAMS_DIR,
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


_READ_BATCH = 250  # run documents read concurrently per round (a progress report after each)


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
        where: Callable[[Run], bool] | Mapping[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Run]:
        """Runs of one project (or all), oldest first, optionally filtered.

        Args:
            project: a project name; None for every project.
            tags: keep runs that have all of these tags.
            status: keep runs in this status (``running``, ``finished``, ``failed``,
                ``crashed``) or any of these statuses.
            group: keep runs of this group.
            where: keep runs for which this predicate of a ``Run`` is true, or that match
                every ``{key: expected}`` of a mapping. A key names a hyperparameter
                (``"lr"``, ``"model.width"``) or, as ``"summary.<metric>"``, the last value
                of a metric; ``expected`` is a value to equal or a predicate of the value.
            progress: called as ``progress(done, total)`` while the runs are read (a
                progress bar for big or remote stores).

        Raises:
            InvalidArgumentError: ``where`` is neither callable nor a mapping.

        Example:
            >>> from lightning_tracker import TrackerLogger
            >>> for lr in (0.1, 0.01, 0.001):
            ...     logger = TrackerLogger("memory://doc-where", name="p", run_name=f"lr={lr}")
            ...     logger.log_hyperparams({"lr": lr, "width": 8})
            ...     logger.log_metrics({"loss": lr}, step=0)
            ...     logger.finalize("success")
            >>> store = Store("memory://doc-where")
            >>> [r.name for r in store.runs("p", where={"lr": lambda v: v < 0.05})]
            ['lr=0.01', 'lr=0.001']
            >>> [r.name for r in store.runs("p", where={"summary.loss": 0.1, "width": 8})]
            ['lr=0.1']
        """
        match = _where_predicate(where)
        projects = [project] if project is not None else self.projects()
        rels: list[str] = []
        for proj in projects:
            rels += [f"{proj}/{rid}/{RUN_FILE}" for rid in self.storage.listdir(proj) if not rid.startswith(".")]
        docs: dict[str, bytes] = {}
        for start in range(0, len(rels), _READ_BATCH):
            docs.update(self.storage.read_many(rels[start : start + _READ_BATCH]))
            if progress is not None:
                progress(min(start + _READ_BATCH, len(rels)), len(rels))
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
        if match is not None:
            _prefetch(self.storage, runs)
            runs = [r for r in runs if match(r)]
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
        runs = _prefetch(self.storage, self.runs(project, **filters))
        rows = []
        for r in runs:
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


def _prefetch(storage: Storage, runs: list[Run]) -> list[Run]:
    """Reads the config and summary of many format-1 runs at once (concurrently on object stores).

    Format 2 keeps both in ``run.json``, so a runs table needs no other file.
    """
    todo = [r for r in runs if not r._prefetched and not r._self_contained]
    extra = storage.read_many([f"{r.path}/{name}" for r in todo for name in (CONFIG_FILE, SUMMARY_FILE)])
    for r in todo:
        r._prefetched = {name: extra.get(f"{r.path}/{name}") for name in (CONFIG_FILE, SUMMARY_FILE)}
    return runs


def _where_predicate(where: Callable[[Run], bool] | Mapping[str, Any] | None) -> Callable[[Run], bool] | None:
    if where is None or callable(where):
        return where
    if not isinstance(where, Mapping):
        raise InvalidArgumentError(
            f"where={where!r} is neither a predicate nor a mapping; pass a function of a Run "
            "(where=lambda run: run.config['lr'] < 0.1) or {key: value} (where={'lr': 0.1})"
        )
    missing = object()

    def value_of(run: Run, key: str) -> Any:
        if key.startswith("summary."):
            return run.summary.get(key[len("summary."):], {}).get("last", missing)
        return run.flat_config.get(key[len("config."):] if key.startswith("config.") else key, missing)

    def match(run: Run) -> bool:
        for key, expected in where.items():
            value = value_of(run, key)
            if value is missing or not (expected(value) if callable(expected) else value == expected):
                return False
        return True

    return match


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
        # format 2: run.json holds the flat hyperparameters and the summary
        self._self_contained = "params" in doc and "summary" in doc

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
        if self._self_contained:
            return self.doc["params"] or {}
        return self._config_doc.get("flat", {})

    @property
    def config_history(self) -> list[dict[str, Any]]:
        """Every change to a hyperparameter after it was first logged."""
        return self._config_doc.get("history", [])

    @cached_property
    def summary(self) -> dict[str, dict[str, Any]]:
        """Per metric: ``last``, ``last_step``, ``min``, ``min_step``, ``max``, ``max_step``, ``count``."""
        if self._self_contained:
            metrics = self.doc["summary"] or {}
        else:
            metrics = (self._doc(SUMMARY_FILE) or {}).get("metrics") or {}
        return {k: {f: _decode(v) for f, v in s.items()} for k, s in metrics.items()}

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
        return self._history(None if keys is None else set(keys).__contains__, wide)

    def system(self, *, wide: bool = True) -> pd.DataFrame:
        """The system metrics (keys starting with ``system/``), full history like :meth:`metrics`.

        Example:
            >>> from lightning_tracker import TrackerLogger
            >>> logger = TrackerLogger("memory://doc-system", name="p", version="r1")
            >>> logger.log_metrics({"loss": 1.0, "system/cpu_percent": 40.0}, step=0)
            >>> logger.finalize("success")
            >>> list(Store("memory://doc-system").run("r1").system().columns)
            ['step', 'time', 'system/cpu_percent']
        """
        return self._history(lambda key: key.startswith("system/"), wide)

    def _history(self, select: Callable[[str], bool] | None, wide: bool) -> pd.DataFrame:
        df = self._metrics_table().to_pandas()
        # decide per distinct key, not per point: a history may hold millions of points
        # (categories sorted by name, so sorting by key sorts by name)
        keys = df["key"].astype(str if df.empty else "category")
        if not df.empty:
            wanted = sorted(str(k) for k in keys.cat.categories if select is None or select(str(k)))
            keys = keys.cat.set_categories(wanted)
            kept = keys.notna().to_numpy()
            df = df[kept].assign(key=keys[kept].cat.remove_unused_categories())
        df = df.drop_duplicates(["key", "step"], keep="last")
        if not wide:
            df = df.sort_values(["key", "step"], kind="stable").reset_index(drop=True)
            return df.assign(key=df["key"].astype(str))
        if df.empty:
            return pd.DataFrame({"step": pd.Series([], dtype="int64"), "time": pd.Series([], dtype="float64")})
        # one cell per (step, key), now unique: a grid assignment is much faster than pivot
        steps, row = np.unique(df["step"].to_numpy(), return_inverse=True)
        names = [str(c) for c in df["key"].cat.categories]
        grid = np.full((len(steps), len(names)), np.nan)
        grid[row, df["key"].cat.codes.to_numpy()] = df["value"].to_numpy()
        out = pd.DataFrame(grid, columns=names)
        out.insert(0, "step", steps)
        out.insert(1, "time", pd.Series(df["time"].to_numpy()).groupby(row).max().to_numpy())
        return out

    @property
    def checkpoints(self) -> CheckpointList:
        """The stored checkpoints (``log_model``), oldest first; ``.to_frame()`` gives a table.

        Example:
            >>> from lightning_tracker import TrackerLogger
            >>> logger = TrackerLogger("memory://doc-ckpts", name="p", version="r1", log_model=True)
            >>> logger.log_metrics({"loss": 1.0}, step=0)
            >>> logger.finalize("success")
            >>> Store("memory://doc-ckpts").run("r1").checkpoints
            []
        """
        return list_checkpoints(self.storage, self.path)

    def checkpoint(self, key: str = "latest") -> CheckpointRef:
        """One stored checkpoint, by alias (``"best"``, ``"latest"``, a user alias) or name.

        ``run.checkpoint("best").download("best.ckpt")`` verifies the sha256 before the
        file appears, so ``Trainer.fit(ckpt_path="best.ckpt")`` never loads a bad object.

        Raises:
            RunNotFoundError: no checkpoint has that alias or name.
        """
        return find_checkpoint(self.storage, self.path, key)

    def histograms(self, name: str | None = None) -> pd.DataFrame:
        """Histograms recorded by ``GradientMonitor``: one row per step, tensor and kind.

        Args:
            name: a tensor name (``"encoder.0.weight"``) or an fnmatch pattern
                (``"encoder.*"``); None for every tensor.

        Returns:
            Columns ``step, time, tensor, kind`` (``"gradient"`` or ``"parameter"``),
            ``numel``, ``edges`` (``bins + 1`` floats, this step's own range) and
            ``counts`` (``bins`` ints; NaN and ±inf are not in them), ``norm`` (L2), ``min``
            and ``max`` (finite), ``sum`` (finite), ``zeros``, ``nan``, ``posinf``,
            ``neginf`` and ``update_ratio`` (weights: norm of the optimizer's update over
            the norm of the weights before it; NaN for gradients). Sorted by tensor, kind
            and step; a step recorded twice keeps the last.

        Example:
            >>> from lightning_tracker import TrackerLogger
            >>> logger = TrackerLogger("memory://doc-hist", name="p", version="r1")
            >>> logger.log_metrics({"loss": 1.0}, step=0)
            >>> logger.finalize("success")
            >>> Store("memory://doc-hist").run("r1").histograms().empty
            True
        """
        import fnmatch

        from lightning_tracker.writers.histograms import SCHEMA

        folder = f"{self.path}/{HISTOGRAMS_DIR}"
        for _attempt in range(5):
            try:
                tables = []
                for chunk in live_chunks(self.storage.listdir(folder)):
                    with self.storage.open(f"{folder}/{chunk}") as f:
                        tables.append(pq.read_table(f).cast(SCHEMA))
                break
            except FileNotFoundError:
                continue  # compacted between listing and reading: list again
        else:
            raise RunNotFoundError(f"the histograms of run {self.url} kept changing while being read; try again")
        table = pa.concat_tables(tables).unify_dictionaries() if tables else SCHEMA.empty_table()
        df = table.to_pandas()
        df["tensor"], df["kind"] = df["tensor"].astype(str), df["kind"].astype(str)
        if name is not None:
            df = df[[fnmatch.fnmatchcase(t, name) for t in df["tensor"]]] if len(df) else df
        df = df.drop_duplicates(["tensor", "kind", "step"], keep="last")
        return df.sort_values(["tensor", "kind", "step"], kind="stable").reset_index(drop=True)
