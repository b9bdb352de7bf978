"""What a store lists: a project is a folder of runs, a run a folder; stray files and empty folders are neither."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.storage import Storage


def _log(save_dir: str, options: Any, project: str) -> str:
    logger = TrackerLogger(save_dir, name=project, storage_options=options, tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    return logger.version


def test_the_runs_overview_counts_neither_stray_files_as_projects_nor_empty_folders_as_runs(
    store_target: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    runs = {_log(save_dir, options, "a"), _log(save_dir, options, "b")}
    storage = Storage(save_dir, options)
    for i in range(30):  # what lands in a shared folder: notes, exports, a copied file
        storage.write_bytes(f"stray-{i}.txt", b"x")
        storage.write_bytes(f"a/stray-{i}.csv", b"x")
    if storage.is_local:  # only a folder on disk can be empty
        for i in range(5):
            os.makedirs(os.path.join(save_dir, "a", f"empty-{i}"))
            os.makedirs(os.path.join(save_dir, f"empty-project-{i}"))
    store = Store(save_dir, options)
    assert store.projects() == ["a", "b"]
    assert set(store.run_ids("a")) | set(store.run_ids("b")) == runs
    assert {r.id for r in store.runs()} == runs
    opts = ["--storage-options", json.dumps(options)] if options else []
    assert main(["runs", "-s", save_dir, *opts]) == 0
    out = capsys.readouterr().out
    assert "2 projects" in out
    counts = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()[:2] in ("a ", "b ")}
    assert counts == {"a": "1", "b": "1"}, out
