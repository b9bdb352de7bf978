"""The run store: ids, layout, metrics chunks, compaction, summary, resume, config, metadata."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.documents import run_state
from lightning_tracker.format.layout import live_chunks, parse_chunk_name
from lightning_tracker.writers.chunks import COMPACT_FANIN


def test_run_ids_are_unique_across_processes() -> None:
    code = "from lightning_tracker.format.layout import new_run_id\nfor _ in range(500): print(new_run_id())"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(8)]
    ids = [line for p in procs for line in p.communicate(timeout=60)[0].split()]
    assert len(ids) == len(set(ids)) == 4000


def test_layout_and_files_are_readable_without_our_code(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="proj", run_name="readable")
    logger.log_hyperparams({"lr": 0.1})
    for step in range(10):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.finalize("success")
    run_dir = tmp_path / "proj" / logger.version
    names = set(os.listdir(run_dir))
    assert {"run.json", "meta.json", "config.json", "metrics"} <= names
    assert any(n.startswith("events.out.tfevents.") for n in names)
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["format_version"] == 3 and doc["name"] == "readable" and doc["status"] == "finished"
    assert doc["params"] == {"lr": 0.1} and doc["summary"]["loss"]["last"] == pytest.approx(0.1)
    chunks = str(run_dir / "metrics" / "*.parquet")
    df = pd.read_parquet(run_dir / "metrics")
    assert sorted(df["step"]) == list(range(10))
    count, total = duckdb.sql(f"select count(*), sum(value) from read_parquet('{chunks}')").fetchall()[0]
    assert count == 10 and total == pytest.approx(sum(1 / (s + 1) for s in range(10)))


def test_nan_and_inf_are_kept(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    logger.log_metrics({"x": float("nan")}, step=0)
    logger.log_metrics({"x": float("inf")}, step=1)
    logger.log_metrics({"x": float("-inf")}, step=2)
    logger.log_metrics({"x": 1.5}, step=3)
    logger.finalize("success")
    run = Store(tmp_path).run(logger.version)
    values = list(run.metrics()["x"])
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1.5]
    s = run.summary["x"]
    assert s["count"] == 4 and s["min"] == -math.inf and s["max"] == math.inf and s["last"] == 1.5
    json.loads((tmp_path / "p" / logger.version / "run.json").read_text())  # strict JSON (holds the summary)


def test_bad_metric_values_warn_and_training_goes_on(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np
    import torch

    logger = TrackerLogger(tmp_path, name="p")
    for step in range(3):
        logger.log_metrics(
            {"text": "abc", "vec": torch.ones(3), "np": np.float32(0.5), "t": torch.tensor(2.0), "flag": True, 7: 1.0},
            step=step,
        )
    logger.finalize("success")
    summary = Store(tmp_path).run(logger.version).summary
    assert set(summary) == {"np", "t", "flag", "7"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("'text'" in w for w in warnings) == 1, "one warning per metric, not per step"
    assert sum("'vec'" in w and "shape" in w for w in warnings) == 1


def test_every_point_is_kept_across_many_flushes_and_compaction(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=300)
    n_flushes = COMPACT_FANIN * COMPACT_FANIN + 5
    for step in range(n_flushes * 2):
        logger.log_metrics({"a": float(step), "b": -float(step)}, step=step)
        if step % 2 == 1:
            logger.flush()
    metrics_dir = tmp_path / "p" / logger.version / "metrics"
    during = os.listdir(metrics_dir)
    # one chunk of 256 flushes plus the 5 newest: the count grows with log(n), not n
    assert len(during) == 6, f"compaction keeps the file count down: {sorted(during)}"
    logger.finalize("success")
    assert len(os.listdir(metrics_dir)) == 1
    history = Store(tmp_path).run(logger.version).metrics()
    assert list(history["step"]) == list(range(n_flushes * 2))
    assert list(history["a"]) == [float(s) for s in range(n_flushes * 2)]


def test_a_reader_never_sees_a_point_twice_or_misses_one_during_compaction(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=300)
    logger.log_metrics({"a": 0.0}, step=0)
    logger.flush()
    run = Store(tmp_path).run(logger.version)
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    errors: list[str] = []
    written = [1]

    def read() -> None:
        while not stop.is_set():
            before = written[0]
            steps = list(run.metrics(wide=False)["step"])
            seen.append((before, len(steps)))
            if steps != sorted(set(steps)):
                errors.append(f"a point read twice: {len(steps)} rows, {len(set(steps))} steps")
            if len(steps) < before:
                errors.append(f"a flushed point missing: {len(steps)} < {before}")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for step in range(1, COMPACT_FANIN * COMPACT_FANIN + 20):
            logger.log_metrics({"a": float(step)}, step=step)
            logger.flush()
            written[0] = step + 1
    finally:
        stop.set()
        reader.join()
    logger.finalize("success")
    assert len(seen) > 10
    assert errors == []
    names = os.listdir(tmp_path / "p" / logger.version / "metrics")
    assert len(live_chunks(names)) == 1


def test_live_chunks_drops_covered_chunks() -> None:
    names = [
        "000-00000000-00000015.parquet",
        *(f"000-{i:08d}-{i:08d}.parquet" for i in range(20)),
        "001-00000000-00000000.parquet",
    ]
    live = live_chunks(names)
    assert live[0] == "000-00000000-00000015.parquet"
    assert [parse_chunk_name(n)[1] for n in live[1:-1]] == [16, 17, 18, 19]
    assert live[-1].startswith("001-")


def test_resume_continues_one_history_and_supersedes_steps(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    first = TrackerLogger(save_dir, name="p", storage_options=options)
    first.log_hyperparams({"lr": 0.1})
    for step in range(10):
        first.log_metrics({"loss": 10.0 + step}, step=step)
    first.finalize("failed")
    # resumed from a checkpoint taken at step 5: steps 6..14 are logged again / anew
    second = TrackerLogger(save_dir, name="p", version=first.version, storage_options=options)
    assert second.version == first.version
    for step in range(6, 15):
        second.log_metrics({"loss": float(step)}, step=step)
    second.finalize("success")
    run = Store(save_dir, options).run(first.version)
    assert run.status == "finished"
    assert run.config == {"lr": 0.1}
    assert len(run.doc["sessions"]) == 2
    history = run.metrics()
    assert list(history["step"]) == list(range(15))
    assert list(history["loss"]) == [10.0 + s for s in range(6)] + [float(s) for s in range(6, 15)]
    s = run.summary["loss"]
    assert (s["count"], s["last"], s["min"], s["min_step"], s["max"], s["max_step"]) == (15, 14.0, 6.0, 6, 15.0, 5)


def test_the_live_summary_equals_the_final_one_after_a_resume_logs_steps_again(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    first = TrackerLogger(save_dir, name="p", storage_options=options)
    for step in range(10):
        first.log_metrics({"loss": 10.0 + step, "acc": float(step)}, step=step)
    first.finalize("failed")
    second = TrackerLogger(save_dir, name="p", version=first.version, storage_options=options, flush_interval=300)
    live = []
    for step in range(6, 15):
        second.log_metrics({"loss": float(step)}, step=step)
        if step in (7, 14):  # inside the overlap with the first session, and at the end, before finalize
            second.flush()
            live.append(second.experiment.summary)
    second.finalize("success")
    final = Store(save_dir, options).run(first.version).summary
    assert live[0]["loss"]["count"] == 10 and live[0]["loss"]["min"] == 6.0  # steps 0-9; 6 and 7 replaced
    assert live[1]["loss"] == final["loss"] and live[1]["acc"] == final["acc"]
    assert (final["loss"]["count"], final["loss"]["max"], final["loss"]["max_step"]) == (15, 15.0, 5)


@dataclass
class _Optim:
    name: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    extra: dict[str, Any] = field(default_factory=lambda: {"amsgrad": False})


class _Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def test_hyperparameters_stay_nested_with_a_flat_view(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    from omegaconf import OmegaConf

    cyclic: dict[str, Any] = {"name": "loop"}
    cyclic["self"] = cyclic
    long_text = "x" * 100_000
    logger = TrackerLogger(tmp_path, name="p")
    params = {
        "ns": Namespace(lr=0.1, layers=[64, 64]),
        "optim": _Optim(),
        "omega": OmegaConf.create({"data": {"root": "/data", "size": "${width}"}, "width": 32}),
        "opaque": _Opaque(),
        "long": long_text,
        "cyclic": cyclic,
        1: "int key",
    }
    logger.log_hyperparams(params)
    logger.log_hyperparams(params)  # twice: fine, nothing changes
    logger.log_hyperparams({"ns": Namespace(lr=0.01, layers=[64, 64])})  # a change is recorded
    logger.finalize("success")
    run = Store(tmp_path).run(logger.version)
    c = run.config
    assert c["ns"] == {"lr": 0.01, "layers": [64, 64]}
    assert c["optim"] == {"name": "adam", "betas": [0.9, 0.999], "extra": {"amsgrad": False}}
    assert c["omega"] == {"data": {"root": "/data", "size": 32}, "width": 32}
    assert c["opaque"] == "<Opaque thing>"
    assert c["long"] == long_text, "never truncated"
    assert c["cyclic"]["name"] == "loop" and c["cyclic"]["self"].startswith("<cycle")
    assert c["1"] == "int key"
    assert run.flat_config["omega.data.size"] == 32 and run.flat_config["ns.layers"] == [64, 64]
    assert [h["changes"] for h in run.config_history] == [{"ns.lr": [0.1, 0.01]}]
    warnings = [r.getMessage() for r in caplog.records if "stored as its repr" in r.getMessage()]
    assert len([w for w in warnings if "opaque" in w]) == 1, warnings


def test_secrets_never_reach_disk(tmp_path: Any, s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside any git repository: this file's own diff holds the planted strings
    monkeypatch.setenv("MY_SERVICE_TOKEN", "env-secret-4242")
    bucket = s3_server.new_bucket()
    options = {**s3_server.storage_options, "secret": "opts-secret-9191"}
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "opts-secret-9191")
    url = f"s3://testing:opts-secret-9191@{bucket}/exp"
    logger = TrackerLogger(url, name="p", storage_options={"endpoint_url": s3_server.endpoint}, tensorboard=True)
    logger.log_hyperparams(
        {
            "wandb_api_key": "hp-secret-7373",
            "db": {"password": "hp-secret-7373"},
            "HF_TOKEN": "hp-secret-7373",
            "lr": 0.1,
        }
    )
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert "opts-secret" not in logger.url
    spool = tmp_path / "spool"
    blobs = [open(os.path.join(d, f), "rb").read() for d, _, fs in os.walk(spool) for f in fs]
    remote = Store(f"s3://{bucket}/exp", options)
    fs = remote.storage.fs
    blobs += [fs.cat_file(p) for p in fs.find(f"{bucket}/exp")]
    assert len(blobs) > 5
    for planted in (b"env-secret-4242", b"opts-secret-9191", b"hp-secret-7373"):
        assert not any(planted in b for b in blobs), planted
    run = remote.run(logger.version)
    assert run.config["lr"] == 0.1 and run.config["db"]["password"] == "***REDACTED***"


def test_metadata_records_git_state(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=a@b.c", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(repo)], check=True)
    (repo / "train.py").write_text("print('v1')\n")
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "init"], check=True)
    (repo / "train.py").write_text("print('v2')\n")
    monkeypatch.chdir(repo)
    logger = TrackerLogger(tmp_path / "runs", name="p")
    logger.log_metrics({"a": 1.0}, step=0)
    logger.finalize("success")
    run = Store(tmp_path / "runs").run(logger.version)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert run.meta["git"]["commit"] == head
    assert run.meta["git"]["branch"] == "trunk" and run.meta["git"]["dirty"] is True
    assert "+print('v2')" in run.git_diff
    assert run.meta["versions"]["torch"] and run.meta["host"] and run.meta["user"] is not None


def test_heartbeat_turns_a_silent_run_into_crashed() -> None:
    now = time.time()
    doc = {"status": "running", "heartbeat": now, "heartbeat_interval_s": 2.0, "writer": {"host": "elsewhere"}}
    assert run_state(doc, now=now + 5) == "running"
    assert run_state(doc, now=now + 17) == "crashed"


def test_resume_keeps_counting_steps_and_takes_new_names(tmp_path: Any) -> None:
    first = TrackerLogger(tmp_path, name="p", run_name="before", notes="n1")
    for _ in range(3):
        first.log_metrics({"a": 1.0})  # no step: counted by the logger
    first.finalize("failed")
    kept = TrackerLogger(tmp_path, name="p", version=first.version)
    kept.log_metrics({"a": 2.0})
    kept.finalize("success")
    run = Store(tmp_path).run(first.version)
    assert list(run.metrics()["step"]) == [0, 1, 2, 3]
    assert (run.name, run.notes) == ("before", "n1")
    renamed = TrackerLogger(tmp_path, name="p", version=first.version, run_name="after")
    renamed.log_metrics({"a": 3.0})
    renamed.finalize("success")
    run = Store(tmp_path).run(first.version)
    assert (run.name, run.notes, renamed.run_name) == ("after", "n1", "after")
    assert list(run.metrics()["a"]) == [1.0, 1.0, 1.0, 2.0, 3.0]


def test_an_uncaught_exception_marks_the_run_failed(tmp_path: Any) -> None:
    code = (
        "from lightning_tracker import TrackerLogger\n"
        f"lg = TrackerLogger({str(tmp_path)!r}, name='p', version='boom')\n"
        "lg.log_metrics({'a': 1.0}, step=0)\n"
        "raise RuntimeError('training blew up')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "training blew up" in done.stderr
    run = Store(tmp_path).run("boom")
    assert run.status == "failed"
    assert run.summary["a"]["last"] == 1.0


def test_secret_lists_and_override_style_arguments_are_redacted(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside any git repository: this file's own diff holds the planted strings
    monkeypatch.setattr(sys, "argv", ["train.py", "db.password=pw-123456", "--api-key", "ak-123456"])
    logger = TrackerLogger(tmp_path, name="p")
    logger.log_hyperparams({"api_keys": ["k-123456", "k-654321"], "key_dim": 64})
    logger.finalize("success")
    run = Store(tmp_path).run(logger.version)
    assert run.config == {"api_keys": "***REDACTED***", "key_dim": 64}
    written = b"".join(p.read_bytes() for p in (tmp_path / "p").rglob("*") if p.is_file())
    for planted in (b"pw-123456", b"ak-123456", b"k-123456", b"k-654321"):
        assert planted not in written


def test_credentials_in_urls_and_secret_subtrees_never_reach_disk(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "--save_dir=s3://AKIAX:Sec/ret-777@bucket/exp"])
    logger = TrackerLogger(tmp_path / "runs", name="p")
    logger.log_hyperparams(
        {
            "data": "https://user:pw-888888@host/data.csv",
            "credentials": {"id": "id-999999", "value": "v-999999", "retries": 3},
        }
    )
    logger.finalize("success")
    written = b"".join(p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file())
    for planted in (b"Sec/ret-777", b"pw-888888", b"id-999999", b"v-999999"):
        assert planted not in written, planted
    run = Store(tmp_path / "runs").run(logger.version)
    assert run.config["credentials"]["retries"] == 3
    assert run.config["data"] == "https://host/data.csv"
    assert "s3://bucket/exp" in " ".join(run.meta["command"])
