"""One recorded run, read: its documents, full histories, histograms and checkpoints.

:class:`~lightning_tracker.read.store.Store` builds each :class:`Run` from its ``run.json``;
every other file is read when first asked for. Chunks are read through
:func:`~lightning_tracker.read.cache.read_chunks` (with the store's cache, if any) and
reduced to one value per (key, step) by :func:`~lightning_tracker.format.summary.keep_last`.
Imports neither torch nor Lightning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.codec import decode_number
from lightning_tracker.format.documents import new_config, run_state
from lightning_tracker.format.edits import Folded, check_name, check_tag, fold
from lightning_tracker.format.keys import family
from lightning_tracker.format.layout import (
    ALERTS_FILE,
    CONFIG_FILE,
    GIT_DIFF_FILE,
    HISTOGRAMS_DIR,
    MEDIA_DIR,
    META_FILE,
    METRICS_DIR,
    RUN_FILE,
)
from lightning_tracker.format.schemas import HISTOGRAMS, MEDIA, METRICS
from lightning_tracker.format.status import DAMAGED
from lightning_tracker.format.summary import active_seconds, keep_last
from lightning_tracker.format.validate import parse_document, parse_run
from lightning_tracker.read.cache import ReadCache, read_chunks
from lightning_tracker.read.checkpoints import CheckpointList, CheckpointRef, find_checkpoint, list_checkpoints
from lightning_tracker.read.edits import RunEdits, add_edit, run_edits
from lightning_tracker.read.rollups import read_rollup
from lightning_tracker.storage import Storage

__all__ = ["Run"]

log = logging.getLogger(__name__)


class Run:
    """One recorded run. Documents are read on first access and cached.

    Built by :class:`~lightning_tracker.read.store.Store`; ``run.json`` (identity, status, params,
    summary) is read by then, every other file when first asked for. Each document is
    checked against the format (:mod:`~lightning_tracker.format.validate`) as it is read:
    a field of the wrong type reads as empty, the problem is added to ``problems`` and
    the run's status becomes ``damaged``; everything else of the run reads normally.

    Attributes:
        id: the run id (its folder name).
        project: the project (folder) it belongs to.
        path: ``<project>/<id>``, relative to the store.
        doc: the ``run.json`` document, with any field of the wrong type emptied.
        problems: what was found damaged so far: ``run.json`` when listed, the other
            documents and chunks when read (``metrics(skip_damaged=True)``).
        cache: the store's :class:`~lightning_tracker.read.cache.ReadCache`, or None.

    Its name, tags, note and whether it is archived are ``run.json``'s with the run's
    edits folded over them (:func:`~lightning_tracker.format.edits.fold`): edits are made
    after (or while) the run runs with :meth:`add_tags`, :meth:`remove_tags`,
    :meth:`set_note`, :meth:`rename`, :meth:`archive` and :meth:`unarchive`, each one
    small immutable document that the run's own writer never touches.

    Example:
        >>> from lightning_tracker import Store
        >>> from lightning_tracker.storage import Storage
        >>> Storage("memory://doc-damaged").write_bytes("p/r1/run.json", b'{"format_version": 3, "status": 7}')
        >>> run = Store("memory://doc-damaged").run("r1")
        >>> run.status, run.damage
        ('damaged', "run.json: field 'status' is 7; expected 'running' or 'finished' or 'failed' or 'pruned'")
    """

    def __init__(
        self,
        storage: Storage,
        path: str,
        doc: Any,
        *,
        cache: ReadCache | None = None,
        problems: Iterable[str] = (),
        checked: bool = False,
        edits: RunEdits | None = None,
    ) -> None:
        self.storage = storage
        self.path = path
        self.problems: list[str] = list(problems)
        if checked:  # ``doc`` and ``problems`` as a Run read them before (the project index keeps both)
            self.doc: dict[str, Any] = doc
        elif self.problems:  # run.json could not be read at all (``problems`` say why): no fields to check
            self.doc = {}
        else:
            run = parse_run(doc)
            self.doc = run.doc
            self.problems += [f"{RUN_FILE}: {p}" for p in run.problems]
        self.cache = cache
        self.project, self.id = path.split("/", 1)
        self._edits = edits  # None: read when a field they change is first asked for
        if edits is not None:
            self.problems += edits.problems
        self._folded: Folded | None = None

    def __repr__(self) -> str:
        return f"Run({self.project}/{self.id}, name={self.name!r}, status={self.status!r})"

    def _note(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def _doc(self, name: str) -> dict[str, Any] | None:
        """A document of the run, checked: None when missing; its problems are noted (unreadable: empty)."""
        try:
            data = self.storage.read_bytes(f"{self.path}/{name}")
        except FileNotFoundError:
            return None
        parsed = parse_document(name, data)  # as the writer that resumes and sync read it
        for problem in parsed.problems:
            self._note(f"{name}: {problem}")
        return parsed.doc

    @property
    def damage(self) -> str | None:
        """What is damaged in the run (``problems`` joined), or None."""
        return "; ".join(self.problems) or None

    @property
    def edits(self) -> RunEdits:
        """The run's edits (``<project>/.edits/<id>/``), read on first use unless the store read them."""
        if self._edits is None:
            self._edits = run_edits(self.storage, self.project, self.id)
            for problem in self._edits.problems:
                self._note(problem)
        return self._edits

    @property
    def _fields(self) -> Folded:
        if self._folded is None:
            self._folded = fold(self.doc, self.edits.edits)
        return self._folded

    @property
    def name(self) -> str:
        """The readable name (the last :meth:`rename`, else the one it was logged with)."""
        return self._fields.name or self.id

    @property
    def group(self) -> str | None:
        """The group, if any."""
        return self.doc.get("group")

    @property
    def tags(self) -> list[str]:
        """The tags: those it was logged with and those added since, less those removed since."""
        return list(self._fields.tags)

    @property
    def note(self) -> str | None:
        """The note: the last :meth:`set_note`, else the ``notes`` it was logged with."""
        return self._fields.note

    @property
    def notes(self) -> str | None:
        """The note, as :attr:`note` (the name of the logger's argument, kept for existing code)."""
        return self.note

    @property
    def archived(self) -> bool:
        """Whether the run is archived: ``Store.runs`` leaves it out unless asked (``archived=True``/``None``)."""
        return self._fields.archived

    def _edit(self, **changes: Any) -> None:
        self.edits.edits.append(add_edit(self.storage, self.project, self.id, **changes))
        self._folded = None

    def add_tags(self, *tags: str) -> None:
        """Adds tags to the run (a tag it has already stays once), for every reader from now on.

        Safe beside the live run: the edit is its own document, which the run's writer never
        overwrites.

        Raises:
            InvalidArgumentError: a tag is not a tag (the message says what a tag may hold);
                nothing is written then.

        Example:
            >>> from lightning_tracker import Store, TrackerLogger
            >>> logger = TrackerLogger("memory://doc-edit", name="p", version="r1", tags=["baseline"])
            >>> logger.log_metrics({"loss": 1.0}, step=0)
            >>> logger.finalize("success")
            >>> run = Store("memory://doc-edit").run("r1")
            >>> run.add_tags("best")
            >>> run.remove_tags("baseline")
            >>> run.set_note("lowest loss so far")
            >>> run.rename("r1-best")
            >>> again = Store("memory://doc-edit").run("r1")
            >>> again.tags, again.note, again.name
            (['best'], 'lowest loss so far', 'r1-best')
        """
        self._edit(add_tags=[check_tag(t) for t in tags])

    def remove_tags(self, *tags: str) -> None:
        """Removes tags from the run (a tag it does not have is no error). Raises as :meth:`add_tags`."""
        self._edit(remove_tags=[check_tag(t) for t in tags])

    def set_note(self, text: str | None) -> None:
        """Sets the run's note (``""`` or None clears it); up to 64 KiB of text, newlines allowed.

        Raises:
            InvalidArgumentError: ``text`` is not text, is too long or holds control characters.
        """
        self._edit(note=text)

    def rename(self, name: str) -> None:
        """Gives the run a new readable name (its id, and so its folder, stay).

        Raises:
            InvalidArgumentError: ``name`` is empty, longer than 128 characters or not one line;
                or it is the id of another run of the project (``rm NAME`` would be ambiguous).
        """
        name = check_name(name)
        if name != self.id and name in self.storage.folders(self.project):
            raise InvalidArgumentError(
                f"name={name!r} is the id of run {name} of project {self.project}; a run named after another run's "
                "id makes commands that take either ambiguous; pick another name"
            )
        self._edit(name=name)

    def archive(self) -> None:
        """Archives the run: ``Store.runs``, the CLI, the report and the dashboard leave it out unless asked."""
        self._edit(archived=True)

    def unarchive(self) -> None:
        """Undoes :meth:`archive`."""
        self._edit(archived=False)

    @property
    def monitor(self) -> dict[str, Any] | None:
        """The metric the run's first ``ModelCheckpoint`` monitors, ``{"name": ..., "mode": "min"|"max"}``, or None."""
        monitor = self.doc.get("monitor")
        return dict(monitor) if isinstance(monitor, dict) and isinstance(monitor.get("name"), str) else None

    @property
    def status(self) -> str:
        """``running``, ``finished``, ``failed``, ``crashed`` (heartbeat stopped) or ``damaged`` (see ``damage``)."""
        return DAMAGED if self.problems else run_state(self.doc)

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
        """Seconds the run's sessions ran, to the end or the last heartbeat (``format.summary.active_seconds``)."""
        return active_seconds(self.doc, time.time() if self.status == "running" else None)

    @property
    def url(self) -> str:
        """Where the run lives."""
        return self.storage.full_url(self.path)

    @cached_property
    def _config_doc(self) -> dict[str, Any]:
        return self._doc(CONFIG_FILE) or new_config()

    @property
    def config(self) -> dict[str, Any]:
        """Hyperparameters, nested as logged."""
        return self._config_doc.get("nested", {})

    @property
    def flat_config(self) -> dict[str, Any]:
        """Hyperparameters as ``{"dotted.key": value}`` (from ``run.json``: no other read)."""
        return dict(self.doc.get("params") or {})

    @property
    def config_history(self) -> list[dict[str, Any]]:
        """Every change to a hyperparameter after it was first logged."""
        return self._config_doc.get("history", [])

    @cached_property
    def summary(self) -> dict[str, dict[str, Any]]:
        """Per metric: ``count``, ``last``, ``last_step``, ``last_time``, ``min``, ``min_step``,
        ``max``, ``max_step``, ``high_step`` (the fields of
        :data:`~lightning_tracker.format.summary.SUMMARY_FIELDS`; older runs may lack some)."""
        metrics = self.doc.get("summary") or {}
        return {k: {f: decode_number(v) for f, v in s.items()} for k, s in metrics.items()}

    @cached_property
    def meta(self) -> dict[str, Any]:
        """Host, user, command, versions, GPUs and git state of the first session."""
        return self._doc(META_FILE) or {}

    @cached_property
    def alerts(self) -> list[dict[str, Any]]:
        """The run's alerts, oldest first: ``time``, ``level``, ``title``, ``text``, ``event``, ``step``.

        What ``logger.alert`` sent and the automatic ones (``fit`` raised, the watched metric
        became NaN or ±inf, the run ended); empty when there were none.
        """
        alerts = (self._doc(ALERTS_FILE) or {}).get("alerts") or []
        return [a for a in alerts if isinstance(a, dict)]

    @property
    def git_diff(self) -> str:
        """Uncommitted changes when the run started ('' when clean or outside git)."""
        try:
            return self.storage.read_bytes(f"{self.path}/{GIT_DIFF_FILE}").decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _chunks(self, folder: str, schema: pa.Schema, what: str, skip_damaged: bool) -> pa.Table:
        def skip(problem: str) -> None:
            log.warning("%s; it is left out", problem)
            self._note(problem)

        on_damaged = skip if skip_damaged else None
        return read_chunks(self.storage, f"{self.path}/{folder}", schema, self.cache, what=what, on_damaged=on_damaged)

    def metrics(
        self, keys: Iterable[str] | None = None, *, wide: bool = True, skip_damaged: bool = False
    ) -> pd.DataFrame:
        """The full history: every point, one value per metric and step.

        Args:
            keys: metric names to return (default: all).
            wide: one row per step with ``step``, ``time`` and a column per metric
                (``time`` is the latest wall time at that step); False gives the long
                form ``step, time, key, value``.
            skip_damaged: leave out a chunk that cannot be read (truncated, not Parquet)
                with a warning, and name it in ``problems``, instead of raising.

        Raises:
            StorageError: a chunk is damaged (the message names it) and ``skip_damaged``
                is False: a history with a hole is never returned silently.
            StoreChangedError: the chunks kept changing while being read; read again.
        """
        return self._history(None if keys is None else set(keys).__contains__, wide, skip_damaged)

    def rollups(
        self, keys: Iterable[str] | None = None, *, max_buckets: int = 1024, skip_damaged: bool = False
    ) -> pd.DataFrame:
        """A summary of each metric in step buckets, for charts: read from the stored rollups and the live tail.

        One row per metric and bucket (``key, width, first_step, last_step, count, finite,
        min, max, mean, last, time``; see :mod:`lightning_tracker.format.rollups`), at most
        ``max_buckets`` per metric, ordered by key and step. A run without stored rollups
        reads the same from its points.

        Example:
            >>> from lightning_tracker import Store, TrackerLogger
            >>> logger = TrackerLogger("memory://doc-rollups", name="p", tensorboard=False)
            >>> for step in range(100):
            ...     logger.log_metrics({"loss": 50.0 if step == 37 else 1.0}, step=step)
            >>> logger.finalize("success")
            >>> row = Store("memory://doc-rollups").run(logger.version).rollups(["loss"], max_buckets=4).iloc[1]
            >>> [row[c].item() for c in ("first_step", "last_step", "max", "count")]
            [32, 63, 50.0, 32]
        """

        def skip(problem: str) -> None:
            log.warning("%s; it is left out", problem)
            self._note(problem)

        table = read_rollup(
            self.storage,
            self.path,
            self.cache,
            keys=keys,
            max_buckets=max_buckets,
            on_damaged=skip if skip_damaged else None,
        )
        return table.set_column(0, "key", table.column("key").cast(pa.string())).to_pandas()

    def system(self, *, wide: bool = True, skip_damaged: bool = False) -> pd.DataFrame:
        """The system metrics (``system/*``, also under a logger ``prefix``), full history like :meth:`metrics`.

        Example:
            >>> from lightning_tracker import Store, TrackerLogger
            >>> logger = TrackerLogger("memory://doc-system", name="p", version="r1")
            >>> logger.log_metrics({"loss": 1.0, "system/cpu_percent": 40.0}, step=0)
            >>> logger.finalize("success")
            >>> list(Store("memory://doc-system").run("r1").system().columns)
            ['step', 'time', 'system/cpu_percent']
        """
        return self._history(lambda key: family(key) == "system", wide, skip_damaged)

    def gradients(self, *, wide: bool = True, skip_damaged: bool = False) -> pd.DataFrame:
        """The norms ``GradientMonitor`` records (``gradients/*`` and ``parameters/*``, also under a
        logger ``prefix``), full history like :meth:`metrics`; the histograms are :meth:`histograms`.

        Example:
            >>> from lightning_tracker import Store, TrackerLogger
            >>> logger = TrackerLogger("memory://doc-gradients", name="p", version="r1", prefix="fit")
            >>> logger.log_metrics({"loss": 1.0, "gradients/norm_total": 2.0}, step=0)
            >>> logger.finalize("success")
            >>> list(Store("memory://doc-gradients").run("r1").gradients().columns)
            ['step', 'time', 'fit-gradients/norm_total']
        """
        return self._history(lambda key: family(key) in ("gradients", "parameters"), wide, skip_damaged)

    def _history(self, select: Callable[[str], bool] | None, wide: bool, skip_damaged: bool) -> pd.DataFrame:
        table = self._chunks(METRICS_DIR, METRICS, "metrics", skip_damaged)
        # decide per distinct key, not per point: a history may hold millions of points
        names, codes = _codes(table.column("key"), select)
        steps, times, values = (table.column(c).to_numpy() for c in ("step", "time", "value"))
        keep = keep_last([codes], steps) & (codes >= 0)
        if not keep.all():  # copies only when some rows go
            steps, codes, times, values = steps[keep], codes[keep], times[keep], values[keep]
        if not wide:
            order = np.lexsort((steps, codes))  # codes follow the sorted names
            key = pd.Series(np.asarray(names, dtype=object)[codes[order]], dtype=str)
            return pd.DataFrame({"step": steps[order], "time": times[order], "key": key, "value": values[order]})
        if not len(steps):
            return pd.DataFrame({"step": pd.Series([], dtype="int64"), "time": pd.Series([], dtype="float64")})
        # one cell per (step, key), now unique: a grid assignment is much faster than pivot
        used = np.flatnonzero(np.bincount(codes, minlength=len(names)))
        column = np.full(len(names), -1)
        column[used] = np.arange(len(used))
        uniq, row = _distinct(steps)
        grid = np.full((len(uniq), len(used)), np.nan)
        grid[row, column[codes]] = values
        latest = np.full(len(uniq), np.nan)  # the latest wall time at each step, NaN ignored
        np.fmax.at(latest, row, times)
        out = pd.DataFrame(grid, columns=[names[i] for i in used])
        out.insert(0, "step", uniq)
        out.insert(1, "time", latest)
        return out

    @property
    def checkpoints(self) -> CheckpointList:
        """The stored checkpoints (``log_model``), oldest first; ``.to_frame()`` gives a table.

        Example:
            >>> from lightning_tracker import Store, TrackerLogger
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
            CheckpointNotFoundError: no checkpoint has that alias or name.
        """
        return find_checkpoint(self.storage, self.path, key)

    def media(self, key: str | None = None, *, skip_damaged: bool = False) -> pd.DataFrame:
        """Images, texts and tables logged with ``log_image``, ``log_text`` and ``log_table``.

        One row per object, sorted by key, step and index, with the columns ``step, key,
        index, kind, caption, width, height`` (width and height are pixels, or columns and
        rows of a text or table), then ``time, object, sha256, thumbnail``.

        Example:
            >>> import numpy as np
            >>> from lightning_tracker import Store, TrackerLogger
            >>> logger = TrackerLogger("memory://doc-media", name="p", version="r1")
            >>> logger.log_image("samples", [np.zeros((4, 6, 3), np.uint8)], step=2, caption=["zeros"])
            >>> logger.finalize("success")
            >>> run = Store("memory://doc-media").run("r1")
            >>> run.media()[["step", "key", "index", "kind", "caption", "width", "height"]].values.tolist()
            [[2, 'samples', 0, 'image', 'zeros', 6, 4]]
            >>> run.read_media("samples", step=2).size
            (6, 4)
        """
        from lightning_tracker.read.media import media_index

        return media_index(self._chunks(MEDIA_DIR, MEDIA, "media", skip_damaged), key)

    def read_media(self, key: str, step: int, index: int = 0) -> Any:
        """One logged object: a ``PIL.Image`` for an image, a DataFrame for a text or a table.

        Raises:
            MediaNotFoundError: nothing was logged for ``key`` at ``step`` and ``index``
                (the message lists the keys, or the key's steps).
            ObjectMissingError: the object is missing from the store.
            StorageError: the object does not match its sha256.
        """
        from lightning_tracker.read.media import pick, read_object

        row = pick(self.media(), key, step, index, f"run {self.id}")
        return read_object(self.storage, self.path, row)

    def histograms(self, name: str | None = None, *, skip_damaged: bool = False) -> pd.DataFrame:
        """Histograms recorded by ``GradientMonitor``: one row per step, tensor and kind.

        Args:
            name: a tensor name (``"encoder.0.weight"``) or an fnmatch pattern
                (``"encoder.*"``); None for every tensor.
            skip_damaged: as in :meth:`metrics`.

        Returns:
            Columns ``step, time, tensor, kind`` (``"gradient"`` or ``"parameter"``),
            ``numel``, ``edges`` (``bins + 1`` floats, this step's own range) and
            ``counts`` (``bins`` ints; NaN and ±inf are not in them), ``norm`` (L2), ``min``
            and ``max`` (finite), ``sum`` (finite), ``zeros``, ``nan``, ``posinf``,
            ``neginf`` and ``update_ratio`` (weights: norm of the optimizer's update over
            the norm of the weights before it; NaN for gradients). Sorted by tensor, kind
            and step; a step recorded twice keeps the last.

        Example:
            >>> from lightning_tracker import Store, TrackerLogger
            >>> logger = TrackerLogger("memory://doc-hist", name="p", version="r1")
            >>> logger.log_metrics({"loss": 1.0}, step=0)
            >>> logger.finalize("success")
            >>> Store("memory://doc-hist").run("r1").histograms().empty
            True
        """
        import fnmatch

        table = self._chunks(HISTOGRAMS_DIR, HISTOGRAMS, "histograms", skip_damaged)
        tensors, tensor = _codes(table.column("tensor"))
        kinds, kind = _codes(table.column("kind"))
        steps = table.column("step").to_numpy()
        keep = keep_last([tensor, kind], steps)
        if name is not None:
            keep &= np.array([fnmatch.fnmatchcase(t, name) for t in tensors], dtype=bool)[tensor]
        rows = np.flatnonzero(keep)
        rows = rows[np.lexsort((steps[rows], kind[rows], tensor[rows]))]  # codes follow the sorted names
        df = table.take(rows).to_pandas()
        df["tensor"] = pd.Series(np.asarray(tensors, dtype=object)[tensor[rows]], dtype=str)
        df["kind"] = pd.Series(np.asarray(kinds, dtype=object)[kind[rows]], dtype=str)
        return df


def _distinct(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(steps, return_inverse=True)``, without a sort when the steps are dense."""
    low, high = int(steps.min()), int(steps.max())
    if high - low > 4 * len(steps):
        return np.unique(steps, return_inverse=True)
    present = np.zeros(high - low + 1, dtype=bool)
    present[steps - low] = True
    return np.flatnonzero(present) + low, (np.cumsum(present) - 1)[steps - low]


def _codes(column: pa.ChunkedArray, select: Callable[[str], bool] | None = None) -> tuple[list[str], np.ndarray]:
    """The sorted distinct names of a dictionary column, and each row's index into them.

    With ``select``, only the names it accepts; the rows of the others get -1. Decided per
    distinct name: a chunk's dictionary holds each name once, however many rows use it.
    """
    chunks = [c for c in column.chunks if len(c)]
    found = {str(n) for c in chunks for n in c.dictionary.to_pylist()}
    names = sorted(n for n in found if select is None or select(n))
    position = {n: i for i, n in enumerate(names)}
    parts = [
        np.array([position.get(str(n), -1) for n in c.dictionary.to_pylist()], dtype=np.int64)[
            c.indices.to_numpy(zero_copy_only=False)
        ]
        for c in chunks
    ]
    return names, np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
