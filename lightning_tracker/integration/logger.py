"""``TrackerLogger``: the Lightning logger that records every run into storage you own."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import os
import sys
from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.layout import new_run_name, validate_path_name
from lightning_tracker.format.status import FAILED, FINISHED, PRUNED
from lightning_tracker.integration._compat import Logger, override, rank, rank_zero_experiment, rank_zero_only
from lightning_tracker.integration.config_capture import cli_config, hydra_launch, redact_saved_cli_config
from lightning_tracker.integration.experiment import LiveRun
from lightning_tracker.integration.media import SNAPSHOTS
from lightning_tracker.integration.optuna import TrialLink, pruned_by_optuna
from lightning_tracker.integration.run_ids import resolve_version, shared_run_id
from lightning_tracker.storage import Storage
from lightning_tracker.writers.alerts import AlertRoute, check_level
from lightning_tracker.writers.checkpoints import CheckpointProducer
from lightning_tracker.writers.histograms import Capture
from lightning_tracker.writers.resume import resume_mode
from lightning_tracker.writers.run_writer import RunWriter, Sampler
from lightning_tracker.writers.spool import spool_dir_for

__all__ = ["TrackerLogger"]

log = logging.getLogger(__name__)

# other loggers' arguments -> what to pass instead (the README's migration table says the same)
_OTHER_LOGGERS = {
    "project": "WandbLogger's project= is name= here (the project folder); W&B's name= (the run's name) is run_name=",
    "id": "WandbLogger's id= is version= here (the run id; resume with resume='must')",
    "dir": "WandbLogger's dir= is save_dir= here (a folder or a URL such as s3://bucket/runs)",
    "entity": "there are no W&B entities: a team shares a store, so pass the team's folder or bucket as save_dir=",
    "config": "log the config with logger.log_hyperparams(config) (self.save_hyperparameters() logs a model's)",
    "mode": "WandbLogger's mode='offline' is offline=True here (upload later with lightning-tracker sync)",
    "anonymous": "runs are private to the store they are written to; leave it out",
    "log_graph": "no graph is stored; leave it out",
    "default_hp_metric": "not needed: hyperparameters are stored without a placeholder metric; leave it out",
    "sub_dir": "runs are <save_dir>/<name>/<version>/; put the sub-folder in name= or save_dir=",
    "flush_logs_every_n_steps": "CSVLogger's flush_logs_every_n_steps is flush_interval= here, in seconds",
    "max_queue": "TensorBoardLogger's max_queue is not needed: points are kept in memory until flush_interval=",
    "flush_secs": "TensorBoardLogger's flush_secs is flush_interval= here",
    "checkpoint_name": "checkpoints keep the names ModelCheckpoint gives them; leave it out",
}  # fmt: skip


def _refuse_unknown(arguments: Mapping[str, Any], known: Sequence[str]) -> None:
    """Raises for the first argument ``TrackerLogger`` does not take, naming what to pass instead."""
    for argument in arguments:
        hint = _OTHER_LOGGERS.get(argument)
        if hint is None:
            close = difflib.get_close_matches(argument, known, n=1)
            hint = f"did you mean {close[0]}=?" if close else f"its arguments are {', '.join(known)}"
        raise InvalidArgumentError(f"TrackerLogger has no argument {argument}=; {hint}")


class TrackerLogger(Logger):
    """Records a run's hyperparameters, metrics, metadata and TensorBoard events.

    Files go to ``<save_dir>/<name>/<version>/`` (see ``docs/format.md``). For a remote
    ``save_dir`` they are written to a local spool folder first and uploaded by a
    background thread, so training never waits on the network.

    What launched the run is recorded without a call: a ``LightningCLI``'s whole parsed
    configuration and a Hydra job's composed config become hyperparameters (the logger's
    own ``storage_options`` and webhook redacted), a Hydra multirun's jobs share a group,
    and an Optuna ``trial`` names its study, number and parameters.

    Args:
        save_dir: a local folder (default ``"./runs"``) or any fsspec URL such as
            ``"s3://bucket/experiments"`` or ``"memory://exp"``.
        name: the project: the folder that groups related runs.
        version: the run id. A new unique id is generated when None; pass an existing
            id to resume that run, or what ``lightning-tracker runs`` shows: a unique id
            prefix or a run name is that run (``logger.version`` is then its full id). A new
            id that is a prefix of an existing one is refused.
        resume: what a given ``version`` must name, checked when the run opens (at fit start,
            before any step): ``"allow"`` resumes the run or starts one with that id (warning
            once that it is new), ``"must"`` raises ``RunNotFoundError`` when the run does not
            exist, ``"never"`` raises ``RunExistsError`` when it does. For a remote store both
            wait for its answer; a store that cannot answer raises ``StorageError``.
        run_name: a readable name for tables; a random one (``"swift-otter-42"``) when None.
        group: groups runs, for example the members of a sweep (default: an Optuna ``trial``'s
            study, a Hydra multirun's sweep folder).
        tags: labels to filter runs by.
        notes: free text shown with the run.
        prefix: prepended to every metric name, joined with ``"-"``.
        flush_interval: seconds between background writes (points are kept in memory in
            between; everything is written at ``finalize``).
        tensorboard: also write TensorBoard event files into the run folder.
        storage_options: fsspec options for a remote ``save_dir`` (credentials,
            endpoint); kept in memory only, never written.
        offline: keep the run in the local spool; upload it later with
            ``lightning-tracker sync``.
        spool_dir: local folder for remote runs' spool (default
            ``$LIGHTNING_TRACKER_SPOOL`` or ``~/.cache/lightning_tracker/spool``).
        keep_spool: keep the run's spool folder after its upload is complete (default
            ``$LIGHTNING_TRACKER_KEEP_SPOOL``, off: it is removed when the logger is done).
        finalize_timeout: the longest ``finalize`` waits for uploads, in seconds.
        log_model: upload the checkpoints ``ModelCheckpoint`` saves, in the background:
            ``True`` keeps the stored set equal to what ``ModelCheckpoint`` keeps (a
            checkpoint deleted locally is deleted remotely), ``"all"`` keeps every
            checkpoint ever saved, ``False`` (default) uploads none. Read them back with
            ``Run.checkpoints`` and ``Run.checkpoint("best" | "latest" | name)``.
        trial: the Optuna trial this run is (the ``optuna`` extra): the study's name is the
            run's ``group`` (unless ``group`` is given), the trial's number and parameters are
            hyperparameters, the trial's user attribute ``lightning_tracker_run`` names the
            run, and a trial Optuna prunes inside ``fit`` ends with status ``pruned``.
        alerts: the webhook alerts are posted to (Slack-compatible JSON, from a background
            thread); None takes ``$LIGHTNING_TRACKER_ALERTS`` (unset: alerts are recorded in the
            run only). A secret: kept in memory, never written.
        alert_on: the automatic alerts: ``"failed"`` (``fit`` raised), ``"nan"`` (the watched
            metric became NaN or ±inf), ``"end"`` (the run ended, whatever its status).
        alert_metric: the metric watched for NaN or ±inf (default: the one ``ModelCheckpoint``
            or ``EarlyStopping`` monitors).
        unknown: none is taken; an argument of ``WandbLogger``, ``TensorBoardLogger`` or
            ``CSVLogger`` (``project=``, ``id=``, ``dir=``) fails naming the one to pass here.

    Raises:
        InvalidArgumentError: an argument has a value that cannot be used.
        AmbiguousRunError: ``version`` is a prefix or the name of several runs.
        RunExistsError: ``resume="never"`` and ``version`` is a prefix of an existing run id.
        MissingDependencyError: ``save_dir``'s protocol needs a package that is missing.

    Example:
        >>> logger = TrackerLogger("memory://doc-logger", name="demo", run_name="first")
        >>> logger.log_hyperparams({"lr": 0.1, "model": {"width": 64}})
        >>> logger.log_metrics({"loss": 0.5}, step=0)
        >>> logger.finalize("success")
        >>> from lightning_tracker import Store
        >>> run = Store("memory://doc-logger").runs(project="demo")[0]
        >>> run.name, run.status, run.config["model"]["width"], run.summary["loss"]["last"]
        ('first', 'finished', 64, 0.5)
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: str | os.PathLike[str] = "./runs",
        name: str = "default",
        version: str | int | None = None,
        run_name: str | None = None,
        group: str | None = None,
        tags: list[str] | tuple[str, ...] | None = None,
        notes: str | None = None,
        prefix: str = "",
        flush_interval: float = 2.0,
        tensorboard: bool = True,
        storage_options: dict[str, Any] | None = None,
        offline: bool = False,
        spool_dir: str | os.PathLike[str] | None = None,
        keep_spool: bool | None = None,
        finalize_timeout: float = 60.0,
        log_model: bool | str = False,
        resume: str = "allow",
        trial: Any = None,
        alerts: str | None = None,
        alert_on: str | Sequence[str] = ("failed", "nan"),
        alert_metric: str | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        _refuse_unknown(unknown, list(inspect.signature(TrackerLogger.__init__).parameters)[1:-1])
        # "~/runs" is the home folder's, as for TensorBoardLogger and CSVLogger (a URL is left as is)
        if isinstance(save_dir, (str, os.PathLike)):
            save_dir = os.path.expanduser(os.fspath(save_dir))
        self._storage = Storage(save_dir, storage_options)
        self._name = validate_path_name("name", name)
        if version is not None:
            version = validate_path_name("version", version)
        if not isinstance(flush_interval, (int, float)) or not 0 < flush_interval <= 300:
            raise InvalidArgumentError(
                f"flush_interval={flush_interval!r} must be a number of seconds in (0, 300]; "
                "the default 2.0 keeps at most two seconds of points in memory."
            )
        if not isinstance(finalize_timeout, (int, float)) or finalize_timeout < 0:
            raise InvalidArgumentError(f"finalize_timeout={finalize_timeout!r} must be a number of seconds >= 0.")
        if log_model not in (False, True, "all") or not isinstance(log_model, (bool, str)):
            raise InvalidArgumentError(
                f"log_model={log_model!r} is not allowed; pass False (no upload), True (upload and keep what "
                "ModelCheckpoint keeps) or 'all' (keep every checkpoint ever saved)."
            )
        if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
            raise InvalidArgumentError(f"tags={tags!r} must be a list of strings, for example ['baseline'].")
        for arg, value in (("run_name", run_name), ("group", group), ("notes", notes)):
            if value is not None and not isinstance(value, str):
                raise InvalidArgumentError(f"{arg}={value!r} must be a string or None.")
        if run_name is not None and (not run_name.strip() or any(ord(c) < 32 for c in run_name)):
            raise InvalidArgumentError(f"run_name={run_name!r} must be non-empty and free of control characters.")
        self._alerts = AlertRoute.build(alerts, alert_on, alert_metric)
        self._trial = TrialLink(trial) if trial is not None else None
        self._launch = hydra_launch()  # built inside @hydra.main: the composed config, a multirun's group
        if group is None:
            group = self._trial.group if self._trial is not None else self._launch.group if self._launch else None
        self._resume = version is not None  # a generated id is new: nothing to look up remotely
        # checked when this logger (or the one it was copied from) first opens the run, never again
        self._require = resume_mode(resume, version)
        if version is not None and not offline:
            version = resolve_version(self._storage, self._name, version, resume)
        self._version = shared_run_id(version)
        self._run_name_arg = run_name
        self._run_name = run_name or new_run_name()
        self._group = group
        self._tags = list(tags or [])
        self._notes = notes
        self._prefix = prefix
        self._flush_interval = float(flush_interval)
        self._tensorboard = bool(tensorboard)
        self._offline = bool(offline)
        self._spool_root = os.path.abspath(os.path.expanduser(os.fspath(spool_dir))) if spool_dir is not None else None
        self._finalize_timeout = float(finalize_timeout)
        if keep_spool is not None and not isinstance(keep_spool, bool):
            raise InvalidArgumentError(f"keep_spool={keep_spool!r} is not a bool; pass True, False or None")
        self._keep_spool = keep_spool
        self._writer: RunWriter | None = None
        self._live: LiveRun | None = None  # what `experiment` returns, around the current writer
        self._log_model = log_model
        self._checkpoints: CheckpointProducer | None = None
        self._watch: tuple[nn.Module, str, int] | None = None  # watch()'s model, log and log_freq
        if self._trial is not None and rank() == 0:
            self._trial.link(self._name, self._version, self.url)

    # -- where the run lives ----------------------------------------------------------
    @property
    @override
    def name(self) -> str:
        """The project: the folder under ``save_dir`` holding this run."""
        return self._name

    @property
    @override
    def version(self) -> str:
        """The run id, identical on every rank."""
        return self._version

    @property
    @override
    def save_dir(self) -> str:
        """The local folder the run's files are written to first.

        For a local ``save_dir`` it is that folder; for a remote one it is the spool
        folder that mirrors it (Lightning's ``ModelCheckpoint`` writes there too, so it
        never writes to the network on the training thread).
        """
        local_path = self._storage.local_path()
        if local_path is not None:
            return local_path
        return spool_dir_for(self._storage, self._spool_root)

    @property
    @override
    def root_dir(self) -> str:
        """``<save_dir>/<name>``."""
        return os.path.join(self.save_dir, self._name)

    @property
    @override
    def log_dir(self) -> str:
        """``<save_dir>/<name>/<version>``: the local folder of this run."""
        return os.path.join(self.root_dir, self._version)

    @property
    def url(self) -> str:
        """Where the run lives (``s3://bucket/exp/<name>/<version>`` or a local path)."""
        return self._storage.full_url(f"{self._name}/{self._version}")

    @property
    def run_name(self) -> str:
        """The readable name of the run (the stored one once a resumed run is open)."""
        if self._writer is not None:
            return self._writer.name
        return self._run_name

    @property
    @override
    def group_separator(self) -> str:
        """Separates a group from a metric name (``"train/loss"``)."""
        return "/"

    @property
    @rank_zero_experiment
    def experiment(self) -> LiveRun:
        """The run this logger writes (rank 0; opened on first use); Lightning's dummy experiment on other ranks.

        A :class:`~lightning_tracker.LiveRun`: the run's ``id``, ``name``, ``url`` and
        ``local_dir``, and ``log_metrics``, ``log_hyperparams``, ``set_info`` and ``flush``
        to call directly.
        """
        writer = self._run_writer()
        if self._live is None:
            self._live = LiveRun(writer, self._version, self._name)
        return self._live

    def _run_writer(self) -> RunWriter:
        """This process's run writer, created (the run opened) on first use; rank 0 only."""
        if self._writer is not None and self._writer.forked:
            self._writer = None  # a forked child: resume the run in this process, as a new session
        if self._writer is None:
            self._live = None
            self._writer = RunWriter(
                self._storage,
                self._name,
                self._version,
                name=self._run_name_arg,
                default_name=self._run_name,
                group=self._group,
                tags=self._tags,
                notes=self._notes,
                flush_interval=self._flush_interval,
                tensorboard=self._tensorboard,
                spool_root=self._spool_root,
                offline=self._offline,
                resume=self._resume,
                require=self._require,
                keep_spool=self._keep_spool,
                alerts=dataclasses.replace(self._alerts, prefix=self._metric_prefix),
            )
            self._require = None  # a forked child or a reopened run: this logger already opened it
            if self._launch is not None:
                self._writer.log_config(self._launch.hyperparameters([self._alerts.url or ""]))
            if self._trial is not None:
                self._writer.log_config(self._trial.config())
        return self._writer

    # -- Lightning's calls ------------------------------------------------------------
    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | Any, *args: Any, **kwargs: Any) -> None:
        """Records hyperparameters; nested structure is kept and changes are recorded."""
        self._run_writer().log_config(params)

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Buffers metrics in memory; the background writer stores them."""
        writer = self._run_writer()
        if self._prefix:
            metrics = {f"{self._metric_prefix}{k}": v for k, v in metrics.items()}
        writer.log_metrics(metrics, step)

    @property
    def _metric_prefix(self) -> str:
        return f"{self._prefix}{self.LOGGER_JOIN_CHAR}" if self._prefix else ""

    @rank_zero_only
    def log_histograms(self, capture: Capture) -> None:
        """Records one capture of histograms (what ``GradientMonitor`` hands over); memory only.

        The capture is resolved on the background flusher (``capture.resolve()`` returns
        the histogram columns and the norm metrics derived from them). Like every metric
        this logger records, the norm metrics (``gradients/*``, ``parameters/*``) get
        ``prefix``; tensor names in the histograms do not.
        """
        self._run_writer().log_histograms(capture, self._metric_prefix)

    @rank_zero_only
    def add_sampler(self, name: str, sampler: Sampler, every_s: float) -> None:
        """Calls ``sampler()`` on the background flusher every ``every_s`` seconds and logs
        the ``(metrics, step)`` it returns (what ``SystemMonitor`` uses; ``prefix`` applies).

        Args:
            name: the sampler's name; adding a name again replaces the earlier sampler.
            sampler: returns ``(metrics, step)``; ``step=None`` takes the next step.
            every_s: seconds between calls (at most one call per flush).
        """
        self._run_writer().add_sampler(name, sampler, every_s, self._metric_prefix)

    @rank_zero_only
    def remove_sampler(self, name: str) -> None:
        """Stops calling the sampler ``name`` (no error when there is none)."""
        if self._writer is not None:
            self._writer.remove_sampler(name)

    @override
    def log_graph(self, model: nn.Module, input_array: Any = None) -> None:
        """Starts the run at fit start and records the metric the trainer's callbacks monitor (no graph is stored).

        Also adds the ``GradientMonitor`` that :meth:`watch` asked for, on every rank.
        """
        trainer = getattr(model, "_trainer", None)
        if self._watch is not None and trainer is not None and getattr(trainer.state, "fn", None) == "fit":
            self._attach_watch(trainer, model)
        self._open_at_fit_start(trainer)

    @rank_zero_only
    def _open_at_fit_start(self, trainer: Any) -> None:
        writer = self._run_writer()
        writer.ensure_open()
        writer.record_monitors(trainer)
        config = cli_config(trainer, [self._alerts.url or ""])  # LightningCLI's whole configuration
        if config is not None:
            writer.log_config(config)
            redact_saved_cli_config(trainer, [self._alerts.url or ""])  # its config.yaml, written unredacted

    def watch(self, model: nn.Module, log: str = "gradients", log_freq: int = 100) -> None:
        """Records histograms and norms of ``model``'s gradients and weights, as ``WandbLogger.watch`` does.

        When ``fit`` starts, adds ``GradientMonitor(log=log, every_n_steps=log_freq)`` to the
        Trainer's callbacks, on every rank; for a submodule of the ``LightningModule`` being
        fit, only that submodule's tensors are recorded. Passing
        ``callbacks=[GradientMonitor(...)]`` to the Trainer does the same with more options.

        Args:
            model: the ``LightningModule`` to fit, or one of its submodules.
            log: ``"gradients"``, ``"parameters"`` (weights) or ``"all"``.
            log_freq: record every this many optimizer steps (100, as ``wandb.watch``).

        Raises:
            InvalidArgumentError: ``model`` is not a module, ``log`` or ``log_freq`` cannot be used.

        Example:
            >>> import torch
            >>> logger = TrackerLogger("memory://doc-watch", name="p")
            >>> logger.watch(torch.nn.Linear(2, 2), log="all", log_freq=10)
        """
        from lightning_tracker.integration.callbacks.gradients import GradientMonitor

        if not isinstance(model, nn.Module):
            raise InvalidArgumentError(
                f"watch(model={model!r}) takes the LightningModule to fit or one of its submodules (an nn.Module)."
            )
        if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
            raise InvalidArgumentError(
                f"log_freq={log_freq!r} must be an integer >= 1 (1 records every optimizer step)."
            )
        GradientMonitor(every_n_steps=log_freq, log=log)  # checks `log` now, not when fit starts
        self._watch = (model, log, log_freq)

    def _attach_watch(self, trainer: Any, pl_module: Any) -> None:
        """Adds watch()'s ``GradientMonitor`` to ``trainer`` (once), set up as the Trainer would have."""
        from lightning_tracker.integration.callbacks.gradients import GradientMonitor

        assert self._watch is not None
        watched, log, log_freq = self._watch
        if any(getattr(cb, "_watched_by", None) is self for cb in trainer.callbacks):
            return
        name = next((n for n, m in pl_module.named_modules() if m is watched), None)
        if name is None:
            raise InvalidArgumentError(
                f"watch(model={type(watched).__name__}) is not part of the {type(pl_module).__name__} being fit; "
                "watch that LightningModule or one of its submodules."
            )
        monitor = GradientMonitor(every_n_steps=log_freq, log=log, modules=name or None)
        monitor._watched_by = self  # type: ignore[attr-defined]  # marks the one this logger added
        trainer.callbacks.append(monitor)
        monitor.setup(trainer, pl_module, "fit")  # the Trainer's setup hooks have run already

    @override
    def save(self) -> None:
        """Does nothing: Lightning calls it after every ``log_metrics``; writing is batched."""

    @override
    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Snapshots the checkpoint just saved for background upload (``log_model``).

        Only links the local file into the run's staging folder; the upload, the manifest
        and the retention happen on a background thread. Every save, with or without
        ``log_model``, records the first monitoring callback's metric in ``run.json``.
        """
        writer = self._run_writer()
        writer.record_monitor(checkpoint_callback)
        if not self._log_model:
            return
        self._checkpoints = writer.save_checkpoint(checkpoint_callback, self._log_model)

    @rank_zero_only
    def add_checkpoint_alias(self, alias: str, checkpoint: str | os.PathLike[str] | None = None) -> None:
        """Names a saved checkpoint (``"production"``); the alias moves if given again.

        Args:
            alias: the name; ``best``, ``latest`` and ``best:<metric>`` are maintained automatically.
            checkpoint: the local path ``ModelCheckpoint`` saved (for example
                ``callback.best_model_path``); None for the latest saved.

        Raises:
            InvalidArgumentError: ``log_model`` is off, the alias is reserved, or nothing was
                saved at ``checkpoint``.
        """
        if self._checkpoints is None:
            raise InvalidArgumentError(
                f"add_checkpoint_alias({alias!r}) needs a checkpoint saved with log_model enabled; pass "
                "TrackerLogger(log_model=True) and call it after ModelCheckpoint saved one."
            )
        self._checkpoints.add_alias(alias, None if checkpoint is None else os.fspath(checkpoint))

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Writes everything, marks the run finished or failed and waits for uploads.

        Args:
            status: Lightning's ``"success"``, ``"failed"`` or ``"finished"``. Lightning says
                ``"failed"`` from inside its exception handler: when the exception it handles is
                Optuna's ``TrialPruned``, the run ends ``pruned``.
        """
        if self._writer is None:
            return
        error = sys.exc_info()[1]
        state = FINISHED if status != "failed" else PRUNED if pruned_by_optuna(error) else FAILED
        reason = None if error is None or state == FINISHED else f"{type(error).__name__}: {error}"
        self._writer.close(state, timeout=self._finalize_timeout, reason=reason)

    @rank_zero_only
    def alert(self, title: str, text: str, level: str = "info") -> None:
        """Sends an alert, as ``wandb.alert``: recorded in the run and posted to the webhook (``alerts=``).

        Never waits: the post happens on a background thread, rate-limited and retried.

        Args:
            title: a short summary (``"Loss spiked"``).
            text: the details.
            level: ``"info"``, ``"warn"`` or ``"error"``.

        Raises:
            InvalidArgumentError: ``level`` is not one of those, or ``title``/``text`` is not text.

        Example:
            >>> logger = TrackerLogger("memory://doc-alert", name="p")
            >>> logger.alert("Loss spiked", "val/loss went from 0.3 to 9.1", level="warn")
            >>> logger.finalize("success")
        """
        check_level(level)
        for arg, value in (("title", title), ("text", text)):
            if not isinstance(value, str):
                raise InvalidArgumentError(f"alert({arg}={value!r}) must be a string")
        self._run_writer().alert(title, text, level)

    @rank_zero_only
    def flush(self) -> None:
        """Writes everything buffered so far to the run's local folder."""
        if self._writer is not None:
            self._writer.flush()

    # -- media: WandbLogger's signatures, so switching loggers is a rename -------------
    @rank_zero_only
    def log_image(
        self, key: str, images: Any, step: int | None = None, caption: Sequence[Any] | None = None, **kwargs: Any
    ) -> None:
        """Logs images: stored losslessly under the run, shown in the report, the dashboard and TensorBoard.

        The training thread only takes a snapshot (a CUDA tensor is copied asynchronously);
        encoding and writing happen on the background flusher. An input that is not an
        image is skipped with one warning per key; it never raises.

        Args:
            key: the panel's name (``"val/samples"``).
            images: a list of torch tensors (CHW or HW; float in [0, 1], uint8 or bool; on
                any device), NumPy arrays (HWC or HW), ``PIL.Image``\\ s or matplotlib
                figures; a 4-D tensor or array is a batch.
            step: the step (default: the step metrics were last logged at).
            caption: one caption per image.
            kwargs: other ``WandbLogger.log_image`` options (``masks``, ``boxes``) are not
                stored; a warning says so.

        Example:
            >>> import numpy as np
            >>> from lightning_tracker import TrackerLogger
            >>> logger = TrackerLogger("memory://doc-log-image", name="p", version="r1")
            >>> logger.log_image("samples", [np.zeros((8, 8), np.uint8)] * 2, step=0, caption=["a", "b"])
            >>> logger.finalize("success")
        """
        if kwargs:
            self._run_writer().warn(
                f"media:{key}:kwargs",
                "log_image(%r): %s not stored (only images and caption are)",
                str(key),
                ", ".join(sorted(kwargs)),
            )
        self._log_media("image", key, step, images=images, caption=caption)

    @rank_zero_only
    def log_text(
        self,
        key: str,
        columns: Sequence[Any] | None = None,
        data: Sequence[Sequence[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Logs text as a table of strings (``columns`` and ``data`` rows, or a pandas ``dataframe``).

        Example:
            >>> from lightning_tracker import TrackerLogger
            >>> logger = TrackerLogger("memory://doc-log-text", name="p", version="r1")
            >>> logger.log_text("generated", columns=["prompt", "output"], data=[["2+2", "4"]], step=0)
            >>> logger.finalize("success")
        """
        self._log_media("text", key, step, columns=columns, data=data, dataframe=dataframe)

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: Sequence[Any] | None = None,
        data: Sequence[Sequence[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Logs a table (``columns`` and ``data`` rows, or a pandas ``dataframe``); values keep their types.

        Example:
            >>> from lightning_tracker import TrackerLogger
            >>> logger = TrackerLogger("memory://doc-log-table", name="p", version="r1")
            >>> logger.log_table("per_class", columns=["digit", "accuracy"], data=[[0, 0.98], [1, 0.95]], step=3)
            >>> logger.finalize("success")
        """
        self._log_media("table", key, step, columns=columns, data=data, dataframe=dataframe)

    def _log_media(self, kind: str, key: Any, step: int | None, **inputs: Any) -> None:
        """Hands the snapshot of ``kind`` to the run writer (None: nothing to store, warned about)."""
        writer = self._run_writer()  # the first media opens the run
        snapshot = SNAPSHOTS[kind](str(key), writer.media_step(step), writer.warn, **inputs)  # keys are stored as text
        writer.log_media(snapshot)

    # -- pickling (ddp_spawn, Trainer copies) -----------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        if self._writer is not None:
            # the copy (a ddp_spawn worker) resumes the run; this process stops writing it
            self._writer.suspend()
        state = self.__dict__.copy()
        state["_writer"] = None
        state["_live"] = None
        state["_checkpoints"] = None
        state["_resume"] = True
        return state
