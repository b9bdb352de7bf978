"""``tag``, ``note``, ``rename``, ``archive`` and ``unarchive`` from the command line: what they change
shows in ``runs``, ``--where``, ``show`` and the report; bad input is one line with the usual statuses.

Real stores (a local folder, a moto S3 server on 127.0.0.1), the real ``main``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.report.data import build_payload
from tests.helpers import local_or_s3


def _store(save_dir: str, options: dict[str, Any] | None, *versions: str) -> None:
    for version in versions:
        logger = TrackerLogger(save_dir, name="p", version=version, storage_options=options, tags=["baseline"])
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")


def _cli(save_dir: str, options: dict[str, Any] | None, *argv: str) -> int:
    return main([*argv, "-s", save_dir, *(["--storage-options", json.dumps(options)] if options else [])])


@pytest.mark.parametrize("target", ["local", "s3"])
def test_edits_from_the_command_line_show_in_runs_where_show_and_the_report(
    target: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    _store(save_dir, options, "run-a", "run-b")
    assert _cli(save_dir, options, "tag", "run-a", "+best", "-baseline") == 0
    assert _cli(save_dir, options, "note", "run-a", "lowest loss") == 0
    assert _cli(save_dir, options, "rename", "run-a", "the-best-one") == 0
    capsys.readouterr()

    assert _cli(save_dir, options, "runs", "-p", "p", "--where", "tags=best") == 0
    out = capsys.readouterr().out
    assert "the-best-one" in out and "run-b" not in out
    assert _cli(save_dir, options, "show", "the-best-one") == 0  # found by its new name
    out = capsys.readouterr().out
    assert "lowest loss" in out and "best" in out and "baseline" not in out
    record = build_payload(Store(save_dir, options))["runs"][0]
    assert (record["name"], record["tags"], record["notes"]) == ("the-best-one", ["best"], "lowest loss")

    assert _cli(save_dir, options, "archive", "run-b") == 0
    capsys.readouterr()
    assert _cli(save_dir, options, "runs", "-p", "p") == 0
    assert "run-b" not in capsys.readouterr().out
    assert [r["id"] for r in build_payload(Store(save_dir, options))["runs"]] == ["run-a"]
    assert _cli(save_dir, options, "runs", "-p", "p", "--archived") == 0
    out = capsys.readouterr().out
    assert "run-b" in out and "run-a" not in out
    assert _cli(save_dir, options, "runs", "-p", "p", "--include-archived") == 0
    out = capsys.readouterr().out
    assert "run-b" in out and "run-a" in out
    assert _cli(save_dir, options, "unarchive", "run-b") == 0
    assert [r.id for r in Store(save_dir, options).runs("p")] == ["run-a", "run-b"]


def test_tag_takes_several_runs_and_a_removal_after_the_store_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    _store(save_dir, None, "run-a", "run-b")
    assert main(["tag", "run-a", "run-b", "-s", save_dir, "+x", "-baseline", "--remove-tag", "nope"]) == 0
    assert [r.tags for r in Store(save_dir).runs("p")] == [["x"], ["x"]]


@pytest.mark.parametrize(
    ("argv", "status", "said"),
    [
        (["tag", "run-a", "+two words"], 2, "+TAG='two words' is not a tag"),
        (["tag", "run-a"], 2, "tag needs tags to add (+TAG) or remove (-TAG)"),
        (["tag", "nope", "+x"], 2, "no run 'nope'"),
        (["tag", "run", "+x"], 2, "'run' matches 2 runs"),
        (["rename", "run-a", " "], 2, "name=' ' is not a run name"),
        (["note", "run-a", "bell\a"], 2, "holds control characters"),
        (["archive", "nope"], 2, "no run 'nope'"),
    ],
)
def test_bad_input_to_an_edit_is_one_line_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], status: int, said: str
) -> None:
    save_dir = str(tmp_path / "runs")
    _store(save_dir, None, "run-a", "run-b")
    capsys.readouterr()
    assert main([*argv, "-s", save_dir]) == status
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs" / "p" / ".edits").exists()
