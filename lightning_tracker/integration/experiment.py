"""``LiveRun``: the run a ``TrackerLogger`` is writing, as ``logger.experiment`` returns it."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning_tracker.writers.run_writer import RunWriter

__all__ = ["LiveRun"]


class LiveRun:
    """The run a :class:`~lightning_tracker.TrackerLogger` is writing, on rank 0 (``logger.experiment``).

    What ``WandbLogger.experiment`` users reach for: the run's id, name and place, and
    direct logging that bypasses the logger's ``prefix``. The ``log_*`` calls only touch
    memory; the logger's background writer stores what they record.
    Other ranks get Lightning's dummy experiment instead, whose calls do nothing. Read a
    finished run, or another one, with :class:`~lightning_tracker.Store`.

    Example:
        >>> from lightning_tracker import TrackerLogger
        >>> logger = TrackerLogger("memory://doc-live-run", name="demo", version="r1", run_name="first")
        >>> run = logger.experiment
        >>> run.id, run.name, run.project, run.url
        ('r1', 'first', 'demo', 'memory://doc-live-run/demo/r1')
        >>> run.log_metrics({"loss": 0.5}, step=0)
        >>> run.log_hyperparams({"lr": 0.1})
        >>> run.set_info(tags=["baseline"], notes="the first try")
        >>> run.flush()
        >>> run.summary["loss"]["last"]
        0.5
        >>> logger.finalize("success")
    """

    def __init__(self, writer: RunWriter, run_id: str, project: str) -> None:
        self._writer = writer
        self._id = run_id
        self._project = project

    def __repr__(self) -> str:
        return f"LiveRun(id={self._id!r}, name={self.name!r}, url={self.url!r})"

    @property
    def id(self) -> str:
        """The run id: the logger's ``version``, the run's folder name."""
        return self._id

    @property
    def name(self) -> str:
        """The readable name shown in tables (a resumed run's stored name, unless a new one was given)."""
        return self._writer.name

    @property
    def project(self) -> str:
        """The project: the logger's ``name``, the folder that groups related runs."""
        return self._project

    @property
    def url(self) -> str:
        """Where the run is stored (``s3://bucket/exp/<project>/<id>`` or a local path), without credentials."""
        return self._writer.url

    @property
    def local_dir(self) -> str:
        """The local folder written first: the run's folder for a local store, else its spool folder."""
        return self._writer.local_dir

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Records one value per metric at ``step`` (the next step when None), without the logger's ``prefix``."""
        self._writer.log_metrics(metrics, step)

    def log_hyperparams(self, params: Mapping[str, Any] | Namespace | Any) -> None:
        """Merges hyperparameters into the run's config (nested structure kept, changes recorded)."""
        self._writer.log_config(params)

    def set_info(self, **fields: Any) -> None:
        """Sets fields of ``run.json``: ``tags`` (a list of strings), ``notes``, ``group``, or fields of your own.

        Example:
            >>> from lightning_tracker import Store, TrackerLogger
            >>> logger = TrackerLogger("memory://doc-set-info", name="demo")
            >>> logger.experiment.set_info(tags=["baseline", "small"], notes="lr sweep")
            >>> logger.finalize("success")
            >>> run = Store("memory://doc-set-info").run(logger.version)
            >>> run.tags, run.notes
            (['baseline', 'small'], 'lr sweep')
        """
        self._writer.set_info(**fields)

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        """Per metric: ``count``, ``last``, ``min``, ``max``, ... as the last flush wrote them (a copy,
        same fields as :attr:`Run.summary <lightning_tracker.Run.summary>`; waits for a flush in progress)."""
        return self._writer.summary()

    def flush(self) -> None:
        """Writes everything buffered so far to the local folder; returns when it is on disk."""
        self._writer.flush()
