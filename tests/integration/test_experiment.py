"""``logger.experiment``: the ``LiveRun`` a TrackerLogger writes, on every storage target."""

from __future__ import annotations

import os
import pickle
from typing import Any

from lightning_tracker import LiveRun, Store, TrackerLogger


def test_the_experiment_names_the_run_and_where_it_is_stored(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    logger = TrackerLogger(save_dir, name="proj", run_name="calm-start", storage_options=options)
    run = logger.experiment
    assert isinstance(run, LiveRun)
    assert logger.experiment is run, "one handle per run, like WandbLogger's"
    assert (run.id, run.name, run.project, run.url) == (logger.version, "calm-start", "proj", logger.url)
    assert run.local_dir == logger.log_dir
    run.log_metrics({"a": 1.0}, step=0)
    run.flush()
    assert os.path.isfile(os.path.join(run.local_dir, "run.json")), "the run is written to its local folder first"
    logger.finalize("success")
    if options is not None:
        assert "key" not in run.url and "secret" not in run.url, "the url never carries credentials"


def test_what_the_experiment_logs_lands_in_the_stored_run_without_the_logger_prefix(
    store_target: tuple[str, Any],
) -> None:
    save_dir, options = store_target
    logger = TrackerLogger(save_dir, name="p", prefix="fit", storage_options=options)
    logger.log_metrics({"loss": 2.0}, step=0)
    logger.experiment.log_metrics({"raw": 1.0}, step=0)
    logger.experiment.log_metrics({"raw": 3.0})  # the next step
    logger.experiment.log_hyperparams({"model": {"width": 64}})
    logger.experiment.set_info(tags=["baseline"], notes="first try")
    logger.finalize("success")
    run = Store(save_dir, options).run(logger.version)
    assert set(run.summary) == {"fit-loss", "raw"}
    assert run.metrics()["raw"].dropna().tolist() == [1.0, 3.0]
    assert run.config["model"]["width"] == 64
    assert (run.tags, run.notes) == (["baseline"], "first try")


def test_the_experiment_summary_is_what_the_last_flush_wrote(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=300)
    run = logger.experiment
    run.log_metrics({"loss": 3.0}, step=0)
    assert run.summary == {}, "points wait in memory until a flush"
    logger.flush()
    summary = run.summary
    assert (summary["loss"]["last"], summary["loss"]["count"]) == (3.0, 1)
    summary["loss"]["last"] = -1.0  # a copy: changing it changes nothing stored
    run.log_metrics({"loss": 1.0}, step=1)
    logger.finalize("success")
    assert run.summary["loss"]["min"] == 1.0
    assert Store(tmp_path).run(logger.version).summary["loss"]["last"] == 1.0


def test_a_resumed_run_s_experiment_keeps_the_stored_name(tmp_path: Any) -> None:
    first = TrackerLogger(tmp_path, name="p", run_name="kept-name")
    first.log_metrics({"a": 1.0}, step=0)
    first.finalize("failed")
    second = TrackerLogger(tmp_path, name="p", version=first.version)
    assert second.experiment.name == "kept-name"
    assert second.experiment.id == first.version
    second.finalize("success")


def test_a_copied_logger_hands_out_a_new_experiment_for_the_same_run(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    before = logger.experiment
    before.log_metrics({"a": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))  # what ddp_spawn does: the copy resumes the run
    after = copy.experiment
    assert after is not before and after.id == before.id
    after.log_metrics({"a": 2.0}, step=1)
    copy.finalize("success")
    assert Store(tmp_path).run(logger.version).metrics()["a"].tolist() == [1.0, 2.0]
