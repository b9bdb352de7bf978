"""An Optuna study drives ``TrackerLogger``: each trial is a run of the study's group, and a
trial Optuna prunes ends ``pruned``, on a local store and on a real S3 server (moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")
optuna_integration = pytest.importorskip("optuna_integration")

from lightning_tracker import Store, TrackerLogger  # noqa: E402
from lightning_tracker.cli import main  # noqa: E402
from lightning_tracker.exceptions import InvalidArgumentError  # noqa: E402
from tests.helpers import local_or_s3, tiny_model, trainer  # noqa: E402

PACKAGE = "lightning.pytorch"  # optuna_integration's pruning callback is a lightning.pytorch Callback


class _PruneAfterFirst(optuna.pruners.BasePruner):
    """Prunes every trial but the first at its first report: a study whose outcome is known."""

    def prune(self, study: Any, trial: Any) -> bool:
        return trial.number > 0


def _objective(save_dir: str, options: dict[str, Any] | None) -> Any:
    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        width = trial.suggest_int("width", 4, 8)
        logger = TrackerLogger(save_dir, name="sweep", storage_options=options, trial=trial, flush_interval=0.2)
        pruning = optuna_integration.PyTorchLightningPruningCallback(trial, monitor="val/loss")
        fit = trainer(logger, PACKAGE, max_epochs=2, callbacks=[pruning])
        fit.fit(tiny_model(PACKAGE, lr=lr, width=width))
        return float(fit.callback_metrics["val/loss"])

    return objective


@pytest.mark.parametrize("target", ["local", "s3"])
def test_a_study_records_each_trial_as_a_run_of_its_group_and_pruned_trials_end_pruned(
    target: str, tmp_path: Any, request: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    study = optuna.create_study(study_name="tiny-sweep", pruner=_PruneAfterFirst())
    study.optimize(_objective(save_dir, options), n_trials=3)

    runs = {run.id: run for run in Store(save_dir, storage_options=options).runs(project="sweep")}
    assert len(runs) == 3
    for trial in study.trials:
        run = runs[trial.user_attrs["lightning_tracker_run"]["id"]]
        assert run.group == "tiny-sweep"
        assert run.config["optuna"] == {"study": "tiny-sweep", "trial": trial.number}
        assert run.config["lr"] == pytest.approx(trial.params["lr"]) and run.config["width"] == trial.params["width"]
        expected = "finished" if trial.state == optuna.trial.TrialState.COMPLETE else "pruned"
        assert (trial.number, run.status) == (trial.number, expected)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "PRUNED"]
    assert sorted(r.id for r in Store(save_dir, storage_options=options).runs(project="sweep", status="pruned")) == (
        sorted(t.user_attrs["lightning_tracker_run"]["id"] for t in study.trials[1:])
    )
    capsys.readouterr()
    options_args = ["--storage-options", json.dumps(options)] if options else []
    assert main(["runs", "-s", save_dir, "-p", "sweep", "--status", "pruned", *options_args]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.split()[2:3] == ["pruned"]]
    assert len(rows) == 2, "the command line filters and shows the pruned trials"


def test_a_failed_trial_still_ends_failed(tmp_path: Any) -> None:
    def objective(trial: Any) -> float:
        logger = TrackerLogger(tmp_path, name="sweep", trial=trial)
        fit = trainer(logger, PACKAGE, max_epochs=1)
        model = tiny_model(PACKAGE)
        model.training_step = lambda *a: (_ for _ in ()).throw(RuntimeError("boom"))
        fit.fit(model)
        return 0.0

    study = optuna.create_study()
    study.optimize(objective, n_trials=1, catch=(RuntimeError,))
    (run,) = Store(tmp_path).runs(project="sweep")
    assert run.status == "failed"


def test_trial_must_be_an_optuna_trial(tmp_path: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"trial=.*optuna"):
        TrackerLogger(tmp_path, trial="trial-3")
