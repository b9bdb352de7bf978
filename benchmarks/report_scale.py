"""The report and the dashboard over a big sweep: 1,000 runs x 10 metrics x 10,000 steps.

Builds a synthetic store in the published run format (``benchmarks/read_scale.py``'s
``write_run``: one finished session per run, one metrics chunk) and, for each run, its
rollup made by the writer's own function (:func:`lightning_tracker.format.rollups.from_points`,
stored under the name that covers the chunk), then times:

- ``write_report`` of every run: build time, file size, and what the page holds (drawn
  buckets, no points of any run: a report this big embeds rollups only);
- the live dashboard's first payload (``Dashboard.data``): time and size, its size as a
  browser downloads it (``Accept-Encoding: gzip``), and one zoomed range of one run from
  ``/api/points`` (raw points, only for the runs zoomed into);
- the same report over the first ``--baseline`` runs with their rollups removed (a store
  written before rollups: every point is read and folded), against the same runs with
  rollups.

Prints a Markdown table. Run: ``python benchmarks/report_scale.py [--runs N] [--quick]``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import pyarrow.parquet as pq

from benchmarks.read_scale import write_run
from lightning_tracker.format import rollups
from lightning_tracker.format.layout import METRICS_DIR
from lightning_tracker.format.schemas import with_chunk_version
from lightning_tracker.read.store import Store
from lightning_tracker.report import Dashboard, write_report

METRICS, STEPS = 10, 10_000


def add_rollup(run_dir: str) -> None:
    """The rollup of the run's chunk, as the writer stores it at finalize."""
    (name,) = os.listdir(os.path.join(run_dir, METRICS_DIR))
    table = rollups.from_points(pq.read_table(os.path.join(run_dir, METRICS_DIR, name)))
    os.makedirs(os.path.join(run_dir, rollups.ROLLUPS_DIR), exist_ok=True)
    pq.write_table(with_chunk_version(table), os.path.join(run_dir, rollups.ROLLUPS_DIR, name), compression="zstd")


