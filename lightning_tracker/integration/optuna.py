"""Optuna: the run of one trial, and the status of a trial Optuna pruned.

``TrackerLogger(..., trial=trial)`` wraps the trial in a :class:`TrialLink`: the study's
name becomes the run's group, the trial's number and parameters its hyperparameters, and
the trial learns its run (a user attribute), so either side finds the other. A trial
Optuna prunes raises ``optuna.TrialPruned`` inside ``fit`` (the pruning callback of
``optuna_integration`` does so); Lightning then calls ``finalize("failed")`` from inside its
exception handler, where :func:`pruned_by_optuna` sees the exception being handled.

Optuna is imported only when a trial is given (the ``optuna`` extra).

Example:
    >>> import optuna
    >>> study = optuna.create_study(study_name="doc-sweep")
    >>> trial = study.ask()
    >>> link = TrialLink(trial)
    >>> _ = trial.suggest_float("lr", 0.01, 0.01)
    >>> link.group, link.config()
    ('doc-sweep', {'optuna': {'study': 'doc-sweep', 'trial': 0}, 'lr': 0.01})
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError

__all__ = ["RUN_ATTR", "TrialLink", "pruned_by_optuna"]

RUN_ATTR = "lightning_tracker_run"
"""The trial's user attribute naming its run: ``{"project", "id", "url"}``."""


def _optuna() -> Any:
    try:
        return importlib.import_module("optuna")
    except ImportError:
        raise MissingDependencyError(
            "TrackerLogger(trial=...) needs optuna; install it with pip install 'lightning-tracker[optuna]'"
        ) from None


def pruned_by_optuna(exc: BaseException | None) -> bool:
    """Whether ``exc`` is Optuna's ``TrialPruned`` (never imports Optuna: a run that raised it has)."""
    optuna = sys.modules.get("optuna")
    return exc is not None and optuna is not None and isinstance(exc, optuna.TrialPruned)


class TrialLink:
    """What a run records of the Optuna trial it belongs to, and what the trial records of it.

    Args:
        trial: an ``optuna.Trial`` (or any ``optuna.trial.BaseTrial``, such as ``FixedTrial``).

    Raises:
        InvalidArgumentError: ``trial`` is not an Optuna trial.
        MissingDependencyError: Optuna is not installed.
    """

    def __init__(self, trial: Any) -> None:
        optuna = _optuna()
        if not isinstance(trial, optuna.trial.BaseTrial):
            raise InvalidArgumentError(
                f"trial={trial!r} is not an optuna trial; pass the trial your objective receives "
                "(def objective(trial): ... TrackerLogger(..., trial=trial))."
            )
        self._trial: Any = trial
        study = getattr(trial, "study", None)  # a FixedTrial has none
        self.group: str | None = getattr(study, "study_name", None)
        self.number: int = int(getattr(trial, "number", 0))
        self._params: dict[str, Any] = dict(trial.params)

    def config(self) -> dict[str, Any]:
        """The hyperparameters: the trial's parameters suggested so far, and ``optuna: {study, trial}``."""
        if self._trial is not None:
            self._params = dict(self._trial.params)
        return {"optuna": {"study": self.group, "trial": self.number}, **self._params}

    def link(self, project: str, run_id: str, url: str) -> None:
        """Names the run in the trial's user attribute :data:`RUN_ATTR` (stored by the study's storage)."""
        if self._trial is not None and hasattr(self._trial, "set_user_attr"):
            self._trial.set_user_attr(RUN_ATTR, {"project": project, "id": run_id, "url": url})

    def __getstate__(self) -> dict[str, Any]:
        # a copy (ddp_spawn) keeps what the trial said; the study's storage may not pickle
        return {**self.__dict__, "_trial": None}
