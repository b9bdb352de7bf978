"""The guide for moving from WandbLogger: its example script runs and records what it says, and the
guide names only arguments ``TrackerLogger`` takes and links the README's short table, not a copy of it."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

from lightning_tracker import Store, TrackerLogger
from tests.helpers import REPO

GUIDE = Path(REPO) / "docs" / "migrating.md"
EXAMPLE = Path(REPO) / "examples" / "from_wandb.py"


def test_the_wandb_example_script_records_what_a_wandb_run_recorded(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    env = {**os.environ, "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), save_dir], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = re.search(r"^run (\S+) \(baseline\)", done.stdout, re.M)
    assert run_id, done.stdout
    run = Store(save_dir).run(run_id[1], "regression")
    assert (run.name, run.group, run.tags, run.notes) == (
        "baseline",
        "sweep-1",
        ["from-wandb"],
        "moved from WandbLogger",
    )
    assert run.config == {"lr": 0.05, "width": 16} and run.status == "finished"
    assert set(run.media()["key"]) == {"val/samples", "val/errors"}
    assert len(run.checkpoints) == 1 and not run.histograms().empty  # log_model=True; watch(log="all")
    assert {"gradients", "parameters"} <= {c.split("/")[0] for c in run.gradients().columns}


def test_the_guide_names_only_arguments_the_logger_takes_and_links_the_readme_table() -> None:
    text = GUIDE.read_text()
    taken = set(inspect.signature(TrackerLogger).parameters)
    ours = [cell.split("|")[2] for cell in text.splitlines() if cell.startswith("| `") and cell.count("|") >= 3]
    named = {m for cell in ours for m in re.findall(r"`(\w+)=", cell)} - {"log", "every_n_steps", "log_freq"}
    assert named and named <= taken, named - taken
    assert "../README.md#coming-from-wandblogger-or-tensorboardlogger" in text
    readme = (Path(REPO) / "README.md").read_text()
    assert "## Coming from WandbLogger or TensorBoardLogger" in readme and "## Environment variables" in readme
    assert "examples/from_wandb.py" in text and EXAMPLE.exists()
