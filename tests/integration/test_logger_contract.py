"""Everything a Lightning Trainer and its callbacks call on the logger, on every storage target,
under both Lightning packages (``pytorch_lightning`` and ``lightning.pytorch``)."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import LiveRun, Store, TrackerLogger
from lightning_tracker.integration import _compat
from tests.helpers import PACKAGES, lightning, local_or_s3, tiny_model, trainer

STEPS_PER_EPOCH = 8  # 64 samples, batch 8


def set_rank(monkeypatch: pytest.MonkeyPatch, rank: int) -> None:
    """This process's rank as a DDP strategy of either Lightning package would set it."""
    for fn in _compat._RANK_ZERO_ONLY:
        monkeypatch.setattr(fn, "rank", rank)


def test_fit_validate_test_keys_and_steps(store_target: tuple[str, Any], pl_package: str) -> None:
    save_dir, options = store_target
    logger = TrackerLogger(
        save_dir, name="contract", storage_options=options, flush_interval=0.2, tags=["t1"], notes="a note", group="g"
    )
    model = tiny_model(pl_package)
    t = trainer(logger, pl_package)
    t.fit(model)
    t.validate(model, verbose=False)
    t.test(model, verbose=False)

    run = Store(save_dir, options).run(logger.version, "contract")
    assert run.status == "finished"
    assert (run.tags, run.notes, run.group) == (["t1"], "a note", "g")
    assert run.config == {"lr": 0.05, "width": 8, "batch_size": 8}
    history = run.metrics()
    train = history.dropna(subset=["train/loss"])
    assert list(train["step"]) == list(range(2 * STEPS_PER_EPOCH))
    val = history.dropna(subset=["val/loss"])
    # one validation after each epoch of fit, then trainer.validate at global_step
    assert list(val["step"]) == [STEPS_PER_EPOCH - 1, 2 * STEPS_PER_EPOCH - 1, 2 * STEPS_PER_EPOCH]
    assert history["test/loss"].notna().sum() == 1
    assert (history["time"].diff().dropna() >= 0).all()
    summary = run.summary
    assert summary["train/loss"]["count"] == 2 * STEPS_PER_EPOCH
    assert summary["train/loss"]["last"] == pytest.approx(train["train/loss"].iloc[-1])
    assert summary["train/loss"]["min"] == pytest.approx(train["train/loss"].min())
    assert summary["test/loss"]["count"] == 1
    assert set(run.meta) >= {"host", "command", "python", "versions", "git", "gpus"}


def test_properties_follow_lightning_layout(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="proj", version="my-run")
    assert logger.name == "proj" and logger.version == "my-run"
    assert logger.save_dir == str(tmp_path)
    assert logger.root_dir == str(tmp_path / "proj")
    assert logger.log_dir == str(tmp_path / "proj" / "my-run")
    assert logger.group_separator == "/"
    assert not (tmp_path / "proj").exists(), "nothing is written before the first log call"


def test_remote_save_dir_points_lightning_at_the_local_spool(tmp_path: Any) -> None:
    logger = TrackerLogger("memory://props/exp", name="p", spool_dir=tmp_path / "spool")
    assert logger.save_dir.startswith(str(tmp_path / "spool"))
    assert logger.log_dir.endswith(f"p/{logger.version}")
    assert logger.url == f"memory://props/exp/p/{logger.version}"


