"""What the write side costs: training-thread time per ``log_metrics`` call and all-thread CPU per point.

(a) the median time of one ``log_metrics`` of 8 scalars on the calling thread (blocks of
400 calls, 20,000 calls); (b) the process CPU time (all threads: the flusher writing
Parquet chunks, the summary, TensorBoard events and compaction) per point for 400,000
points, ``finalize`` included. Only the public API is used, so the same script measures
any version of the package: ``PYTHONPATH=<other tree> python benchmarks/write_cost.py``
compares two trees in one session (run them alternately; this VM drifts).

Usage: python benchmarks/write_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

if "PYTHONPATH" not in os.environ:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lightning_tracker import TrackerLogger


def per_call(calls: int = 20_000) -> float:
    with tempfile.TemporaryDirectory() as folder:
        logger = TrackerLogger(folder, name="bench")
        metrics = {f"k{i}": 0.5 for i in range(8)}
        for step in range(2000):  # warm-up: the run is open, the first chunks written
            logger.log_metrics(metrics, step=step)
        samples = []
        for block in range(calls // 400):
            started = time.perf_counter_ns()
            for step in range(400):
                logger.log_metrics(metrics, step=2000 + block * 400 + step)
            samples.append((time.perf_counter_ns() - started) / 400 / 1000)
        logger.finalize("success")
    return statistics.median(samples)


def cpu_per_point(steps: int = 50_000) -> float:
    with tempfile.TemporaryDirectory() as folder:
        logger = TrackerLogger(folder, name="bench", flush_interval=0.5)
        metrics = {f"k{i}": 0.5 for i in range(8)}
        logger.log_metrics(metrics, step=0)
        logger.flush()
        started = time.process_time()
        for step in range(1, steps + 1):
            metrics["k0"] = step * 0.001
            logger.log_metrics(metrics, step=step)
        logger.finalize("success")
        return (time.process_time() - started) / (steps * 8) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    calls = [per_call() for _ in range(args.repeats)]
    cpu = [cpu_per_point() for _ in range(args.repeats)]
    import lightning_tracker

    print(f"lightning_tracker from {os.path.dirname(lightning_tracker.__file__)}, medians of {args.repeats}\n")
    print("| measurement | result |")
    print("|---|---:|")
    print(f"| (a) `log_metrics` of 8 scalars, calling thread | {statistics.median(calls):.2f} µs |")
    print(f"| (b) CPU per point, all threads, finalize included | {statistics.median(cpu):.2f} µs |")


if __name__ == "__main__":
    main()
