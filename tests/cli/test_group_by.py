"""``lightning-tracker runs --group-by``: one row per group, in a pipe and in terminals 80 and 120 columns wide."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from tests.helpers import in_terminal
from tests.read.test_groups import seeded_sweep

COLUMNS = [80, 120]


def _screen(raw: bytes) -> str:
    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", b"", raw).decode().replace("\r", "")


def _opts(options: Any) -> list[str]:
    return ["--storage-options", json.dumps(options)] if options else []


def _rows(out: str, first: str) -> list[list[str]]:
    """The rows of a piped table whose first cell starts with ``first``, split on two spaces or more."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.strip().startswith(first)]


def test_group_by_prints_one_row_per_group_with_mean_std_and_best_run(
    store_target: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    ids = seeded_sweep(save_dir, options)
    assert main(["runs", "-s", save_dir, "-p", "sweep", "--group-by", "group", *_opts(options)]) == 0
    out = capsys.readouterr().out
    assert "2 groups of 6 runs in" in out and "\x1b" not in out, "a pipe gets plain text"
    header = next(line for line in out.splitlines() if line.startswith("group "))
    assert header.split() == ["group", "runs", "best", "val/acc", "train/loss"], "the monitored metric first"
    rows = _rows(out, "lr=")
    assert [r[:2] for r in rows] == [["lr=0.01", "3"], ["lr=0.02", "3"]]
    assert ids["lr0.01-s2"].startswith(rows[0][2]) and ids["lr0.02-s2"].startswith(rows[1][2])
    assert [r[3] for r in rows] == ["0.61 ± 0.01", "0.71 ± 0.01"]
    assert "best: the run with the highest val/acc (the runs' monitored metric)" in out
    grouped = Store(save_dir, options).table("sweep", group_by="group")
    assert grouped["mean.val/acc"].round(4).tolist() == [0.61, 0.71], "the CLI prints what the API returns"


def test_group_by_works_with_where_sort_and_columns(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ids = seeded_sweep(str(tmp_path))
    argv = ["runs", "-s", str(tmp_path), "-p", "sweep", "-g", "lr,optimizer"]
    assert main([*argv, "--where", "seed<2", "--sort=-val/acc", "-c", "val/acc"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("lr "))
    assert header.split() == ["lr", "optimizer", "runs", "best", "val/acc"]
    rows = _rows(out, "0.0")
    assert [r[:3] for r in rows] == [["0.02", "sgd", "2"], ["0.01", "sgd", "2"]], "highest mean val/acc first"
    assert ids["lr0.02-s1"].startswith(rows[0][3]), "--where left seeds 0 and 1: seed 1 is best"
    assert rows[0][4] == "0.705 ± 0.007071"
    assert "best: the run with the highest val/acc (--sort)" in out
    assert main([*argv, "--sort", "train/loss"]) == 0
    out = capsys.readouterr().out
    assert ids["lr0.01-s2"].startswith(_rows(out, "0.0")[1][3]) and "lowest train/loss (--sort)" in out
    assert main([*argv, "--sort=-lr"]) == 0  # by a group key: the best run stays the monitored metric's
    out = capsys.readouterr().out
    assert [r[0] for r in _rows(out, "0.0")] == ["0.02", "0.01"] and "highest val/acc (the runs' monitored" in out


def test_group_by_mistakes_are_usage_errors_that_name_the_option(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded_sweep(str(tmp_path))
    argv = ["runs", "-s", str(tmp_path), "-p", "sweep"]
    assert main([*argv, "--group-by", "sed"]) == 2
    assert "--group-by='sed' names no field, hyperparameter or metric of these runs; did you mean seed?" in (
        capsys.readouterr().err
    )
    assert main([*argv, "-g", "lr", "--sort", "seed"]) == 2
    assert "--sort='seed' with --group-by sorts groups by a metric's mean, a group key (lr)" in capsys.readouterr().err
    assert main([*argv, "-g", "lr", "-c", "seed"]) == 2
    assert "--columns: 'seed' is not a metric of these runs" in capsys.readouterr().err


def _wide_sweep(save_dir: str) -> None:
    """Two groups of two runs, each with eight metrics: wider than 80 columns."""
    for group in ("baseline", "wider-model"):
        for seed in range(2):
            logger = TrackerLogger(save_dir, name="wide", group=group, tensorboard=False)
            logger.log_hyperparams({"seed": seed})
            logger.log_metrics({f"val/metric_{k}": 0.123456 * (k + 1) + seed / 7 for k in range(8)}, step=0)
            logger.finalize("success")


@pytest.mark.parametrize("columns", COLUMNS)
def test_group_by_fits_the_terminal_and_says_what_it_left_out(tmp_path: Any, columns: int) -> None:
    _wide_sweep(str(tmp_path))
    status, raw = in_terminal(["runs", "-s", str(tmp_path), "-p", "wide", "--group-by", "group"], columns)
    screen = _screen(raw)
    assert status == 0, screen
    lines = screen.split("groups of 4 runs in", 1)[1].splitlines()[1:]  # after the progress bar and the title
    assert all(len(line) <= columns for line in lines), "no line is wider than the terminal"
    table = [line for line in lines if line.lstrip().startswith(("baseline", "wider-model"))]
    assert len(table) == 2 and all("±" in line for line in table), "whole cells: mean ± std"
    header = next(line for line in lines if line.lstrip().startswith("group "))
    shown = [k for k in range(8) if f"val/metric_{k}" in header]
    assert shown == list(range(len(shown))) and shown, "metrics kept in order, the last ones left out"
    if len(shown) < 8:
        assert f"{8 - len(shown)} columns did not fit" in screen and "widen the terminal" in screen
    assert "no run is judged best" in screen and "--sort KEY" in screen
    assert len(shown) < 8 if columns == 80 else len(shown) >= 3


def test_group_by_json_prints_the_groups_as_the_api_returns_them(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seeded_sweep(str(tmp_path))
    argv = ["runs", "-s", str(tmp_path), "-p", "sweep", "-g", "lr", "--sort=-val/acc", "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["group_by"] == ["config.lr"] and document["best"]["column"] == "summary.val/acc"
    groups = document["groups"]
    assert [(g["keys"]["config.lr"], g["runs"]) for g in groups] == [(0.02, 3), (0.01, 3)], "highest mean first"
    assert groups[0]["best_id"] == ids["lr0.02-s2"]
    assert sorted(groups[0]["run_ids"]) == sorted(ids[f"lr0.02-s{s}"] for s in range(3))
    grouped = Store(str(tmp_path)).table("sweep", group_by="lr", best="-val/acc")
    expected = grouped.set_index("config.lr").loc[0.02]
    assert groups[0]["metrics"]["val/acc"]["mean"] == pytest.approx(expected["mean.val/acc"])
    assert groups[0]["metrics"]["val/acc"]["std"] == pytest.approx(expected["std.val/acc"])
