"""``Run.rollups``: the stored rollups plus the live tail, read like every point folded, on every store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format import rollups
from lightning_tracker.format.layout import METRICS_DIR
from lightning_tracker.writers.chunks import COMPACT_FANIN


def _folded(run: Any) -> pd.DataFrame:
    """What every point of the run gives, folded by the same function."""
    points = pa.Table.from_pandas(run.metrics(wide=False), preserve_index=False)
    return rollups.from_points(points).to_pandas().astype({"key": str})


def _log(url: str, options: Any, steps: range, spool: Path, *, finalize: bool = True, value: float = 1.0) -> Any:
    logger = TrackerLogger(
        url, name="p", version="r1", storage_options=options, spool_dir=spool, tensorboard=False, flush_interval=300
    )
    for step in steps:
        logger.log_metrics({"loss": 500.0 if step == 1234 else value + step % 7, "acc": step / 10}, step=step)
        if step % 40 == 0:
            logger.flush()
    if finalize:
        logger.finalize("success")
    else:
        logger.flush()
    return logger


def test_a_running_run_reads_its_rollup_and_live_tail_as_every_point_folded(
    store_target: tuple[str, Any], tmp_path: Path
) -> None:
    save_dir, options = store_target
    logger = _log(save_dir, options, range(2000), tmp_path / "spool", finalize=False)
    assert logger._writer is not None and logger._writer.upload(timeout=60), "the mirror published what was written"
    storage = Store(save_dir, options).storage
    stored = storage.listdir(f"p/r1/{rollups.ROLLUPS_DIR}")
    plan = rollups.plan(storage.listdir(f"p/r1/{METRICS_DIR}"), stored)
    assert plan.rollups and plan.raw, f"a rollup and a live tail: {plan}"
    run = Store(save_dir, options).run("r1")
    got = run.rollups()
    pd.testing.assert_frame_equal(got, _folded(run))
    assert got[got["key"] == "loss"]["max"].max() == 500.0 and got["count"].sum() == 4000
    logger.finalize("success")


def test_a_run_without_rollups_reads_its_points_folded_alike(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _log(save_dir, None, range(3000), tmp_path / "spool")
    run = Store(save_dir).run("r1")
    with_rollups = run.rollups()
    for name in os.listdir(tmp_path / "runs" / "p" / "r1" / rollups.ROLLUPS_DIR):  # a store written before rollups
        os.remove(tmp_path / "runs" / "p" / "r1" / rollups.ROLLUPS_DIR / name)
    pd.testing.assert_frame_equal(Store(save_dir).run("r1").rollups(), with_rollups)
    assert len(with_rollups[with_rollups["key"] == "loss"]) <= rollups.MAX_BUCKETS


def test_a_resumed_run_that_logs_steps_again_reads_their_last_values(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _log(save_dir, None, range(1000), tmp_path / "spool")
    _log(save_dir, None, range(500, 1500), tmp_path / "spool", value=-50.0)  # resumed from an older checkpoint
    run = Store(save_dir).run("r1")
    got = run.rollups(["loss"])
    pd.testing.assert_frame_equal(got, _folded(run)[lambda f: f["key"] == "loss"].reset_index(drop=True))
    # steps 500..999 hold the second session's values only: no bucket there keeps a value of the first
    again = got[(got["first_step"] >= 512) & (got["last_step"] < 1000)]
    assert got["count"].sum() == 1500 and len(again) and (again["max"] < 0).all()


def test_a_damaged_rollup_is_read_from_its_chunks_instead(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _log(save_dir, None, range(2000), tmp_path / "spool")
    folder = tmp_path / "runs" / "p" / "r1" / rollups.ROLLUPS_DIR
    expected = Store(save_dir).run("r1").rollups()
    (name,) = os.listdir(folder)
    (folder / name).write_bytes(b"not parquet")
    run = Store(save_dir).run("r1")
    pd.testing.assert_frame_equal(run.rollups(skip_damaged=True), expected)
    assert any("rollup" in p and "damaged" in p for p in run.problems)


@pytest.mark.parametrize(
    ("chunks", "stored", "expected"),
    [
        # a compaction merged across the edge of the older rollup: only the newer one is used
        (
            ["000-w-00000000-00000255.parquet"],
            ["000-w-00000000-00000239.parquet"],
            ([], ["000-w-00000000-00000255.parquet"]),
        ),
        (
            ["000-w-00000000-00000015.parquet", "000-w-00000016-00000016.parquet", "001-v-00000000-00000000.parquet"],
            ["000-w-00000000-00000015.parquet", "001-v-00000000-00000000.parquet", "002-u-00000000-00000003.parquet"],
            (
                ["000-w-00000000-00000015.parquet", "001-v-00000000-00000000.parquet"],
                ["000-w-00000016-00000016.parquet"],
            ),
        ),
        # a chunk compaction left behind (covered) does not count against a rollup
        (
            ["000-w-00000000-00000015.parquet", "000-w-00000003-00000003.parquet"],
            ["000-w-00000000-00000015.parquet"],
            (["000-w-00000000-00000015.parquet"], []),
        ),
    ],
)
def test_the_rollup_rule_uses_a_rollup_only_where_no_live_chunk_straddles_it(
    chunks: list[str], stored: list[str], expected: tuple[list[str], list[str]]
) -> None:
    assert rollups.plan(chunks, stored) == rollups.Plan(*expected)


def test_rollups_combine_exactly_across_widths() -> None:
    points = pa.table(
        {"step": list(range(COMPACT_FANIN * 100)), "time": [0.0] * 1600, "key": ["a"] * 1600, "value": [1.0] * 1600}
    )
    whole = rollups.from_points(points, 64)
    parts = rollups.combine(
        [rollups.from_points(points.slice(0, 700), 64), rollups.from_points(points.slice(700), 64)], 64
    )
    assert parts.equals(whole) and whole.column("width")[0].as_py() == 32
