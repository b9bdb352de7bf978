"""How the read side scales: runs tables of many runs, a long history, a large report.

Builds synthetic stores in the published run format, straight from
:mod:`lightning_tracker.format` (``run.json`` with the flat hyperparameters and the
summary, ``config.json``, one Parquet metric chunk per run), then times:

- ``Store.table()`` of 1,000 and 10,000 local runs, and of 1,000 runs on a moto S3
  server this script starts on 127.0.0.1;
- ``Run.metrics()`` of one run with 1,000,000 points, into pandas;
- ``write_report`` of 100 runs with 10 metrics x 10,000 steps (file size too);
- the live dashboard's data over the same runs: the first build, a refresh with nothing
  new, and a refresh after one run got a new chunk.

Prints a Markdown table. Run: ``python benchmarks/read_scale.py [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import new_config, new_run
from lightning_tracker.format.layout import CONFIG_FILE, METRICS_DIR, RUN_FILE, chunk_name
from lightning_tracker.format.schemas import METRICS, PARQUET_OPTIONS
from lightning_tracker.format.summary import summarize
from lightning_tracker.read.store import Store
from lightning_tracker.report import Dashboard, write_report


def write_chunk(
    run_dir: str, seq: int, keys: list[str], steps: np.ndarray, start: float, rng: np.random.Generator
) -> pa.Table:
    """One metrics chunk (flush ``seq`` of session 0): every key at every step of ``steps``."""
    n = len(steps)
    values = [np.exp(-steps / (n / 3 + 1)) * (1 + k) + rng.normal(0, 0.01, n) for k in range(len(keys))]
    table = pa.table(
        {
            "step": np.tile(steps, len(keys)).astype(np.int64),
            "time": np.tile(start + steps * 0.1, len(keys)),
            "key": pa.DictionaryArray.from_arrays(np.repeat(np.arange(len(keys), dtype=np.int32), n), keys),
            "value": np.concatenate(values) if values else np.zeros(0),
        },
        schema=METRICS,
    )
    os.makedirs(os.path.join(run_dir, METRICS_DIR), exist_ok=True)
    pq.write_table(table, os.path.join(run_dir, METRICS_DIR, chunk_name(0, seq, seq)), **PARQUET_OPTIONS[METRICS])
    return table


def write_run(root: str, project: str, index: int, metrics: int, steps: int, rng: np.random.Generator) -> None:
    """One finished run in the documented layout, with ``metrics`` x ``steps`` points in one chunk."""
    run_id = f"20260101-000000-{index:08d}"
    run_dir = os.path.join(root, project, run_id)
    start = 1_767_225_600.0 + index
    width, depth = int(rng.choice([32, 64, 128])), int(rng.integers(2, 8))
    lr, optimizer = float(10 ** rng.uniform(-4, -1)), str(rng.choice(["sgd", "adam"]))
    flat = {"lr": lr, "model.width": width, "model.depth": depth, "optimizer": optimizer, "seed": index}
    # one chunk, as a finalized session leaves it
    table = write_chunk(run_dir, 0, [f"metric_{k}" for k in range(metrics)], np.arange(steps), start, rng)
    config = new_config()
    config.update(
        nested={"lr": lr, "model": {"width": width, "depth": depth}, "optimizer": optimizer, "seed": index}, flat=flat
    )
    run = new_run(
        run_id, project, f"run-{index}", group=None, tags=["bench"], notes=None, heartbeat_interval_s=2.0, url=run_dir
    )
    end = start + steps * 0.1
    run.update(status="finished", start_time=start, end_time=end, heartbeat=end, params=flat, summary=summarize(table))
    for name, doc in ((CONFIG_FILE, config), (RUN_FILE, run)):
        with open(os.path.join(run_dir, name), "wb") as f:
            f.write(dumps(doc))


def make_store(root: str, runs: int, metrics: int = 3, steps: int = 10) -> str:
    rng = np.random.default_rng(0)
    for i in range(runs):
        write_run(root, "bench", i, metrics, steps, rng)
    return root


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def s3_store(local_root: str) -> tuple[Any, str, dict[str, Any]]:
    import s3fs

    from benchmarks._moto import MotoProcess

    server = MotoProcess()
    options = {"key": "bench", "secret": "bench", "endpoint_url": server.endpoint}
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    fs.mkdir("bench")
    fs.put(f"{local_root}/bench", "bench/exp/", recursive=True)
    return server, "s3://bench/exp", options


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, for a smoke test")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, target in ((1000 // scale, None), (10_000 // scale, 3.0)):
            root = make_store(os.path.join(tmp, f"runs{n}"), n)
            seconds, table = timed(lambda root=root: Store(root).table())
            assert len(table) == n
            rows.append(
                (
                    f"runs table, {n:,} local runs",
                    f"{seconds:.2f} s",
                    f"< {target:g} s" if target else "—",
                    _verdict(seconds, target),
                )
            )
        n = 1000 // scale
        server, url, options = s3_store(os.path.join(tmp, f"runs{n}"))
        try:
            seconds, table = timed(lambda: Store(url, options).table())
            assert len(table) == n
            rows.append((f"runs table, {n:,} runs on S3 (moto)", f"{seconds:.2f} s", "< 10 s", _verdict(seconds, 10)))
        finally:
            server.stop()

        points = 1_000_000 // scale
        long_root = os.path.join(tmp, "long")
        write_run(long_root, "bench", 0, 10, points // 10, np.random.default_rng(1))
        run = Store(long_root).runs()[0]
        seconds, frame = timed(run.metrics)
        assert frame.shape == (points // 10, 12)
        rows.append((f"full history, {points:,} points into pandas", f"{seconds:.2f} s", "< 1 s", _verdict(seconds, 1)))

        report_root = make_store(os.path.join(tmp, "report"), 100 // scale, metrics=10, steps=10_000)
        out = os.path.join(tmp, "report.html")
        seconds, _ = timed(lambda: write_report(Store(report_root), out))
        size = os.path.getsize(out) / 1e6
        rows.append(
            (
                f"report, {100 // scale} runs x 10 metrics x 10,000 steps",
                f"{seconds:.2f} s",
                "< 10 s",
                _verdict(seconds, 10),
            )
        )
        rows.append(("report file size", f"{size:.1f} MB", "< 15 MB", _verdict(size, 15)))
        rows += dashboard_rows(report_root, 100 // scale)
    print("| measurement | result | target | |")
    print("|---|---:|---:|---|")
    for row in rows:
        # the targets are for the full sizes; a --quick run only shows that everything works
        print("| " + " | ".join(row if not args.quick else (*row[:2], "—", "")) + " |")
    return 0 if args.quick or all(r[3] != "missed" for r in rows) else 1


def dashboard_rows(root: str, runs: int) -> list[tuple[str, str, str, str]]:
    """The live dashboard's data: a first build, a refresh with nothing new, one with one new chunk."""
    dash = Dashboard(Store(root), port=0, refresh=1e-9)  # every data() call is a refresh
    try:
        first, body = timed(dash.data)
        again = min(timed(dash.data)[0] for _ in range(5))
        run_dir = os.path.join(root, "bench", "20260101-000000-00000000")
        write_chunk(run_dir, 1, ["metric_0"], np.arange(10_000, 10_100), 1_767_225_600.0, np.random.default_rng(2))
        one_new, after = timed(dash.data)
        assert len(after) > len(body) // 2 and after != body
    finally:
        dash.stop()
    what = f"dashboard refresh, {runs} runs x 10 metrics x 10,000 steps"
    return [
        (f"{what}: first build", f"{first:.2f} s", "< 10 s", _verdict(first, 10)),
        (f"{what}: nothing new", f"{again * 1000:.0f} ms", "< 100 ms", _verdict(again, 0.1)),
        (f"{what}: one run with a new chunk", f"{one_new * 1000:.0f} ms", "—", ""),
    ]


def _verdict(value: float, target: float | None) -> str:
    return "" if target is None else ("ok" if value < target else "missed")


if __name__ == "__main__":
    sys.exit(main())