def make_store(root: str, runs: int, steps: int) -> str:
    rng = np.random.default_rng(0)
    for i in range(runs):
        write_run(root, "bench", i, METRICS, steps, rng)
        add_rollup(os.path.join(root, "bench", f"20260101-000000-{i:08d}"))
    return root


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def cpu_timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds (this process, every thread): on a shared machine the CPU time says more."""
    cpu = time.process_time()
    wall, out = timed(fn)
    return wall, time.process_time() - cpu, out


def embedded(path: str) -> dict[str, Any]:
    """The payload a report file embeds (gzip, Base64), as the page reads it."""
    with open(path, encoding="utf-8") as f:
        page = f.read()
    match = re.search(r'<script id="lt-data" type="application/gzip-base64">([^<]*)</script>', page)
    assert match is not None, "the report embeds its data"
    return json.loads(gzip.decompress(base64.b64decode(match[1])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in the sweep (default 1,000)")
    parser.add_argument("--baseline", type=int, default=100, help="runs of the with/without-rollups comparison")
    parser.add_argument("--quick", action="store_true", help="100 runs of 1,000 steps, for a smoke test")
    parser.add_argument("--store", help="keep the synthetic store in this folder, and reuse it when it is there")
    args = parser.parse_args()
    runs, steps = (100, 1000) if args.quick else (args.runs, STEPS)
    what = f"{runs:,} runs x {METRICS} metrics x {steps:,} steps"
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or os.path.join(tmp, "runs")
        if not os.path.isdir(root):
            made, _ = timed(lambda: make_store(root, runs, steps))
            print(f"store of {what} written in {made:.0f} s", file=sys.stderr)
        out = os.path.join(tmp, "report.html")
        seconds, cpu, _ = cpu_timed(lambda: write_report(Store(root), out))
        size = os.path.getsize(out) / 1e6
        payload = embedded(out)
        buckets = sum(len(s["y"]) for series in payload["series"].values() for s in series.values())
        assert payload["zoom"] == "rollups" and not payload["points"], "no points of any run"
        assert sum(s["n"] for series in payload["series"].values() for s in series.values()) == runs * METRICS * steps
        rows += [
            (f"report, {what}: build", f"{seconds:.2f} s ({cpu:.2f} s CPU)", "< 10 s", _verdict(seconds, 10)),
            ("report file size", f"{size:.1f} MB", "< 15 MB", _verdict(size, 15)),
            (
                "report: what it draws",
                f"{buckets:,} buckets ({payload['line_points']} per line at most), 0 raw points",
                "no raw points",
                "ok",
            ),
        ]
        rows += dashboard_rows(root, what, steps)
        rows += baseline_rows(root, tmp, min(args.baseline, runs))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr)
    print("| measurement | result | target | |")
    print("|---|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row if not args.quick else (*row[:2], "—", "")) + " |")
    return 0 if args.quick or all(r[3] != "missed" for r in rows) else 1


def dashboard_rows(root: str, what: str, steps: int) -> list[tuple[str, str, str, str]]:
    """The dashboard's first payload, and one zoomed range of one run (its points)."""
    dash = Dashboard(Store(root), port=0, refresh=3600).start()
    try:
        first, cpu, body = cpu_timed(dash.data)
        # what a browser downloads: the same payload, compressed (built above, so this is the compression)
        asked = urllib.request.Request(f"{dash.url}api/data", headers={"Accept-Encoding": "gzip"})
        packing, answer = timed(lambda: urllib.request.urlopen(asked))
        packed = answer.read()
        encoding = answer.headers.get("Content-Encoding") or "identity"
        assert (gzip.decompress(packed) if encoding == "gzip" else packed) == body, "the same payload"
        run = "bench/20260101-000000-00000000"
        low, high = steps * 4 // 10, steps * 5 // 10 - 1
        url = f"{dash.url}api/points?run={run}&key=metric_0&from={low}&to={high}"
        zoom, answer = timed(lambda: urllib.request.urlopen(url).read())
        assert json.loads(answer)["step"] == list(range(low, high + 1)), "the points themselves"
    finally:
        dash.stop()
    return [
        (f"dashboard, {what}: first payload", f"{first:.2f} s ({cpu:.2f} s CPU)", "< 10 s", _verdict(first, 10)),
        ("dashboard first payload size (JSON, uncompressed)", f"{len(body) / 1e6:.1f} MB", "—", ""),
        (
            "dashboard first payload on the wire (Accept-Encoding: gzip)",
            f"{len(packed) / 1e6:.1f} MB ({encoding}, sent in {packing:.2f} s)",
            "—",
            "",
        ),
        (f"dashboard zoom: {high - low + 1:,} points of one run (api/points)", f"{zoom * 1000:.0f} ms", "—", ""),
    ]


def baseline_rows(root: str, tmp: str, runs: int) -> list[tuple[str, str, str, str]]:
    """The same report over ``runs`` runs with and without their rollups (an old store)."""
    timings = {}
    for label in ("with rollups", "without rollups"):
        sub = os.path.join(tmp, f"sub-{label.split()[0]}")
        for i in range(runs):
            name = f"20260101-000000-{i:08d}"
            shutil.copytree(os.path.join(root, "bench", name), os.path.join(sub, "bench", name))
            if label == "without rollups":
                shutil.rmtree(os.path.join(sub, "bench", name, rollups.ROLLUPS_DIR))
        timings[label], _ = timed(lambda sub=sub: write_report(Store(sub), os.path.join(tmp, "baseline.html")))
    return [(f"report, {runs} runs, {label}", f"{seconds:.2f} s", "—", "") for label, seconds in timings.items()]


def _verdict(value: float, target: float | None) -> str:
    return "" if target is None else ("ok" if value < target else "missed")


if __name__ == "__main__":
    sys.exit(main())
