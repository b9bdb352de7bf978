"""One contract, every storage target: a local folder, memory://, S3 (moto), GCS
(fake-gcs-server) and Azure (Azurite), each a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tests.servers  # noqa: F401 - sets the gcsfs environment before gcsfs is imported
from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main as cli
from lightning_tracker.format.layout import live_chunks, parse_chunk_name
from tests.helpers import REPO
from tests.storage.conftest import TARGETS, target_url


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any] | None]:
    """``(save_dir, storage_options)`` on every storage target."""
    return target_url(request.param, request, tmp_path)


def _log_run(save_dir: str, options: Any, steps: int, flush_every: int = 0, **kwargs: Any) -> TrackerLogger:
    logger = TrackerLogger(save_dir, name="c", storage_options=options, flush_interval=300, **kwargs)
    logger.log_hyperparams({"lr": 0.01, "model": {"width": 32, "act": "gelu"}})
    for step in range(steps):
        logger.log_metrics({"loss": 1.0 / (step + 1), "acc": step / steps}, step=step)
        if flush_every and step % flush_every == flush_every - 1:
            logger.flush()
    logger.finalize("success")
    return logger


def test_a_run_reads_back_identically(target: tuple[str, Any]) -> None:
    save_dir, options = target
    logger = _log_run(save_dir, options, steps=300, flush_every=10)
    store = Store(save_dir, options)
    run = store.run(logger.version)
    assert run.status == "finished" and run.config["model"] == {"width": 32, "act": "gelu"}
    history = run.metrics()
    assert list(history["step"]) == list(range(300))
    assert history["loss"].tolist() == [1.0 / (s + 1) for s in range(300)]
    assert run.summary["acc"]["count"] == 300 and run.summary["loss"]["min_step"] == 299
    table = store.table("c")
    assert table.loc[0, "config.model.width"] == 32 and table.loc[0, "summary.loss"] == pytest.approx(1 / 300)
    listing = store.storage.find(f"c/{logger.version}")
    chunks = [n.split("/", 1)[1] for n in listing if n.startswith("metrics/")]
    # 30 flushes were compacted into one chunk, and the covered chunks were deleted remotely
    assert len(chunks) == 1 and live_chunks(chunks) == chunks
    assert {"run.json", "meta.json", "config.json"} <= set(listing)
    assert any(n.startswith("events.out.tfevents.") for n in listing)


def test_resume_gives_one_continuous_history(target: tuple[str, Any]) -> None:
    save_dir, options = target
    first = TrackerLogger(save_dir, name="c", storage_options=options)
    for step in range(10):
        first.log_metrics({"x": float(step)}, step=step)
    first.finalize("failed")
    second = TrackerLogger(save_dir, name="c", version=first.version, storage_options=options)
    for step in range(5, 20):
        second.log_metrics({"x": 100.0 + step}, step=step)
    second.finalize("success")
    run = Store(save_dir, options).run(first.version)
    assert run.metrics()["x"].tolist() == [float(s) for s in range(5)] + [100.0 + s for s in range(5, 20)]
    chunks = Store(save_dir, options).storage.find(f"c/{first.version}/metrics")
    assert sorted(parse_chunk_name(n)[0] for n in chunks) == [0, 1], "one compacted chunk per session"


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "local"], indirect=True)  # a local folder has no spool
def test_offline_run_then_sync_equals_an_online_run(target: tuple[str, Any], tmp_path: Path) -> None:
    save_dir, options = target
    offline = _log_run(save_dir, options, steps=50, offline=True)
    store = Store(save_dir, options)
    assert offline.version not in [r.id for r in store.runs("c")], "nothing uploaded while offline"
    online = _log_run(save_dir, options, steps=50)
    args = ["sync", offline.log_dir] + (["--storage-options", json.dumps(options)] if options else [])
    assert cli(args) == 0
    assert cli(args) == 0  # idempotent
    a, b = store.run(offline.version), store.run(online.version)
    pd.testing.assert_frame_equal(a.metrics().drop(columns="time"), b.metrics().drop(columns="time"))
    assert a.config == b.config and a.status == b.status == "finished"


def test_secrets_never_reach_the_store(
    target: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_dir, options = target
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "env-secret-31337")
    logger = _log_run(save_dir, options, steps=5)
    logger2 = TrackerLogger(save_dir, name="c", storage_options=options)
    logger2.log_hyperparams({"openai_api_key": "hp-secret-31337", "nested": {"password": "hp-secret-31337"}})
    logger2.finalize("success")
    store = Store(save_dir, options)
    blobs = [store.storage.read_bytes(f"c/{logger.version}/{rel}") for rel in store.storage.find(f"c/{logger.version}")]
    blobs += [
        store.storage.read_bytes(f"c/{logger2.version}/{rel}") for rel in store.storage.find(f"c/{logger2.version}")
    ]
    blobs += [p.read_bytes() for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    planted = [b"env-secret-31337", b"hp-secret-31337"]
    for value in (options or {}).values():  # the storage credentials themselves
        if isinstance(value, str) and len(value) > 8 and "127.0.0.1" not in value:
            planted.append(value.encode())
    if options and "connection_string" in options:
        planted.append(options["connection_string"].split("AccountKey=")[1].split(";")[0].encode())
    for secret in planted:
        assert not any(secret in blob for blob in blobs), secret


WRITER = """
import sys
from lightning_tracker import TrackerLogger
save_dir, options, i = sys.argv[1], __import__("json").loads(sys.argv[2]), int(sys.argv[3])
logger = TrackerLogger(save_dir, name="c", run_name=f"proc-{i}", storage_options=options, flush_interval=0.05)
logger.log_hyperparams({"i": i})
for step in range(200):
    logger.log_metrics({"v": float(i * 1000 + step)}, step=step)
    if step % 50 == 0:
        logger.flush()
logger.finalize("success")
print(logger.version)
"""


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_eight_processes_write_into_one_store_at_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "local":
        save_dir, options = str(tmp_path / "runs"), None
    else:
        server = request.getfixturevalue("s3_server")
        save_dir, options = f"s3://{server.new_bucket()}/exp", server.storage_options
    env = {**os.environ, "PYTHONPATH": REPO}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, save_dir, json.dumps(options), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(8)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    ids = [o[0].split()[-1] for o in outs]
    assert len(set(ids)) == 8
    runs = Store(save_dir, options).runs("c")
    assert sorted(r.id for r in runs) == sorted(ids), "the listing shows every run exactly once"
    for run in runs:
        i = run.config["i"]
        assert run.name == f"proc-{i}" and run.status == "finished"
        assert run.metrics()["v"].tolist() == [float(i * 1000 + s) for s in range(200)]
