"""The fault matrix, measured: what each fault does to a run, as a Markdown table.

Each fault is injected into real training processes writing to a local folder or to a
moto S3 server on 127.0.0.1; points are counted from what the process logged, what was
readable before the fault, and what is readable after recovery.

Usage: python benchmarks/reliability.py [--kills 10] [--never-trials 20] [--only resume-never]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import pyarrow.parquet as pq  # noqa: E402

from lightning_tracker import Store, TrackerLogger  # noqa: E402
from lightning_tracker.format.layout import live_chunks  # noqa: E402
from lightning_tracker.storage import Storage  # noqa: E402
from lightning_tracker.writers.spool import spool_dir_for  # noqa: E402
from lightning_tracker.writers.sync import sync  # noqa: E402
from tests.conftest import S3Server  # noqa: E402
from tests.helpers import start_training  # noqa: E402
from tests.storage.racers import resume_never_race, run_race, winners  # noqa: E402
from tests.storage.serial_s3 import SerialS3Server  # noqa: E402

KEYS_PER_STEP = 2  # train/loss and Lightning's epoch


def _unreadable(run_dir: Path) -> int:
    bad = 0
    for name in live_chunks(os.listdir(run_dir / "metrics")):
        try:
            pq.read_table(run_dir / "metrics" / name)
        except Exception:  # noqa: BLE001 - counted, that is the point
            bad += 1
    for path in run_dir.glob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError:
            bad += 1
    return bad


def _kill(proc: subprocess.Popen) -> int:
    """SIGKILLs the process; returns the last step it reported."""
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()  # type: ignore[union-attr]
    proc.wait()
    steps = [int(line.split()[1]) for line in rest.splitlines() if line.startswith("STEP ")]
    return steps[-1] if steps else 20


def _empty_row(fault: str, trials: int) -> dict[str, Any]:
    """A row of the fault table before its first trial: the counts each trial adds to."""
    return {
        "fault": fault,
        "trials": trials,
        "written": 0,
        "flushed": 0,
        "recovered": 0,
        "unreadable": 0,
        "recover_s": [],
    }


def sigkill_local(trials: int, tmp: Path) -> dict[str, Any]:
    rng = random.Random(0)
    row = _empty_row("SIGKILL at a random moment, local folder", trials)
    for trial in range(trials):
        save_dir = tmp / f"kill{trial}"
        proc, run_id = start_training(str(save_dir), tmp / "out", dict(os.environ))
        time.sleep(rng.uniform(0.1, 1.5))
        flushed = len(Store(str(save_dir)).run(run_id).metrics(wide=False))
        last = _kill(proc)
        t0 = time.perf_counter()
        run = Store(str(save_dir)).run(run_id)
        recovered = len(run.metrics(wide=False)) if run.status == "crashed" else -1
        row["recover_s"].append(time.perf_counter() - t0)
        row["written"] += (last + 1) * KEYS_PER_STEP
        row["flushed"] += flushed
        row["recovered"] += recovered
        row["unreadable"] += _unreadable(save_dir / "p" / run_id)
    return row


def sigkill_s3(trials: int, tmp: Path, server: S3Server) -> dict[str, Any]:
    rng = random.Random(1)
    row = _empty_row("SIGKILL at a random moment, S3 (event files rotating), then sync", trials)
    for trial in range(trials):
        bucket = server.new_bucket()
        spool = tmp / f"spool{trial}"
        env = {
            **os.environ,
            "LIGHTNING_TRACKER_SPOOL": str(spool),
            "LIGHTNING_TRACKER_TB_ROTATE_S": "0.3",
            "LIGHTNING_TRACKER_STORAGE_OPTIONS": json.dumps(server.storage_options),
        }
        proc, run_id = start_training(f"s3://{bucket}/exp", tmp / "out", env)
        time.sleep(rng.uniform(0.3, 1.5))
        local_store = Store(spool_dir_for(Storage(f"s3://{bucket}/exp"), str(spool)))
        flushed = len(local_store.run(run_id).metrics(wide=False))
        last = _kill(proc)
        t0 = time.perf_counter()
        sync([str(spool)], storage_options=server.storage_options)
        row["recover_s"].append(time.perf_counter() - t0)
        remote = Store(f"s3://{bucket}/exp", server.storage_options).run(run_id)
        row["written"] += (last + 1) * KEYS_PER_STEP
        row["flushed"] += flushed
        row["recovered"] += len(remote.metrics(wide=False))
        download = tmp / f"download{trial}"
        remote.storage.fs.get(f"{remote.storage.root}/{remote.path}/", str(download), recursive=True)
        row["unreadable"] += _unreadable(download)
    return row


def outage(seconds: float, server: S3Server) -> dict[str, Any]:
    bucket = server.new_bucket()
    logger = TrackerLogger(
        f"s3://{bucket}/exp", name="p", storage_options=server.storage_options, flush_interval=0.5, finalize_timeout=300
    )
    step, start = 0, time.monotonic()
    for phase_end, action in ((3.0, server.stop), (3.0 + seconds, server.start), (6.0 + seconds, None)):
        while time.monotonic() - start < phase_end:
            logger.log_metrics({f"m{i}": float(i) for i in range(8)}, step=step)
            step += 1
            time.sleep(0.01)
        if action is not None:
            action()
    t0 = time.perf_counter()
    logger.finalize("success")
    recover = time.perf_counter() - t0
    run = Store(f"s3://{bucket}/exp", server.storage_options).run(logger.version)
    return {
        "fault": f"S3 server stopped {seconds:.0f} s mid-training, then restarted",
        "trials": 1,
        "written": step * 8,
        "flushed": step * 8,
        "recovered": len(run.metrics(wide=False)),
        "unreadable": 0,
        "recover_s": [recover],
    }


def down_until_after(server: S3Server, tmp: Path) -> dict[str, Any]:
    bucket = server.new_bucket()
    logger = TrackerLogger(
        f"s3://{bucket}/exp", name="p", storage_options=server.storage_options, flush_interval=0.2, finalize_timeout=3
    )
    server.stop()
    for step in range(2000):
        logger.log_metrics({"a": float(step), "b": -float(step)}, step=step)
    t0 = time.perf_counter()
    logger.finalize("success")
    finalize_s = time.perf_counter() - t0
    server.start()
    t0 = time.perf_counter()
    sync([logger.log_dir], storage_options=server.storage_options)
    run = Store(f"s3://{bucket}/exp", server.storage_options).run(logger.version)
    return {
        "fault": f"S3 down until after training (finalize returned in {finalize_s:.1f} s), then sync",
        "trials": 1,
        "written": 4000,
        "flushed": 4000,
        "recovered": len(run.metrics(wide=False)),
        "unreadable": 0,
        "recover_s": [time.perf_counter() - t0],
    }


def concurrent(tmp: Path) -> dict[str, Any]:
    code = (
        "import sys\nfrom lightning_tracker import TrackerLogger\n"
        "lg = TrackerLogger(sys.argv[1], name='c', flush_interval=0.05)\n"
        "[lg.log_metrics({'v': float(s)}, step=s) for s in range(200)]\nlg.finalize('success')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp / "conc")], env=env) for _ in range(8)]
    for p in procs:
        p.wait()
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs = Store(str(tmp / "conc")).runs("c")
    recovered = sum(len(r.metrics(wide=False)) for r in runs if r.status == "finished")
    unreadable = sum(_unreadable(tmp / "conc" / "c" / r.id) for r in runs)
    return {
        "fault": f"8 processes writing runs into one local store at once ({elapsed:.0f} s)",
        "trials": 1,
        "written": 8 * 200,
        "flushed": 8 * 200,
        "recovered": recovered,
        "unreadable": unreadable,
        "recover_s": [time.perf_counter() - t0],
    }


_RESUMER = (
    "import os, sys, time\nfrom lightning_tracker import TrackerLogger\n"
    "lg = TrackerLogger(sys.argv[1], name='r', version=sys.argv[2], flush_interval=0.05, spool_dir=sys.argv[5],\n"
    "                   storage_options={'key': 'testing', 'secret': 'testing', 'endpoint_url': sys.argv[6]})\n"
    "lg.log_metrics({sys.argv[3]: -1.0}, step=0)\n"
    "while not os.path.exists(sys.argv[4]): time.sleep(0.01)\n"
    "[lg.log_metrics({sys.argv[3]: float(s)}, step=s) for s in range(1, 301)]\nlg.finalize('success')\n"
)


def concurrent_resume(tmp: Path, server: S3Server) -> dict[str, Any]:
    """Two processes on two machines (separate spools) resume one S3 run at the same moment."""
    url = f"s3://{server.new_bucket()}/exp"
    first = TrackerLogger(url, name="r", storage_options=server.storage_options, spool_dir=tmp / "resume-spool-0")
    first.log_metrics({"a": 0.0, "b": 0.0}, step=0)
    first.finalize("success")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    go = tmp / "resume-go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _RESUMER,
                url,
                first.version,
                key,
                str(go),
                str(tmp / f"resume-spool-{i + 1}"),
                server.endpoint,
            ],
            env=env,
        )
        for i, key in enumerate(("a", "b"))
    ]
    time.sleep(8)  # both have opened their session
    go.touch()
    for p in procs:
        p.wait()
    t0 = time.perf_counter()
    history = Store(url, server.storage_options).run(first.version).metrics(wide=False)
    recovered = int((history["step"] > 0).sum())
    return {
        "fault": "2 processes (separate spools) resume one S3 run at once, 300 points each",
        "trials": 1,
        "written": 600,
        "flushed": 600,
        "recovered": recovered,
        "unreadable": 0,
        "recover_s": [time.perf_counter() - t0],
    }


def hung_store(tmp: Path) -> dict[str, Any]:
    """A store that accepts connections and never answers, when a named run starts."""
    from tests.servers import GatedProxy

    proxy = GatedProxy()
    try:
        options = {
            "key": "k",
            "secret": "s",
            "endpoint_url": proxy.endpoint,
            "config_kwargs": {"retries": {"max_attempts": 1}, "read_timeout": 600},
        }
        t0 = time.perf_counter()
        logger = TrackerLogger(
            "s3://hung/exp",
            name="h",
            version="named",
            storage_options=options,
            spool_dir=tmp / "hung-spool",
            finalize_timeout=1.0,
        )
        logger.log_metrics({"a": 0.0}, step=0)
        first_step = time.perf_counter() - t0
        for step in range(1, 1000):
            logger.log_metrics({"a": float(step)}, step=step)
        logger.finalize("success")
        kept = len(Store(logger.save_dir).run("named").metrics(wide=False))
    finally:
        proxy.close()
    return {
        "fault": f"store hangs (accepts, never answers) when a named run starts: first step after {first_step:.1f} s",
        "trials": 1,
        "written": 1000,
        "flushed": 1000,
        "recovered": kept,
        "unreadable": 0,
        "recover_s": [first_step],
    }


def resume_never(tmp: Path, trials: int, processes: int = 3) -> dict[str, Any]:
    """``processes`` processes open one id with ``resume="never"`` at the same moment, ``trials``
    times on a local folder and ``trials`` times on S3; each should have exactly one winner.

    S3 is moto applying one request at a time, as S3 applies a conditional write (moto's
    threaded server checks the condition and stores in two steps).
    """
    server = SerialS3Server()
    exact, lost, worst = 0, 0, [0.0]
    try:
        for where, url, options in (
            ("local", str(tmp / "never-local"), None),
            ("s3", f"s3://{server.new_bucket()}/exp", server.storage_options),
        ):
            results = run_race(
                resume_never_race, (url, options, str(tmp / f"never-spool-{where}"), False, False), processes, trials
            )
            exact += sum(len(who) == 1 for who in winners(results, trials).values())
            losers = [r for r in results if r[2] == "lost"]
            lost += len(losers)
            worst += [r[5] for r in losers]  # from the barrier to RunExistsError
    finally:
        server.stop()
    total = 2 * trials
    return {
        "fault": f"concurrent resume='never' trials ({processes} processes open one id at once; local folder and S3): "
        f"exactly one winner in {exact} of {total} trials, {lost} of {total * (processes - 1)} others raised "
        "RunExistsError before training",
        "trials": total,
        "written": "—",
        "flushed": "—",
        "recovered": "—",
        "unreadable": 0,
        "recover_s": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--never-trials", type=int, default=20, help="resume='never' race trials per store")
    parser.add_argument("--only", choices=("resume-never",), help="measure only this row")
    args = parser.parse_args()
    if args.only == "resume-never":
        with tempfile.TemporaryDirectory() as tmp_name:
            os.environ["LIGHTNING_TRACKER_SPOOL"] = str(Path(tmp_name) / "spool")
            _print([resume_never(Path(tmp_name), args.never_trials)])
        return
    server = S3Server()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            os.environ["LIGHTNING_TRACKER_SPOOL"] = str(tmp / "spool")
            rows.append(sigkill_local(args.kills, tmp))
            rows.append(sigkill_s3(max(1, args.kills // 2), tmp, server))
            rows.append(outage(args.outage, server))
            rows.append(down_until_after(server, tmp))
            rows.append(concurrent(tmp))
            rows.append(concurrent_resume(tmp, server))
            rows.append(resume_never(tmp, args.never_trials))
            rows.append(hung_store(tmp))
    finally:
        server.stop()
    _print(rows)


def _print(rows: list[dict[str, Any]]) -> None:
    print(
        "| fault | trials | points logged | flushed before the fault | points readable after | files unreadable "
        "| time to recover |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        worst = max(r["recover_s"])
        print(
            f"| {r['fault']} | {r['trials']} | {r['written']} | {r['flushed']} | {r['recovered']} "
            f"| {r['unreadable']} | {worst:.2f} s (worst) |"
        )


if __name__ == "__main__":
    main()
