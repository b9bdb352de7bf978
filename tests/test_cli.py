"""The lightning-tracker command line on local, memory and S3 stores."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lightning_tracker import TrackerLogger
from lightning_tracker.cli import main


def _make_runs(save_dir: str, options: Any) -> list[TrackerLogger]:
    loggers = []
    for i, lr in enumerate((0.1, 0.01, 0.001)):
        logger = TrackerLogger(save_dir, name="cli", run_name=f"run-{i}", storage_options=options, tags=["sweep"])
        logger.log_hyperparams({"lr": lr, "width": 64, "seed": 0})
        for step in range(5):
            logger.log_metrics({"val/acc": lr * 10 + step * 0.01}, step=step)
        logger.finalize("success")
        loggers.append(logger)
    return loggers


def _run_names(out: str) -> list[str]:
    """The name column of the rows of a ``runs`` table, top to bottom."""
    return [line.split("│")[2].strip() for line in out.splitlines() if "run-" in line]


def test_runs_shows_differing_hyperparameters_and_final_metrics(
    store_target: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    loggers = _make_runs(save_dir, options)
    opts = ["--storage-options", json.dumps(options)] if options else []
    assert main(["runs", save_dir, "--project", "cli", "--sort=-val/acc", *opts]) == 0
    out = capsys.readouterr().out
    assert "3 runs" in out and "lr" in out and "val/acc" in out
    assert "width" not in out, "only hyperparameters that differ are shown"
    lines = [line for line in out.splitlines() if "run-" in line]
    assert _run_names(out) == ["run-0", "run-1", "run-2"]
    assert "1.04" in lines[0] and "finished" in lines[0]
    assert main(["show", loggers[1].version, save_dir, *opts]) == 0
    out = capsys.readouterr().out
    assert "run-1" in out and "0.01" in out and "val/acc" in out


def test_runs_where_filters_by_hyperparameters_and_metrics(
    store_target: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    _make_runs(save_dir, options)
    opts = ["--storage-options", json.dumps(options)] if options else []
    assert main(["runs", save_dir, "-p", "cli", "--where", "lr<0.05", "--where", "summary.val/acc>=0.1", *opts]) == 0
    assert _run_names(capsys.readouterr().out) == ["run-1"]
    assert main(["runs", save_dir, "-p", "cli", "-w", "lr!=0.1", "-w", "width=64", *opts]) == 0
    assert _run_names(capsys.readouterr().out) == ["run-1", "run-2"]
    assert main(["runs", save_dir, "-p", "cli", "-w", "lr>1", *opts]) == 0
    assert "no runs" in capsys.readouterr().out


def test_errors_name_the_problem_and_the_fix(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _make_runs(str(tmp_path), None)
    assert main(["show", "no-such-run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no-such-run" in err and "lightning-tracker runs" in err
    assert main(["runs", str(tmp_path), "--sort", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["runs", "memory://x", "--storage-options", "{not json"]) == 2
    assert "--storage-options" in capsys.readouterr().err
    assert main(["runs", str(tmp_path), "--where", "lr<"]) == 2  # ("lr~0.1" is a word to search)
    err = capsys.readouterr().err
    assert "where term 'lr<'" in err and "KEY OP VALUE" in err


def test_console_script_is_installed() -> None:
    done = subprocess.run([sys.executable, "-m", "lightning_tracker.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "runs" in done.stdout and "sync" in done.stdout
