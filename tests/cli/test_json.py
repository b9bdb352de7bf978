"""``--json``: one document on stdout that ``json.loads`` reads, with the keys ``docs/cli-json.md`` lists.

NaN and ±inf are null, times are ISO 8601 in UTC. A real store in a temp folder, the real ``main``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import TrackerLogger
from lightning_tracker.cli import main

RUN_KEYS = {
    "id", "name", "project", "group", "tags", "note", "status", "archived", "damage",
    "start", "end", "duration_s", "url", "monitor", "params",
}  # fmt: skip


def _store(tmp_path: Path) -> str:
    save_dir = str(tmp_path / "runs")
    for version, lr in (("run-a", 0.1), ("run-b", 0.01)):
        logger = TrackerLogger(save_dir, name="p", version=version, tags=["t"], tensorboard=False)
        logger.log_hyperparams({"lr": lr, "width": 8})
        logger.log_metrics({"loss": lr, "odd": float("nan"), "big": float("inf")}, step=0)
        logger.finalize("success")
    return save_dir


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)  # strict: NaN or Infinity would not parse as JSON values


def _check_run(record: dict[str, Any], metrics: bool = True) -> None:
    assert set(record) == RUN_KEYS | ({"metrics"} if metrics else set())
    assert datetime.fromisoformat(record["start"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    datetime.fromisoformat(record["end"])
    if metrics:
        assert record["metrics"]["odd"]["last"] is None and record["metrics"]["big"]["max"] is None
        assert set(record["metrics"]["loss"]) == {"last", "last_step", "min", "min_step", "max", "max_step", "count"}


def test_runs_show_and_compare_print_json_with_stable_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = _store(tmp_path)
    doc = _json(capsys, ["runs", "-s", save_dir, "-p", "p", "--json", "--sort=-lr"])
    assert set(doc) == {"store", "project", "runs"} and doc["project"] == "p"
    assert [r["id"] for r in doc["runs"]] == ["run-a", "run-b"]  # the table's order: --sort -lr
    for record in doc["runs"]:
        _check_run(record)
    assert doc["runs"][1]["params"] == {"lr": 0.01, "width": 8}
    doc = _json(capsys, ["runs", "-s", save_dir, "--json", "--where", "lr<0.05"])
    assert [r["id"] for r in doc["runs"]] == ["run-b"]

    doc = _json(capsys, ["show", "run-a", "-s", save_dir, "--json"])
    _check_run({k: v for k, v in doc.items() if k != "meta"})
    assert isinstance(doc["meta"], dict) and doc["metrics"]["loss"]["last"] == 0.1

    doc = _json(capsys, ["compare", "run-a", "run-b", "-s", save_dir, "--json"])
    assert set(doc) == {"runs", "differ"} and doc["differ"] == ["lr"]
    assert [r["id"] for r in doc["runs"]] == ["run-a", "run-b"]


def test_the_edit_commands_print_the_runs_they_changed_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = _store(tmp_path)
    doc = _json(capsys, ["tag", "run-a", "+best", "-t", "-s", save_dir, "--json"])
    assert set(doc) == {"runs"} and doc["runs"][0]["tags"] == ["best"]
    _check_run(doc["runs"][0], metrics=False)
    assert _json(capsys, ["note", "run-a", "hi", "-s", save_dir, "--json"])["runs"][0]["note"] == "hi"
    assert _json(capsys, ["rename", "run-a", "new", "-s", save_dir, "--json"])["runs"][0]["name"] == "new"
    assert _json(capsys, ["archive", "run-a", "-s", save_dir, "--json"])["runs"][0]["archived"] is True
    assert _json(capsys, ["unarchive", "new", "-s", save_dir, "--json"])["runs"][0]["archived"] is False
    doc = _json(capsys, ["rm", "run-b", "-s", save_dir, "--json", "--yes"])
    assert set(doc) == {"deleted", "runs", "objects", "bytes"} and doc["deleted"] is True
    assert set(doc["runs"][0]) == {"project", "id", "name", "status", "objects", "bytes"}
