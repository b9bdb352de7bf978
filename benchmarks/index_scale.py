"""The project index at scale: runs tables of 100,000 runs, on a moto S3 server and locally.

Writes synthetic runs straight in the published layout (a ``run.json`` each, as a
finished run leaves it; no chunks: a runs table reads none), then measures:

- on a moto S3 server this script starts on 127.0.0.1 (in a child process that counts
  the requests it answers): the index rebuild (``Store.reindex``: every ``run.json``
  read, the index written); a warm runs table (a new ``Store``, as a new process: the
  listing and the compacted index) with its request count; the same after 100 new runs
  that told the index (change objects, as their writers add them);
- with ``--s3-from-local-index``, the same warm tables on S3 from an index built locally and
  uploaded alone (a warm read of an unchanged project reads nothing else);
- locally: the index rebuild, a runs table of the same number of runs through the index (warm) and without
  it (``Store(..., index=False)``: every ``run.json`` read);
- on both: the bytes of index files the fold after 100 new runs writes (and locally, after
  5 runs changed: a sweep's refresh), against the size of the whole compacted index.

Prints a Markdown table. Run: ``python benchmarks/index_scale.py [--runs N] [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import new_run
from lightning_tracker.read.store import Store
from lightning_tracker.storage import Storage
from lightning_tracker.storage.changes import record_change

PROJECT = "bench"


def run_json(index: int) -> bytes:
    """A finished run's ``run.json``: 5 hyperparameters, 3 metrics."""
    run_id = f"20260101-000000-{index:08d}"
    doc = new_run(
        run_id,
        PROJECT,
        f"run-{index}",
        group=f"g{index % 10}",
        tags=["bench"],
        notes=None,
        heartbeat_interval_s=2.0,
        url=run_id,
    )
    start = 1_767_225_600.0 + index
    params = {
        "lr": 10 ** -(1 + index % 4),
        "model.width": 32 << (index % 3),
        "model.depth": 2 + index % 6,
        "optimizer": ("sgd", "adam")[index % 2],
        "seed": index,
    }
    summary = {
        key: {
            "count": 100,
            "last": value,
            "last_step": 99,
            "last_time": start + 10,
            "min": value / 2,
            "min_step": 50,
            "max": value * 2,
            "max_step": 0,
            "high_step": 99,
        }
        for key, value in (("train/loss", 1 / (index + 1)), ("val/loss", 2 / (index + 1)), ("val/acc", 0.5))
    }
    doc.update(
        status="finished",
        start_time=start,
        end_time=start + 10,
        heartbeat=start + 10,
        params=params,
        summary=summary,
        sessions=[{"index": 0, "start_time": start, "end_time": start + 10}],
    )
    return dumps(doc)


def _serve(conn: Any, count: Any) -> None:
    """moto's S3 app on a free port, counting every request in ``count`` (shared memory)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        with count.get_lock():
            count.value += 1
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler)
    conn.send(server.server_address[1])
    server.serve_forever()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def index_bytes(storage: Storage) -> dict[str, int]:
    """The project's index files now, name -> size."""
    return {name: size for name, size in storage.find(f"{PROJECT}/.index/runs").items() if name.endswith(".parquet")}


def fold_bytes(storage: Storage, fold: Callable[[], Any]) -> tuple[int, int, float]:
    """The bytes of index files ``fold`` writes, the size of the greatest compacted file after
    it, and the seconds ``fold`` took."""
    before = index_bytes(storage)
    seconds, _ = timed(fold)
    after = index_bytes(storage)
    full = max((name for name in after if "-on-" not in name), default=None)
    return sum(size for name, size in after.items() if name not in before), after[full] if full else 0, seconds


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 10_000 else f"{n / 1e3:.1f} kB"


