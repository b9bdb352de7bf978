"""``du``, ``gc`` and ``import`` as a person sees them in a terminal 80 and 120 columns wide."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from lightning_tracker import TrackerLogger
from lightning_tracker.cli.terminal import fmt_bytes
from lightning_tracker.manage.du import disk_usage
from lightning_tracker.read.store import Store
from tests.cli import test_help
from tests.helpers import in_terminal

COLUMNS = [80, 120]


def _screen(raw: bytes) -> str:
    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", b"", raw).decode().replace("\r", "")


def _run(save_dir: str, project: str, images: int) -> str:
    logger = TrackerLogger(save_dir, name=project)
    logger.log_metrics({"loss": 1.0}, step=0)
    for i in range(images):
        logger.log_image("samples", [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)], step=i)
    logger.finalize("success")
    return logger.version


@pytest.mark.parametrize("columns", COLUMNS)
def test_du_in_a_terminal_fits_the_width_and_lists_every_run_largest_first(tmp_path: Path, columns: int) -> None:
    save_dir = str(tmp_path / "runs")
    small, big = _run(save_dir, "vision", 1), _run(save_dir, "vision", 4)
    other = _run(save_dir, "text", 0)
    status, raw = in_terminal(["du", "-s", save_dir], columns)
    screen = _screen(raw)
    assert status == 0, screen
    lines = screen.splitlines()
    usage = disk_usage(Store(save_dir))
    assert lines[0] == f"{fmt_bytes(usage.bytes)} in {usage.files} files, 2 projects in {save_dir}"
    table = [line for line in lines if line.split() and line.split()[0] in ("run", small, big, other)]
    assert len(table) == 5 and all(len(line) <= columns for line in table), screen
    rows = {
        line.split()[0]: line.split()[1:] for line in lines if line.split() and line.split()[0] in (small, big, other)
    }
    assert list(rows) == [big, small, other]  # projects largest first, then runs largest first
    vision = usage.projects[0]
    assert rows[big][:2] == fmt_bytes(vision.runs[0].bytes).split()  # total, as du counted it
    assert "run" in screen and "metrics" in screen and "media" in screen


@pytest.mark.parametrize("columns", COLUMNS)
def test_gc_in_a_terminal_says_each_removal_and_the_bytes_freed(tmp_path: Path, columns: int) -> None:
    save_dir = str(tmp_path / "runs")
    run_id = _run(save_dir, "vision", 1)
    orphan = Path(save_dir) / "vision" / run_id / "models" / "epoch=9-step=99.ckpt"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x" * 2500)
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))  # older than the hour a recent run's files keep
    status, raw = in_terminal(["gc", "-s", save_dir, "--dry-run", "--grace", "3600"], columns)
    screen = " ".join(_screen(raw).split())  # the terminal wraps long lines
    assert status == 0 and orphan.exists(), screen
    assert f"would remove {orphan} (2.5 KB, unreferenced checkpoint)" in screen, screen
    assert screen.endswith("would remove 1 item, would free 2.5 KB"), screen
    status, raw = in_terminal(["gc", "-s", save_dir, "--grace", "3600"], columns)
    screen = " ".join(_screen(raw).split())
    assert status == 0 and not orphan.exists(), screen
    assert f"removed {orphan} (2.5 KB, unreferenced checkpoint)" in screen and screen.endswith("freed 2.5 KB"), screen
    status, raw = in_terminal(["gc", "-s", save_dir, "--grace", "3600"], columns)
    assert status == 0 and " ".join(_screen(raw).split()) == f"no garbage in {save_dir}"


@pytest.mark.parametrize("columns", COLUMNS)
@pytest.mark.parametrize("command", ["du", "gc", "import"])
def test_du_gc_and_import_help_has_a_description_and_examples_that_parse(command: str, columns: int) -> None:
    test_help.test_each_subcommand_help_has_a_description_and_examples(command, columns)


@pytest.mark.parametrize("columns", COLUMNS)
def test_import_in_a_terminal_says_what_each_folder_became(tmp_path: Path, columns: int) -> None:
    from tests.manage.test_import_tensorboard import _writer_logs

    logdir, save_dir = tmp_path / "tb", str(tmp_path / "runs")
    _writer_logs(logdir)
    status, raw = in_terminal(["import", "tensorboard", str(logdir), "-s", save_dir, "-p", "old"], columns)
    screen = " ".join(_screen(raw).split())
    (run_id,) = Store(save_dir).run_ids("old")
    said = f"✓ writer → old/{run_id}: 4 points, 3 images, 3 texts, 6 histograms, 3 hyperparameters"
    assert status == 0 and said in screen and screen.endswith(f"1 run imported into {save_dir} (project old)"), screen
    status, raw = in_terminal(["import", "tensorboard", str(logdir), "-s", save_dir, "-p", "old"], columns)
    screen = " ".join(_screen(raw).split())
    assert status == 0 and f"writer: already imported as old/{run_id}" in screen and "0 runs imported" in screen
