"""Cumulative counters drawn as rates, byte series marked as bytes (lightning_tracker/report/data.py)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psutil

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.integration.callbacks.system import _Sampler
from lightning_tracker.report import build_payload
from lightning_tracker.report.data import COUNTERS, is_counter


def test_the_counters_are_the_cumulative_ones_system_monitor_records() -> None:
    byte_keys = {k for k in _Sampler(None).sample() if k.endswith("_bytes")}
    present = {k for k in COUNTERS if (psutil.disk_io_counters() if "/disk" in k else psutil.net_io_counters())}
    assert {k for k in byte_keys if is_counter(k)} == present, "bytes since fitting started: drawn as rates"
    assert byte_keys - present == {"system/ram_used_bytes", "system/process_rss_bytes"}, "levels: drawn as they are"


def test_payload_draws_counters_as_bytes_per_second_and_marks_byte_units(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", tensorboard=False)
    for step in range(6):
        logger.log_metrics(
            {"system/net_recv_bytes": 1000.0 * step * step, "system/ram_used_bytes": 2e9, "loss": 1.0}, step=step
        )
        time.sleep(0.02)
    logger.finalize("success")
    run = Store(save_dir).run(logger.version)
    key = f"{run.project}/{run.id}"
    series = build_payload(Store(save_dir))["series"][key]
    rows = run.metrics(["system/net_recv_bytes"], wide=False).sort_values("time")
    expected = np.diff(rows["value"].to_numpy()) / np.diff(rows["time"].to_numpy())
    recv = series["system/net_recv_bytes"]
    assert recv["unit"] == "B/s" and recv["step"].tolist() == [1, 2, 3, 4, 5], "no rate before the second sample"
    assert np.allclose(recv["y"], expected)
    assert series["system/ram_used_bytes"]["unit"] == "B" and "unit" not in series["loss"]


def test_the_page_writes_numbers_whole() -> None:
    import json
    import shutil
    import subprocess
    from pathlib import Path

    import pytest

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    script = Path(__file__).resolve().parents[2] / "lightning_tracker" / "report" / "assets" / "format.js"
    values = [1200.4, 1000.3, 2999.96, 0.5, 0.123456, 123456.7, 3, 0.0001234, -12.5]
    code = f"global.window = {{}}; require({str(script)!r}); console.log(JSON.stringify({values!r}.map(window.LT.fmt)))"
    shown = json.loads(subprocess.run([node, "-e", code], capture_output=True, text=True, check=True).stdout)
    assert shown == ["1200", "1000", "3000", "0.5", "0.1235", "1.235e+5", "3", "0.0001234", "-12.5"]
