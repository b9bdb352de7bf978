"""DDP with two CPU processes (gloo), under both Lightning packages: exactly one run, the same
id and log_dir on every rank, written by rank 0 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from lightning_tracker import Store

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts", "train.py")


@pytest.mark.parametrize(("strategy", "prefit"), [("ddp", False), ("ddp_spawn", False), ("ddp_spawn", True)])
def test_one_run_per_ddp_job(strategy: str, prefit: bool, pl_package: str, tmp_path: Any) -> None:
    save_dir, out_dir = tmp_path / "runs", tmp_path / "out"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            str(save_dir),
            str(out_dir),
            "--strategy",
            strategy,
            "--steps",
            "12",
            "--package",
            pl_package,
            *(["--prefit"] if prefit else []),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = {r["rank"]: r for r in (json.loads(p.read_text()) for p in out_dir.glob("rank*.json"))}
    assert sorted(ranks) == [0, 1]
    assert ranks[0]["pid"] != ranks[1]["pid"]
    assert ranks[0]["version"] == ranks[1]["version"]
    assert ranks[0]["log_dir"] == ranks[1]["log_dir"]
    assert ranks[0]["writer_opened"] and not ranks[1]["writer_opened"], "only rank 0 writes"
    assert [n for n in os.listdir(save_dir / "p") if not n.startswith(".")] == [ranks[0]["version"]], "exactly one run"
    run = Store(save_dir).run(ranks[0]["version"])
    assert run.status == "finished"
    assert run.config["lr"] == 0.05
    if prefit:  # logged in the parent before the workers started: the worker took the run over
        assert run.config["prefit"] is True
        assert [s["index"] for s in run.doc["sessions"]] == [0, 1]
    # 12 batches of 8 split over two ranks: 6 optimizer steps, logged once each by rank 0
    assert list(run.metrics()["step"]) == list(range(6))
    media = run.media()  # log_image is rank zero only, like every logger method
    assert media["caption"].tolist() == ["0"] and run.read_media("rank", int(media["step"][0])).getextrema() == (0, 0)
