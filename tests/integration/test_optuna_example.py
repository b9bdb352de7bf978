"""``examples/optuna_sweep.py`` (the README's Optuna sweep) runs as a user runs it and leaves a run per trial."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("optuna_integration")

from lightning_tracker import Store
from tests.helpers import REPO


def test_the_optuna_sweep_example_records_every_trial_in_its_group(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "optuna_sweep.py"), save_dir],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = Store(save_dir).runs(project="sweep")
    assert len(runs) == 8 and {run.group for run in runs} == {"lr-width"}
    assert {run.status for run in runs} <= {"finished", "pruned"}
    best = done.stdout.strip().splitlines()[-1].split()[-1]
    assert any(run.id == best and run.status == "finished" for run in runs)
    assert all({"lr", "width", "optuna"} <= set(run.config) for run in runs)
