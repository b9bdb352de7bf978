"""A real ``@hydra.main`` script, run as a user runs it: the composed config is the run's
hyperparameters, and the jobs of one multirun (``-m``) share one group."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra")

from lightning_tracker import Store
from tests.helpers import REPO

SCRIPT = os.path.join(REPO, "tests", "scripts", "hydra_train.py")


def _run(tmp_path: Path, *overrides: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, SCRIPT, *overrides, f"save_dir={tmp_path / 'runs'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [line.split()[1] for line in done.stdout.splitlines() if line.startswith("RUN ")]


def test_a_hydra_multirun_records_each_job_s_composed_config_in_one_group(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "sweep-1"
    ids = _run(tmp_path, "-m", "model.lr=0.01,0.1", f"hydra.sweep.dir={sweep}")
    store = Store(tmp_path / "runs")
    runs = [store.run(run_id) for run_id in ids]
    assert len(runs) == 2 and {run.group for run in runs} == {str(sweep)}
    for num, (run, lr) in enumerate(zip(runs, (0.01, 0.1), strict=True)):
        assert run.config["model"] == {"lr": lr, "width": 8, "name": "w8"}, "composed, interpolations resolved"
        assert run.config["trainer"] == {"max_epochs": 1}
        assert run.config["hydra"]["num"] == num and f"model.lr={lr}" in run.config["hydra"]["overrides"]
        assert run.config["hydra"]["name"] == "hydra_train"


def test_a_single_hydra_run_records_its_config_and_no_group(tmp_path: Path) -> None:
    (run_id,) = _run(tmp_path, "model.width=16", f"hydra.run.dir={tmp_path / 'out'}")
    run = Store(tmp_path / "runs").run(run_id)
    assert run.group is None
    assert run.config["model"] == {"lr": 0.05, "width": 16, "name": "w16"}
    assert run.config["hydra"]["overrides"] == ["model.width=16", f"save_dir={tmp_path / 'runs'}"]