def test_prefix_is_joined_like_lightning_loggers(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", prefix="fold1")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert list(Store(tmp_path).run(logger.version).summary) == ["fold1-loss"]


def test_prefix_applies_to_every_metric_the_logger_records(tmp_path: Any) -> None:
    import numpy as np

    class _Capture:
        def resolve(self) -> tuple[dict[str, Any], list[tuple[str, int, float, float]]]:
            columns = {
                "step": [3],
                "time": [0.0],
                "tensor": ["w"],
                "kind": ["gradient"],
                "numel": [2],
                "edges": [[0.0, 1.0]],
                "counts": [[2]],
                "norm": [1.0],
                "min": [0.0],
                "max": [1.0],
                "sum": [1.0],
                "zeros": [0],
                "nan": [0],
                "posinf": [0],
                "neginf": [0],
                "update_ratio": [np.nan],
            }
            return columns, [("gradients/norm_total", 3, 0.0, 1.0)]

    logger = TrackerLogger(tmp_path, name="p", prefix="fold1")
    logger.log_histograms(_Capture())
    logger.add_sampler("test", lambda: ({"system/cpu_percent": 5.0}, 3), every_s=0.01)
    logger.flush()
    time.sleep(0.1)
    logger.remove_sampler("test")
    logger.finalize("success")
    run = Store(tmp_path).run(logger.version)
    assert set(run.summary) == {"fold1-gradients/norm_total", "fold1-system/cpu_percent"}
    assert list(run.histograms()["tensor"]) == ["w"]  # tensor names are not prefixed


def test_finalize_failed_then_success_again(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    logger.log_metrics({"a": 1.0}, step=0)
    logger.finalize("failed")
    run = Store(tmp_path).run(logger.version)
    assert run.status == "failed"
    logger.log_metrics({"a": 2.0}, step=1)  # e.g. trainer.test() after a failed fit
    logger.finalize("success")
    run = Store(tmp_path).run(logger.version)
    assert run.status == "finished"
    assert list(run.metrics()["a"]) == [1.0, 2.0]


def test_experiment_is_the_dummy_on_other_ranks(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    set_rank(monkeypatch, 1)
    exp = logger.experiment
    for package in PACKAGES:
        assert isinstance(exp, lightning(package).loggers.logger.DummyExperiment)
    logger.log_metrics({"a": 1.0}, step=0)
    logger.log_hyperparams({"lr": 1})
    logger.finalize("success")
    assert not (tmp_path / "p").exists(), "rank 1 must not write"
    set_rank(monkeypatch, 0)
    assert isinstance(logger.experiment, LiveRun)


def test_logger_and_trainer_pickle(tmp_path: Any, pl_package: str) -> None:
    logger = TrackerLogger(tmp_path, name="p", storage_options=None)
    logger.log_metrics({"a": 1.0}, step=0)
    t = trainer(logger, pl_package)
    clone = pickle.loads(pickle.dumps(t))
    assert clone.logger.version == logger.version
    assert clone.logger.log_dir == logger.log_dir
    restored = pickle.loads(pickle.dumps(logger))
    restored.log_metrics({"a": 2.0}, step=1)
    restored.finalize("success")
    logger.finalize("success")
    history = Store(tmp_path).run(logger.version).metrics()
    assert list(history["a"]) == [1.0, 2.0]


def test_tuner_leaves_the_logger_working(tmp_path: Any, pl_package: str) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    model = tiny_model(pl_package)
    t = trainer(logger, pl_package, max_epochs=1)
    tuner = lightning(pl_package).tuner.Tuner(t)
    tuner.lr_find(model, num_training=10, min_lr=1e-4, max_lr=1e-1)
    tuner.scale_batch_size(model, mode="power", max_trials=2, steps_per_trial=2)
    t.fit(model)
    run = Store(tmp_path).run(logger.version)
    assert run.status == "finished"
    assert run.summary["train/loss"]["count"] == len(model.train_dataloader())
    assert run.config["lr"] == model.hparams.lr


def test_lr_monitor_and_device_stats_arrive(tmp_path: Any, pl_package: str) -> None:
    callbacks = lightning(pl_package).callbacks
    logger = TrackerLogger(tmp_path, name="p")
    monitors = [callbacks.LearningRateMonitor("step"), callbacks.DeviceStatsMonitor(cpu_stats=True)]
    t = trainer(logger, pl_package, max_epochs=1, callbacks=monitors)
    t.fit(tiny_model(pl_package))
    keys = set(Store(tmp_path).run(logger.version).summary)
    assert "lr-SGD" in keys
    assert any(k.startswith("DeviceStatsMonitor.") for k in keys), keys


@pytest.mark.parametrize("blocked", ["pytorch_lightning", "lightning"])
def test_works_when_only_one_lightning_package_is_installed(blocked: str, tmp_path: Any) -> None:
    import subprocess
    import sys

    other = "lightning.pytorch" if blocked == "pytorch_lightning" else "pytorch_lightning"
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r} or name.startswith({blocked!r} + "."):
            raise ImportError("blocked for the test: " + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from lightning_tracker import TrackerLogger, Store
from lightning_tracker.integration import _compat
assert _compat.Logger.__module__.startswith({other.split(".")[0]!r}), _compat.Logger.__module__
from tests.helpers import tiny_model, trainer
logger = TrackerLogger({str(tmp_path)!r}, name="p")
trainer(logger, {other!r}).fit(tiny_model({other!r}))
assert {blocked!r} not in sys.modules
run = Store({str(tmp_path)!r}).run(logger.version)
assert run.status == "finished" and run.summary["train/loss"]["count"] == 16, run.summary
print("OK")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


def test_ranks_started_by_torchrun_or_slurm_agree_on_the_run_id(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "a1b2c3")
    ids = []
    for rank in (3, 0):  # each rank is a fresh process: nothing inherited from Lightning's launcher
        monkeypatch.delenv("_LIGHTNING_TRACKER_RUN_IDS", raising=False)
        set_rank(monkeypatch, rank)
        monkeypatch.setattr("lightning_tracker.integration.run_ids._constructed", 0)
        ids.append(TrackerLogger(tmp_path, name="p").version)
    assert ids[0] == ids[1] == "job-a1b2c3-0"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("SLURM_JOB_ID", "98765")
    monkeypatch.delenv("_LIGHTNING_TRACKER_RUN_IDS", raising=False)
    monkeypatch.setattr("lightning_tracker.integration.run_ids._constructed", 0)
    assert TrackerLogger(tmp_path, name="p").version == "job-98765-0"


@pytest.mark.parametrize("log_model", [False, True])
@pytest.mark.parametrize("target", ["local", "s3"])
def test_the_first_monitoring_checkpoint_callback_is_recorded_in_run_json(
    target: str, log_model: bool, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    callbacks = lightning().callbacks
    logger = TrackerLogger(save_dir, name="p", storage_options=options, log_model=log_model)
    trainer(
        logger,
        enable_checkpointing=True,
        callbacks=[
            callbacks.ModelCheckpoint(filename="last-{epoch}"),  # monitors nothing: not the one recorded
            callbacks.ModelCheckpoint(monitor="val/loss", mode="min", filename="a-{epoch}"),
            callbacks.ModelCheckpoint(monitor="train/loss", mode="max", filename="b-{epoch}"),
        ],
    ).fit(tiny_model())
    run = Store(save_dir, options).run(logger.version)
    assert run.monitor == {"name": "val/loss", "mode": "min"}
    assert run.doc["monitor"] == {"name": "val/loss", "mode": "min"}  # in run.json as stored
    if log_model:
        assert run.checkpoint("best").name.startswith("a-")  # "best" follows the same callback

    resumed = TrackerLogger(save_dir, name="p", version=logger.version, storage_options=options, resume="must")
    trainer(resumed, max_epochs=1).fit(tiny_model())  # no checkpoint callback this session
    assert Store(save_dir, options).run(logger.version).monitor == {"name": "val/loss", "mode": "min"}
    again = TrackerLogger(save_dir, name="p", version=logger.version, storage_options=options, resume="must")
    trainer(
        again,
        max_epochs=1,
        enable_checkpointing=True,
        callbacks=[callbacks.ModelCheckpoint(monitor="val/loss", mode="max")],
    ).fit(tiny_model())
    assert Store(save_dir, options).run(logger.version).monitor == {"name": "val/loss", "mode": "max"}


@pytest.mark.parametrize("target", ["local", "s3"])
def test_no_monitor_is_recorded_without_a_monitoring_checkpoint_callback(
    target: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    logger = TrackerLogger(save_dir, name="p", storage_options=options)
    trainer(logger, enable_checkpointing=True).fit(tiny_model())  # Lightning's default ModelCheckpoint()
    run = Store(save_dir, options).run(logger.version)
    assert run.monitor is None and run.doc["monitor"] is None
    plain = TrackerLogger(save_dir, name="p", storage_options=options)
    trainer(plain).fit(tiny_model())  # no checkpointing at all
    assert Store(save_dir, options).run(plain.version).monitor is None


def test_an_early_stopping_monitor_is_recorded_when_no_checkpoint_callback_monitors(tmp_path: Any) -> None:
    callbacks = lightning().callbacks
    logger = TrackerLogger(str(tmp_path), name="p")
    stop = callbacks.EarlyStopping(monitor="val/loss", mode="min", patience=5)
    trainer(logger, max_epochs=2, callbacks=[stop]).fit(tiny_model())
    assert Store(str(tmp_path)).run(logger.version).monitor == {"name": "val/loss", "mode": "min"}
    both = TrackerLogger(str(tmp_path), name="p")  # a monitoring ModelCheckpoint comes first
    trainer(
        both,
        max_epochs=1,
        enable_checkpointing=True,
        callbacks=[
            callbacks.EarlyStopping(monitor="val/loss", mode="min"),
            callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ck"), monitor="train/loss", mode="min"),
        ],
    ).fit(tiny_model())
    assert Store(str(tmp_path)).run(both.version).monitor == {"name": "train/loss", "mode": "min"}


TORCHRUN_SCRIPT = """
import os, sys
sys.path.insert(0, os.environ["REPO"])
from lightning_tracker import TrackerLogger
print(f"rank {os.environ['RANK']}: {TrackerLogger(sys.argv[1], name='p').version}", flush=True)
"""


def test_a_torchrun_job_started_after_a_logger_was_built_gets_one_id_of_its_own(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import REPO

    parent = TrackerLogger(tmp_path, name="p")  # this process's run: its id is published for its DDP ranks
    script = tmp_path / "ranks.py"
    script.write_text(TORCHRUN_SCRIPT)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "REPO": REPO, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ids = dict(line.split(": ") for line in done.stdout.splitlines() if line.startswith("rank "))
    assert set(ids) == {"rank 0", "rank 1"}, done.stdout
    assert ids["rank 0"] == ids["rank 1"] != parent.version, ids


def test_save_dir_with_a_tilde_is_in_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pl_package: str
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    logger = TrackerLogger("~/runs", name="p", spool_dir="~/spool")
    assert logger.save_dir == str(home / "runs") and logger.log_dir == str(home / "runs" / "p" / logger.version)
    trainer(logger, pl_package, max_epochs=1).fit(tiny_model(pl_package))
    assert Store(str(home / "runs")).run(logger.version).status == "finished"
    assert os.listdir(work) == [], "nothing is written into a folder named '~'"


def test_a_path_hyperparameter_is_stored_as_its_path_string(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pathlib import PurePosixPath

    logger = TrackerLogger(tmp_path, name="p")
    logger.log_hyperparams({"data": tmp_path / "data.csv", "nested": {"out": PurePosixPath("/ckpt/a")}})
    logger.finalize("success")
    assert Store(tmp_path).run(logger.version).config == {
        "data": str(tmp_path / "data.csv"),
        "nested": {"out": "/ckpt/a"},
    }
    assert "not JSON-serializable" not in caplog.text


@pytest.mark.parametrize("target", ["local", "s3"])
def test_the_logger_takes_the_id_prefix_or_the_name_the_cli_shows(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    first = TrackerLogger(
        save_dir, name="p", version="20261206-031742-k3x9", run_name="swift-otter", storage_options=options
    )
    trainer(first, max_epochs=1).fit(tiny_model())
    for given, resume in (("20261206-03174", "allow"), ("swift-otter", "must")):
        again = TrackerLogger(save_dir, name="p", version=given, resume=resume, storage_options=options)
        assert again.version == first.version, given
        trainer(again, max_epochs=1).fit(tiny_model())
    runs = Store(save_dir, options).runs("p")
    assert [run.id for run in runs] == [first.version], "no run was created under the prefix"
    assert len(runs[0].doc["sessions"]) == 3


def test_a_prefix_of_several_runs_or_a_new_id_that_prefixes_one_is_refused(tmp_path: Path) -> None:
    from lightning_tracker.exceptions import AmbiguousRunError, RunExistsError

    for version in ("20261206-0317-a", "20261206-0317-b"):
        logger = TrackerLogger(tmp_path, name="p", version=version)
        logger.log_metrics({"a": 1.0}, step=0)
        logger.finalize("success")
    with pytest.raises(AmbiguousRunError, match=r"'20261206-0317' matches 2 runs .*20261206-0317-a, 20261206-0317-b"):
        TrackerLogger(tmp_path, name="p", version="20261206-0317")
    with pytest.raises(RunExistsError, match=r"version='20261206-0317-' is a prefix of the run id 20261206-0317-a"):
        TrackerLogger(tmp_path, name="p", version="20261206-0317-", resume="never")
    assert TrackerLogger(tmp_path, name="p", version="20261206-0317-c", resume="never").version == "20261206-0317-c"
