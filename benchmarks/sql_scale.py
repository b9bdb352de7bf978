"""``Store.sql`` and ``export delta`` at scale: 10⁸ points on a local store.

Builds a synthetic store in the published run format (``benchmarks/read_scale.py``'s
``write_run``: ``run.json`` with its summary, one Parquet chunk per run), by default
1,000 runs x 10 metrics x 10,000 steps = 10⁸ points, then times:

- loading the views: ``runs`` (``Store.table``) and ``metrics`` (every live point, the
  last value per step: ``read.sql.metric_points``);
- a group-by over every point, on the loaded views, and end to end through ``Store.sql``
  (which loads the views again: each call reads the store as it is now);
- ``export delta`` of the project to a local folder: the first export (points/s) and the
  second, which finds nothing changed.

Prints a Markdown table and the peak resident memory. Run:
``python benchmarks/sql_scale.py [--runs N] [--quick] [--no-delta]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from benchmarks.read_scale import timed, write_run
from lightning_tracker.read.sql import metric_points, run_sql
from lightning_tracker.read.store import Store

GROUP_BY = (
    "select key, count(*) as n, avg(value) as mean, min(value) as low, max(value) as high from metrics group by key"
)
JOINED = (
    'select r."config.optimizer" as optimizer, m.key, min(m.value) as best '
    "from runs r join metrics m on m.run = r.id where m.step >= 5000 group by all"
)


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="100 runs, for a smoke test")
    parser.add_argument("--no-delta", action="store_true", help="skip the Delta export")
    parser.add_argument("--dir", help="where to build the store (default: a temporary folder)")
    args = parser.parse_args()
    runs = 100 if args.quick else args.runs
    points = runs * args.metrics * args.steps
    rows: list[tuple[str, str]] = []
    tmp = tempfile.mkdtemp(dir=args.dir)
    try:
        root = os.path.join(tmp, "runs")
        rng = np.random.default_rng(0)
        seconds, _ = timed(lambda: [write_run(root, "bench", i, args.metrics, args.steps, rng) for i in range(runs)])
        print(f"built {runs:,} runs, {points:,} points in {seconds:.0f} s", file=sys.stderr)
        store = Store(root)
        size = f"{runs:,} runs x {args.metrics} metrics x {args.steps:,} steps = {points:.0e} points".replace(
            "e+0", "e"
        )
        seconds, table = timed(lambda: store.table("bench"))
        rows.append((f"`runs` view (`Store.table`), {runs:,} runs", f"{seconds:.2f} s"))
        pairs = list(zip(table["project"], table["id"], strict=True))
        seconds, loaded = timed(lambda: metric_points(store, pairs))
        assert loaded.num_rows == points, loaded.num_rows
        rows.append((f"`metrics` view loaded, {size}", f"{seconds:.1f} s ({points / seconds / 1e6:.0f} M points/s)"))
        rows.append(("`metrics` view in memory (Arrow)", f"{loaded.nbytes / 2**30:.2f} GiB"))
        import duckdb

        con = duckdb.connect()
        con.register("metrics", loaded)
        con.register("runs", table)

        def query(sql: str, con: duckdb.DuckDBPyConnection = con) -> object:
            return con.execute(sql).df()

        seconds, result = timed(lambda: query(GROUP_BY))
        assert int(result["n"].sum()) == points
        rows.append(("group-by of every point by key, views loaded", f"{seconds:.2f} s"))
        seconds, _ = timed(lambda: query(JOINED))
        rows.append(("join with `runs`, filter and group-by, views loaded", f"{seconds:.2f} s"))
        con.close()
        del loaded, con
        seconds, result = timed(lambda: run_sql(store, GROUP_BY))
        assert int(result["n"].sum()) == points
        rows.append(("`Store.sql` group-by end to end (loads both views)", f"{seconds:.1f} s"))
        if not args.no_delta:
            from lightning_tracker.manage.delta import export_delta

            out = os.path.join(tmp, "delta")
            seconds, done = timed(lambda: export_delta(store, "bench", out))
            assert done.points == points
            rows.append(
                (f"`export delta`, first, {runs:,} runs", f"{seconds:.1f} s ({points / seconds / 1e6:.2f} M points/s)")
            )
            seconds, again = timed(lambda: export_delta(store, "bench", out))
            assert again.points == 0 and again.unchanged == runs
            rows.append(("`export delta`, second (nothing changed)", f"{seconds:.2f} s"))
            written = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
            rows.append(("Delta tables on disk", f"{written / 2**30:.2f} GiB"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| measurement | result |")
    print("|---|---:|")
    for name, result in rows:
        print(f"| {name} | {result} |")
    print(f"\npeak resident memory: {_peak_gib():.1f} GiB; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