def write_s3(options: dict[str, Any], url: str, runs: int, start: int = 0) -> float:
    import s3fs

    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    root = url.removeprefix("s3://")
    began = time.perf_counter()
    for first in range(start, start + runs, 5000):
        batch = range(first, min(first + 5000, start + runs))
        fs.pipe({f"{root}/{PROJECT}/20260101-000000-{i:08d}/run.json": run_json(i) for i in batch}, batch_size=64)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs per store (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="1,000 runs, for a smoke test")
    parser.add_argument("--skip-s3", action="store_true", help="only the local store")
    parser.add_argument(
        "--s3-from-local-index",
        action="store_true",
        help="S3: upload only the index built locally (no run folders, no rebuild row), for sizes moto cannot hold",
    )
    args = parser.parse_args()
    runs = 1000 if args.quick else args.runs
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    rows: list[tuple[str, str, str]] = []
    if not args.skip_s3 and not args.s3_from_local_index:
        rows += s3_rows(runs)
    rows += local_rows(runs, s3_from_index=args.s3_from_local_index)
    print("| measurement | result | target |")
    print("|---|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


def s3_rows(runs: int, seed: str | None = None) -> list[tuple[str, str, str]]:
    """The S3 rows; with ``seed`` (a local store of ``runs`` runs, indexed), only its compacted
    index is uploaded: a warm read of an unchanged project reads nothing else, and writing
    100,000 run folders to moto takes longer than this machine allows (no rebuild row then)."""
    import s3fs

    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    count = context.Value("q", 0)
    proc = context.Process(target=_serve, args=(child, count), daemon=True)
    proc.start()
    try:
        options = {"key": "bench", "secret": "bench", "endpoint_url": f"http://127.0.0.1:{conn.recv()}"}
        fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
        fs.mkdir("bench")
        url = "s3://bench/exp"
        rebuild = None
        if seed is None:
            wrote = write_s3(options, url, runs)
            print(f"wrote {runs:,} runs to moto in {wrote:.0f} s", file=sys.stderr)
            rebuild, indexed = timed(lambda: Store(url, options).reindex(PROJECT))
            assert indexed == runs, indexed
        else:
            index = f"{PROJECT}/.index/runs"
            [name] = os.listdir(os.path.join(seed, index))
            fs.put_file(os.path.join(seed, index, name), f"bench/exp/{index}/{name}")
            print(
                f"uploaded the index of {runs:,} runs "
                f"({os.path.getsize(os.path.join(seed, index, name)) / 1e6:.1f} MB)",
                file=sys.stderr,
            )

        def warm() -> tuple[float, int]:
            before = count.value
            seconds, table = timed(lambda: Store(url, options).table(PROJECT))
            assert len(table) == total, len(table)
            return seconds, count.value - before

        total = runs
        warm()  # the first Store of a process imports and connects
        seconds, requests = warm()
        write_s3(options, url, 100, start=runs)
        storage = Storage(url, options)
        for i in range(runs, runs + 100):
            record_change(storage, PROJECT, f"20260101-000000-{i:08d}", "end")
        total = runs + 100
        after, after_requests = 0.0, 0

        def first_after() -> None:
            nonlocal after, after_requests
            after, after_requests = warm()

        folded, whole, _ = fold_bytes(storage, first_after)
        again, again_requests = warm()
    finally:
        proc.kill()
        proc.join(10)
    what = f"{runs:,} runs on S3 (moto)"
    return [
        *([(f"index rebuild, {what}", f"{rebuild:.1f} s", "—")] if rebuild is not None else []),
        (f"runs table, {what}, warm", f"{seconds:.2f} s, {requests} requests", "< 2 s, ≤ 10 requests"),
        (f"runs table, {what}, after 100 new runs", f"{after:.2f} s, {after_requests} requests", "≤ 10 + 300 requests"),
        (f"runs table, {what}, then warm again", f"{again:.2f} s, {again_requests} requests", "< 2 s, ≤ 10 requests"),
        (f"index bytes written by the fold of 100 new runs, {what}", f"{_mb(folded)} (index {_mb(whole)})", "—"),
    ]


def local_rows(runs: int, s3_from_index: bool = False) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            folder = os.path.join(tmp, PROJECT, f"20260101-000000-{i:08d}")
            os.makedirs(folder)
            with open(os.path.join(folder, "run.json"), "wb") as f:
                f.write(run_json(i))
        rebuild, _ = timed(lambda: Store(tmp).reindex(PROJECT))
        indexed, table = timed(lambda: Store(tmp).table(PROJECT))
        assert len(table) == runs
        seeded = s3_rows(runs, seed=tmp) if s3_from_index else []
        scanned, table = timed(lambda: Store(tmp, index=False).table(PROJECT))
        assert len(table) == runs
        storage = Storage(tmp)

        def changed(first: int, count: int, kind: str) -> Callable[[], Any]:
            def fold() -> None:
                for i in range(first, first + count):
                    rid = f"20260101-000000-{i:08d}"
                    os.makedirs(os.path.join(tmp, PROJECT, rid), exist_ok=True)
                    with open(os.path.join(tmp, PROJECT, rid, "run.json"), "wb") as f:
                        f.write(run_json(i))
                    record_change(storage, PROJECT, rid, kind)
                Store(tmp).table(PROJECT)

            return fold

        sweep = [fold_bytes(storage, changed(i * 5, 5, "end")) for i in range(10)]  # a sweep's refreshes
        added, whole, _ = fold_bytes(storage, changed(runs, 100, "end"))
        assert len(Store(tmp).table(PROJECT)) == runs + 100
    return [
        *seeded,
        (f"index rebuild, {runs:,} local runs", f"{rebuild:.1f} s", "—"),
        (f"runs table, {runs:,} local runs, through the index", f"{indexed:.2f} s", "—"),
        (f"runs table, {runs:,} local runs, every run.json read", f"{scanned:.2f} s", "—"),
        (
            f"index bytes written per fold of 5 changed runs, {runs:,} local runs (mean of 10)",
            f"{_mb(sum(n for n, _, _ in sweep) // len(sweep))} (index {_mb(whole)}), "
            f"{sum(t for _, _, t in sweep) / len(sweep):.2f} s a fold",
            "—",
        ),
        (f"index bytes written by the fold of 100 new runs, {runs:,} local runs", f"{_mb(added)}", "—"),
    ]


if __name__ == "__main__":
    sys.exit(main())
