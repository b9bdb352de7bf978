"""The read side: ``Store`` finds and filters runs; each is a :class:`Run` (configs, full histories).

Imports neither torch nor Lightning. ``Run`` lives in :mod:`lightning_tracker.read.run`
and is exported here. Histories are never sampled: ``Run.metrics()`` returns every point,
one value per metric and step (the last one written wins, so a resumed run that logs a
step again supersedes the earlier value).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import pandas as pd
import pyarrow as pa

from lightning_tracker.exceptions import (
    AmbiguousRunError,
    InvalidArgumentError,
    ProjectNotFoundError,
    RunNotFoundError,
    StorageError,
    TrackerError,
)
from lightning_tracker.format import query
from lightning_tracker.format.layout import RUN_FILE
from lightning_tracker.format.status import STATUSES
from lightning_tracker.read.cache import ReadCache
from lightning_tracker.read.edits import RunEdits, project_edits
from lightning_tracker.read.groups import group_table
from lightning_tracker.read.index import ProjectIndex
from lightning_tracker.read.run import Run
from lightning_tracker.read.table import concat, select, table_row
from lightning_tracker.read.table import frame as cells_frame
from lightning_tracker.storage import Storage
from lightning_tracker.storage.failures import as_tracker_error, recognised

__all__ = ["MAX_RUN_FILE_BYTES", "Run", "Store", "TableScope"]

_READ_BATCH = 250  # run documents read concurrently per round (a progress report after each)
MAX_RUN_FILE_BYTES = 64 << 20  # a larger run.json is not read: the run reads as damaged

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _said_in_one_line(method: Callable[Concatenate[Store, _P], _R]) -> Callable[Concatenate[Store, _P], _R]:
    """A store's own failure (no credentials, no bucket, denied, unreachable) leaves a public
    method of :class:`Store` as the one line the command line prints, not a backend's
    traceback: one of our error types, with the backend's error kept as its context."""

    @functools.wraps(method)
    def said(self: Store, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except TrackerError:
            raise
        except Exception as exc:
            if not recognised(exc):
                raise
            storage = self.storage
            raise as_tracker_error(exc, storage.url, storage.protocol) from None

    return said


class Store:
    """A folder or URL holding projects of runs.

    Args:
        url: the ``save_dir`` the runs were logged to (local folder or fsspec URL).
        storage_options: fsspec options (credentials, endpoint), kept in memory only.
        cache: keeps the parsed chunks of the runs read, so that reading a history again
            reads only the chunks written since (the live dashboard holds one).
        index: read runs through each project's index (:mod:`~lightning_tracker.read.index`):
            a few requests whatever the number of runs, plus one per run changed since.
            False reads every ``run.json`` (a check of the index, or debugging).

    Attributes:
        storage: the :class:`~lightning_tracker.storage.Storage` of ``url``.
        cache: the :class:`~lightning_tracker.read.cache.ReadCache` given, or None.

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

    def __init__(
        self,
        url: str = "./runs",
        storage_options: dict[str, Any] | None = None,
        *,
        cache: ReadCache | None = None,
        index: bool = True,
    ) -> None:
        self.storage = Storage(url, storage_options)
        self.cache = cache
        self._index = index
        self._indexes: dict[str, ProjectIndex] = {}  # per project: the compacted index read last

    def __repr__(self) -> str:
        return f"Store({self.storage.url!r})"

    @_said_in_one_line
    def projects(self) -> list[str]:
        """Names of the projects in the store: its folders that hold something (a stray file is no project)."""
        return [p for p in self.storage.folders() if not p.startswith(".")]

    @_said_in_one_line
    def run_ids(self, project: str) -> list[str]:
        """The ids of the runs of ``project``: its folders that hold something (one listing; no file is read).

        A folder whose ``run.json`` is not written yet is counted; an empty folder or a
        stray file is not.
        """
        return [r for r in self.storage.folders(project) if not r.startswith(".")]

    @_said_in_one_line
    def runs(
        self,
        project: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        group: str | None = None,
        where: str | Sequence[str] | Callable[[Run], bool] | Mapping[str, Any] | None = None,
        archived: bool | None = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Run]:
        """Runs of one project (or all), oldest first, optionally filtered.

        A run whose ``run.json`` is not a valid document (not JSON, the wrong shape, a
        field of the wrong type) is listed with status ``damaged`` and the reason in
        :attr:`Run.damage`; the other runs read normally.

        Args:
            project: a project name; None for every project.
            tags: keep runs that have all of these tags.
            status: keep runs in this status or any of these statuses (one of
                :data:`~lightning_tracker.format.status.STATUSES`: ``running``,
                ``finished``, ``failed``, ``crashed``, ``damaged``).
            group: keep runs of this group.
            where: a query of :mod:`~lightning_tracker.format.query`, the grammar of the
                CLI's ``--where`` and the report's filter box: a string of terms
                (``"lr<0.01 val/acc>=0.9"``) or a list of one term each, all of which must
                hold; or a predicate of a ``Run``; or a mapping ``{key: expected}`` where
                ``expected`` is a value to equal or a predicate of the value. A key names a
                hyperparameter (``"lr"``, ``"config.model.width"``), a metric's last value
                (``"val/acc"``, ``"summary.val/acc"``) or a field (``"status"``, ``"tags"``);
                a bare key names a field, else a hyperparameter, else a metric
                (:mod:`~lightning_tracker.format.keys`, as ``--sort`` and ``--columns`` do),
                decided over the runs queried (those of ``project``, ``tags``, ``status``
                and ``group``): when one of them has the hyperparameter ``lr``, ``"lr"`` is
                the hyperparameter of every run (a run without it does not match) and the
                metric is ``"summary.lr"``.
            progress: called as ``progress(done, total)`` while the runs are read (a
                progress bar for big or remote stores).

        Raises:
            InvalidArgumentError: ``where`` is not a query, callable or mapping; a term is
                malformed; a term names a key that none of the runs has (a typo); or
                ``status`` names no status.

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
            >>> [r.name for r in store.runs("p", where="lr<0.05 loss>=0.01")]
            ['lr=0.01']
            >>> store.runs("p", where=["lrr<0.05"])  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            lightning_tracker.exceptions.InvalidArgumentError: where term 'lrr<0.05' names 'lrr', ... did you mean 'lr'?
        """
        match = _where_predicate(where)
        statuses = _statuses(status)
        projects = [project] if project is not None else self.projects()
        runs: list[Run] = []
        for proj in projects:
            runs += self._project_runs(proj, progress)
        wanted_tags = set(tags or [])
        runs = [
            r
            for r in runs
            if wanted_tags <= set(r.tags)
            and (not statuses or r.status in statuses)
            and (group is None or r.group == group)
            and (archived is None or r.archived == archived)
        ]
        if match is not None:
            runs = match(runs)
        return sorted(runs, key=lambda r: (r.start_time or 0.0, r.id))

    def _project_runs(self, project: str, progress: Callable[[int, int], None] | None) -> list[Run]:
        """The runs of one project: through its index, or (``index=False``) from every run folder."""
        if not self._index:
            return list(self._load_runs(project, None, progress).values())
        return self._project_index(project, progress).runs()

    def _project_index(self, project: str, progress: Callable[[int, int], None] | None) -> ProjectIndex:
        """The index of ``project``, kept between reads (the compacted file read last is not read again)."""
        load = functools.partial(self._load_runs, project, progress=progress)
        if project not in self._indexes:
            self._indexes[project] = ProjectIndex(self.storage, project, load, self.cache)
        self._indexes[project].load = load
        return self._indexes[project]

    @_said_in_one_line
    def reindex(self, project: str, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuilds ``project``'s index from its run folders (runs copied in by hand, an index
        written before); returns the number of runs indexed."""
        load = functools.partial(self._load_runs, project, progress=progress)
        index = self._indexes[project] = ProjectIndex(self.storage, project, load, self.cache)
        return len(index.runs(rebuild=True))

    def _load_runs(
        self, project: str, run_ids: list[str] | None, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, Run]:
        """Runs of ``project`` read from their folders: ``run_ids`` (None: every run folder), as
        ``{id: Run}``; a folder without ``run.json`` is no run (yet) and is left out."""
        rels = [f"{project}/{rid}/{RUN_FILE}" for rid in (self.run_ids(project) if run_ids is None else run_ids)]
        docs: dict[str, bytes | str] = {}
        for start in range(0, len(rels), _READ_BATCH):
            docs.update(self._read_run_files(rels[start : start + _READ_BATCH]))
            if progress is not None:
                progress(min(start + _READ_BATCH, len(rels)), len(rels))
        # the edits after the run (tags, note, name, archive, a deletion mark): one listing of
        # the project's edits, then the documents of the runs read
        edits = project_edits(self.storage, project, run_ids)
        runs = {}
        for rel in rels:
            if rel not in docs:
                continue  # a folder without run.json is not a run (yet)
            path = rel.rsplit("/", 1)[0]
            found = edits.get(path.rsplit("/", 1)[1], RunEdits())
            if found.deleted:  # a run being deleted reads as deleted, never as half a run
                continue
            data, problems = docs[rel], []
            if isinstance(data, str):  # unreadable: listed as damaged, not hidden
                problems = [f"{RUN_FILE}: {data}"]
            elif len(data) > MAX_RUN_FILE_BYTES:
                problems = [f"{RUN_FILE}: larger than {MAX_RUN_FILE_BYTES} bytes; it is not read"]
            run = Run(self.storage, path, data, cache=self.cache, problems=problems, edits=found)
            runs[run.id] = run
        return runs

    def _read_run_files(self, rels: list[str]) -> dict[str, bytes | str]:
        """The ``run.json`` files ``rels`` (missing ones left out), bounded; why, for one that cannot be read.

        Read together, and one by one when that fails, so that one unreadable file (a
        folder, a link out of the store, a FIFO, another user's private run) is that run's
        damage, not the store's failure. Any other error (the store is down) is raised.
        """
        try:
            return dict(self.storage.read_many(rels, max_bytes=MAX_RUN_FILE_BYTES + 1))
        except (PermissionError, IsADirectoryError, StorageError):
            pass
        out: dict[str, bytes | str] = {}
        for rel in rels:
            try:
                out[rel] = self.storage.read_head(rel, MAX_RUN_FILE_BYTES + 1)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except PermissionError:
                out[rel] = "cannot be read: permission denied"
            except IsADirectoryError:
                out[rel] = "is a folder, not a file"
            except StorageError as err:
                out[rel] = f"cannot be read: {err}"
        return out

    @_said_in_one_line
    def run(self, run_id: str, project: str | None = None) -> Run:
        """One run by id (or by a unique id prefix or its exact name).

        Raises:
            InvalidArgumentError: ``run_id`` is empty or only spaces.
            RunNotFoundError: no run matches.
            ProjectNotFoundError: ``project`` is not in the store.
            AmbiguousRunError: more than one run matches; the message names them.
        """
        if not isinstance(run_id, str) or not run_id.strip():  # a prefix "" would match every run
            raise InvalidArgumentError(
                f"run_id={run_id!r}: the run id is empty (an unset shell variable?); give a run id, id prefix or "
                f"name (lightning-tracker runs -s {self.storage.url} lists them)"
            )
        candidates = self.runs(project, archived=None)
        exact = [r for r in candidates if r.id == run_id]
        matches = exact or [r for r in candidates if r.id.startswith(run_id) or r.name == run_id]
        if len(matches) == 1:
            return matches[0]
        where = f"project {project!r} of " if project else ""
        if not matches and project is not None and project not in self.projects():
            names = ", ".join(self.projects()) or "none"
            raise ProjectNotFoundError(f"no project {project!r} in {self.storage.url}; its projects: {names}")
        if not matches:
            raise RunNotFoundError(
                f"no run {run_id!r} in {where}{self.storage.url}; "
                f"list runs with: lightning-tracker runs -s {self.storage.url}"
            )
        raise AmbiguousRunError(
            f"{run_id!r} matches {len(matches)} runs in {where}{self.storage.url} "
            f"({', '.join(r.id for r in matches[:5])}); give more of the id"
        )

    @_said_in_one_line
    def table(
        self,
        project: str | None = None,
        *,
        group_by: str | Sequence[str] | None = None,
        best: str | None = None,
        **filters: Any,
    ) -> pd.DataFrame:
        """One row per run: identity, status, times, every hyperparameter and metric summary.

        With ``group_by`` (keys, as ``--sort`` names them: ``"group"``, ``"lr,optimizer"``),
        one row per group instead: the runs count, the mean and standard deviation of each
        metric's final value and the best run's id (judged by ``best``, else the runs'
        monitored metric), as :func:`~lightning_tracker.read.groups.group_table` builds it.

        Columns: ``id, name, project, group, tags, status, start, duration_s``,
        ``damage`` (why a run's status is ``damaged``, else None), ``monitor`` (the metric
        the run's ``ModelCheckpoint`` monitors, else None), then
        ``config.<dotted key>`` for each hyperparameter and, for each metric,
        ``summary.<metric>`` (last value), ``min.<metric>`` and ``max.<metric>``.
        Reads the project's index (two requests when nothing changed) and the ``run.json``
        of each run changed since or live; without ``where``, the rows are the index's own
        columns, whatever the number of runs (:mod:`~lightning_tracker.read.index`). The column a bare key names is
        ``keys.column(key, params, metrics)`` (:mod:`~lightning_tracker.format.keys`:
        a field, else the hyperparameter, else the metric), and ``keys.labels`` heads
        the columns distinctly, as the CLI and the page do. ``params`` and ``metrics``
        are the names of every run queried, a ``where`` filter aside, so that a bare key
        names what it names in ``where``: ``table.attrs["scope"]`` holds them
        (``{"params": [...], "metrics": [...]}``).

        Example:
            >>> from lightning_tracker import TrackerLogger
            >>> from lightning_tracker.format import keys
            >>> logger = TrackerLogger("memory://doc-table", name="p", version="r1")
            >>> logger.log_hyperparams({"lr": 0.1})
            >>> logger.log_metrics({"lr": 0.09}, step=0)
            >>> logger.finalize("success")
            >>> table = Store("memory://doc-table").table("p")
            >>> [keys.column(key, ["lr"], ["lr"]) for key in ("lr", "summary.lr")]
            ['config.lr', 'summary.lr']
            >>> table["config.lr"].tolist(), table["summary.lr"].tolist(), keys.labels(["lr"], ["lr"])
            ([0.1], [0.09], {'config.lr': 'lr', 'summary.lr': 'summary.lr'})
            >>> table.attrs["scope"]
            {'params': ['lr'], 'metrics': ['lr']}
        """
        if best is not None and group_by is None:
            raise InvalidArgumentError(
                f"best={best!r} judges the runs of a group: pass group_by too, or leave best out"
            )
        match = _where_predicate(filters.pop("where", None))  # a malformed query raises before any read
        fast = group_by is None and set(filters) <= {"tags", "status", "group", "archived", "progress"}
        if self._index and match is None and fast:
            return self._indexed_table(project, **filters)
        runs = self.runs(project, **filters)
        params, metrics = query.scope(map(_query_record, runs))  # the runs queried decide, as in where
        if match is not None:
            runs = match(runs)
        frame = pd.DataFrame([table_row(r) for r in runs])
        frame.attrs["scope"] = TableScope(params=list(params), metrics=list(metrics))
        if group_by is not None:  # one row per group: the same function the CLI's --group-by uses
            return group_table(frame, group_by, best=best, monitors=[r.monitor for r in runs])
        return frame

    def _indexed_table(
        self,
        project: str | None,
        tags: Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        group: str | None = None,
        archived: bool | None = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> pd.DataFrame:
        """:meth:`table` without ``where``, from the index's cells: columns copied, no document decoded."""
        statuses = _statuses(status)
        wanted = set(tags or [])
        table = None
        for proj in [project] if project is not None else self.projects():
            found = self._project_index(proj, progress).read()
            tags_of = found.tags() if wanted else {}
            shelved = found.archived() if archived is not None else set()

            def kept(rid: str, of: dict[str, list[str]] = tags_of, shelved: set[str] = shelved) -> bool:
                return wanted <= set(of.get(rid, ())) and (archived is None or (rid in shelved) == archived)

            keep = kept if wanted or archived or shelved else None  # None: every row, no per-row call

            part = select(found.cells, statuses, group, keep) if found.cells.num_rows else found.cells
            table = part if table is None else concat(table, (), part)
        frame = cells_frame(table if table is not None else pa.table({}))
        params = [c.removeprefix("config.") for c in frame.columns if c.startswith("config.")]
        metrics = [c.removeprefix("summary.") for c in frame.columns if c.startswith("summary.")]
        frame.attrs["scope"] = TableScope(params=params, metrics=metrics)
        return frame

    @_said_in_one_line
    def sql(self, sql: str, project: str | None = None) -> pd.DataFrame:
        """The result of a DuckDB query over the views ``runs`` (:meth:`table`) and ``metrics`` (every point).

        See :mod:`~lightning_tracker.read.sql`; needs the ``duckdb`` extra.

        Example:
            >>> from lightning_tracker import TrackerLogger
            >>> logger = TrackerLogger("memory://doc-sql", name="p", version="r1")
            >>> logger.log_metrics({"loss": 2.0}, step=0)
            >>> logger.log_metrics({"loss": 1.0}, step=1)
            >>> logger.finalize("success")
            >>> best = Store("memory://doc-sql").sql("select run, min(value) as best from metrics group by run")
            >>> best.values.tolist()
            [['r1', 1.0]]
        """
        from lightning_tracker.read.sql import run_sql

        return run_sql(self, sql, project)


class TableScope(dict[str, list[str]]):
    """:meth:`Store.table`'s ``attrs["scope"]``: ``{"params": [...], "metrics": [...]}``, to be read, not changed.

    pandas deep-copies a frame's ``attrs`` into every frame derived from it (each column
    taken, each cast): a copy of the scope is the scope itself, so taking one of ``n``
    columns costs the same whatever ``n`` is (a plain dict made a runs table of ``n``
    hyperparameters cost ``n²``).

    Example:
        >>> import copy
        >>> scope = TableScope(params=["lr"], metrics=["loss"])
        >>> copy.deepcopy(scope) is scope, scope == {"params": ["lr"], "metrics": ["loss"]}
        (True, True)
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> TableScope:
        return self


def _statuses(status: str | Iterable[str] | None) -> set[str]:
    """The statuses a filter asks for (none: every status).

    Raises:
        InvalidArgumentError: one of them is no status.
    """
    statuses = {status} if isinstance(status, str) else set(status or [])
    unknown = sorted(statuses - set(STATUSES))
    if unknown:
        raise InvalidArgumentError(f"status={unknown[0]!r} is not a run status; use one of: {', '.join(STATUSES)}")
    return statuses


def _query_record(run: Run) -> dict[str, Any]:
    """A run as :mod:`~lightning_tracker.format.query` reads it (the report builds the same)."""
    return {
        "id": run.id,
        "name": run.name,
        "project": run.project,
        "group": run.group,
        "status": run.status,
        "tags": run.tags,
        "notes": run.notes,
        "params": run.flat_config,
        "summary": {k: s.get("last") for k, s in run.summary.items()},
        "min": {k: s.get("min") for k, s in run.summary.items()},
        "max": {k: s.get("max") for k, s in run.summary.items()},
    }


def _where_predicate(where: Any) -> Callable[[list[Run]], list[Run]] | None:
    """``where`` as a filter of a list of runs; a malformed query raises here, before any read."""
    if where is None:
        return None
    if callable(where):
        return lambda runs: [r for r in runs if where(r)]
    if isinstance(where, Mapping):

        def match(record: dict[str, Any], among: query.Scope) -> bool:
            for key, expected in where.items():
                value = query.resolve(record, key, among)
                if value is query.MISSING or not (expected(value) if callable(expected) else value == expected):
                    return False
            return True

        def pick(runs: list[Run]) -> list[Run]:
            records = [_query_record(r) for r in runs]
            among = query.scope(records)  # the runs queried decide what a bare key names
            return [r for r, rec in zip(runs, records, strict=True) if match(rec, among)]

        return pick
    if not isinstance(where, (str, Sequence)):
        raise InvalidArgumentError(
            f"where={where!r} is neither a query, a predicate nor a mapping; pass terms "
            "(where='lr<0.01 val/acc>=0.9'), a function of a Run "
            "(where=lambda run: run.config['lr'] < 0.1) or {key: value} (where={'lr': 0.1})"
        )
    parsed = query.parse(where)

    def keep(runs: list[Run]) -> list[Run]:
        records = [_query_record(r) for r in runs]
        if records:  # a key no run has is a typo, not an empty result
            query.check_keys(parsed, query.known_keys(records))
        return [r for r, keep in zip(runs, parsed.select(records), strict=True) if keep]

    return keep
