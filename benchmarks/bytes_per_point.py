"""How many bytes on disk does one logged scalar cost? Noisy float metrics, as a run leaves them.

A run logs ``--keys`` metrics of Gaussian noise (a loss-like random walk plus noise, the
worst case for compression: no two values alike) at every one of ``--steps`` steps
through ``TrackerLogger.log_metrics``, then finalizes. The table gives the bytes of the
``metrics/`` chunks per point (the format: step, time, key and a float64 value per
point), and of the TensorBoard event files per point for comparison (TensorBoard keeps a
float32 per point). Only the public API is used, so the same script measures any
version of the package.

Usage: python benchmarks/bytes_per_point.py [--keys 10] [--steps 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from lightning_tracker import TrackerLogger


def _size(folder: str, select: str = "") -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files if f.startswith(select))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 0.01, size=(args.steps, args.keys)), axis=0) + rng.normal(
        0, 1, (args.steps, args.keys)
    )
    names = [f"train/metric_{i}" for i in range(args.keys)]
    with tempfile.TemporaryDirectory() as tmp:
        logger = TrackerLogger(tmp, name="bench", flush_interval=0.5)
        started = time.perf_counter()
        for step in range(args.steps):
            row = walk[step]
            logger.log_metrics({name: float(row[i]) for i, name in enumerate(names)}, step=step)
        logger.finalize("success")
        elapsed = time.perf_counter() - started
        run_dir = logger.log_dir
        points = args.keys * args.steps
        chunks = _size(os.path.join(run_dir, "metrics"))
        events = _size(run_dir, "events.out.tfevents")
    print(
        f"Bytes on disk per logged scalar: {args.keys} noisy float metrics × {args.steps:,} steps "
        f"= {points:,} points, logged in {elapsed:.1f} s\n"
    )
    print("| files | bytes | bytes per point |")
    print("|---|---:|---:|")
    print(f"| `metrics/*.parquet` (ours) | {chunks:,} | {chunks / points:.2f} |")
    print(f"| TensorBoard event files | {events:,} | {events / points:.2f} |")


if __name__ == "__main__":
    main()
