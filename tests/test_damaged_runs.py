"""One damaged run never breaks the store: it reads as ``damaged`` with the reason, the rest reads.

Damage is written straight into the store (local folder, ``memory://``, moto S3): a
``run.json`` of the wrong shape or with wrongly typed fields, a truncated Parquet chunk,
a checkpoint manifest of the wrong shape. Every reader of the store is checked: the API,
the CLI, the report and the live dashboard, and a writer resuming the damaged run.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import urllib.request
from typing import Any

import pandas as pd
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import new_run
from lightning_tracker.format.layout import METRICS_DIR, MODELS_FILE, RUN_FILE, live_chunks
from lightning_tracker.format.rollups import ROLLUPS_DIR
from lightning_tracker.report import Dashboard, build_payload
from lightning_tracker.storage import Storage
from tests.helpers import local_or_s3

GOOD = {"format_version": 3, "status": "finished"}
# run id -> what its run.json holds, and a word of the reason a reader gives
DAMAGED: dict[str, tuple[Any, str]] = {
    "bad-list": (b"[]", "holds a list"),
    "bad-null": (b"null", "holds null"),
    "bad-json": (b'{"status": "fini', "not JSON"),
    "bad-bytes": (b"\xff\xfe\x00", "not JSON"),
    "bad-heartbeat": ({"heartbeat": "x", "status": "running"}, "'heartbeat' is 'x'"),
    "bad-start": ({"start_time": "yesterday"}, "'start_time' is 'yesterday'"),
    "bad-tags": ({"tags": 7}, "'tags' is 7"),
    "bad-params": ({"params": 5}, "'params' is 5"),
    "bad-summary": ({"summary": []}, "'summary' is []"),
    "bad-entry": ({"summary": {"loss": 3, "acc": {"last": 0.5}}}, "summary of 'loss' is 3"),
    "bad-writer": ({"status": "running", "writer": {"host": "h", "pid": "x"}}, "'writer'"),
    "bad-status": ({"status": ["finished"]}, "'status'"),
}


def _opts(options: Any) -> list[str]:
    return ["--storage-options", json.dumps(options)] if options else []


def _log(save_dir: str, options: Any, steps: range, version: str | None = None) -> str:
    logger = TrackerLogger(
        save_dir, name="p", run_name="good", version=version, storage_options=options, tensorboard=False
    )
    logger.log_hyperparams({"lr": 0.1})
    for step in steps:
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.finalize("success")
    return logger.version


def _write_damaged(storage: Storage) -> None:
    for run_id, (content, _) in DAMAGED.items():
        if isinstance(content, dict):
            doc = new_run(run_id, "p", run_id, group=None, tags=[], notes=None, heartbeat_interval_s=2.0, url="x")
            doc.update(GOOD, end_time=doc["start_time"] + 1, **content)
            content = dumps(doc)
        storage.write_bytes(f"p/{run_id}/{RUN_FILE}", content)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, resp.read()


def _served_statuses(store: Store) -> tuple[int, bytes, dict[str, str]]:
    """What a dashboard on ``store`` answers at ``api/data``: the HTTP status, the body and each run's status."""
    dash = Dashboard(store, port=0).start()
    try:
        status, body = _get(dash.url + "api/data")
    finally:
        dash.stop()
    return status, body, {r["id"]: r["status"] for r in json.loads(body)["runs"]}


def test_a_damaged_run_json_reads_as_damaged_and_every_other_run_reads(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    good = _log(save_dir, options, range(3))
    store = Store(save_dir, options)
    _write_damaged(store.storage)
    table = store.table("p").set_index("id")
    assert sorted(table.index) == sorted([good, *DAMAGED])
    assert table.loc[good, "status"] == "finished" and pd.isna(table.loc[good, "damage"])
    assert table.loc[good, "config.lr"] == 0.1 and table.loc[good, "summary.loss"] == pytest.approx(1 / 3)
    for run_id, (_, reason) in DAMAGED.items():
        assert table.loc[run_id, "status"] == "damaged", run_id
        assert reason in table.loc[run_id, "damage"], (run_id, table.loc[run_id, "damage"])
    assert {r.id for r in store.runs("p", status="damaged")} == set(DAMAGED)
    assert [r.id for r in store.runs("p", where="lr=0.1")] == [good]
    entry = store.run("bad-entry")  # what is intact still reads
    assert entry.summary == {"acc": {"last": 0.5}} and entry.name == "bad-entry"
    assert store.run("bad-tags").tags == [] and store.run("bad-params").flat_config == {}


def test_cli_report_and_dashboard_list_a_damaged_run_with_its_reason(
    store_target: tuple[str, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    good = _log(save_dir, options, range(3))
    _write_damaged(Storage(save_dir, options))
    assert main(["runs", save_dir, "-p", "p", *_opts(options)]) == 0
    out = capsys.readouterr().out
    assert out.count("damaged") >= len(DAMAGED) and "finished" in out
    assert main(["show", "bad-heartbeat", save_dir, *_opts(options)]) == 0
    out = capsys.readouterr().out
    assert "damaged" in out and "'heartbeat' is 'x'" in out
    assert main(["compare", good, "bad-summary", "bad-list", "-s", save_dir, *_opts(options)]) == 0
    assert "damaged" in capsys.readouterr().out
    assert main(["report", "-s", save_dir, "-o", str(tmp_path / "r.html"), *_opts(options)]) == 0
    payload = build_payload(Store(save_dir, options))
    records = {r["id"]: r for r in payload["runs"]}
    assert records[good]["status"] == "finished" and records[good]["damage"] is None
    assert all(records[run_id]["status"] == "damaged" for run_id in DAMAGED)
    status, _, statuses = _served_statuses(Store(save_dir, options))
    assert status == 200 and statuses[good] == "finished" and statuses["bad-json"] == "damaged"


def _two_sessions(save_dir: str, options: Any) -> tuple[str, Storage, str]:
    """A run of two sessions (steps 0..4, then 5..9), one chunk each; the first chunk is truncated."""
    run_id = _log(save_dir, options, range(5))
    _log(save_dir, options, range(5, 10), version=run_id)
    storage = Storage(save_dir, options)
    folder = f"p/{run_id}/{METRICS_DIR}"
    chunks = live_chunks(storage.listdir(folder))
    assert len(chunks) == 2
    data = storage.read_bytes(f"{folder}/{chunks[0]}")
    storage.write_bytes(f"{folder}/{chunks[0]}", data[: len(data) // 2])
    return run_id, storage, chunks[0]


def test_a_truncated_chunk_is_named_by_the_reader_and_skipped_by_the_report(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    run_id, storage, chunk = _two_sessions(save_dir, options)
    # the report draws from rollups: without them (a store written before rollups) it reads the chunks
    for name in storage.listdir(f"p/{run_id}/{ROLLUPS_DIR}"):
        storage.rm(f"p/{run_id}/{ROLLUPS_DIR}/{name}")
    other = _log(save_dir, options, range(3))
    store = Store(save_dir, options)
    run = store.run(run_id)
    with pytest.raises(StorageError, match=rf"(?s)metrics chunk .*{chunk} is damaged.*skip_damaged=True"):
        run.metrics()
    assert run.metrics(skip_damaged=True)["step"].tolist() == list(range(5, 10))
    assert run.status == "damaged" and chunk in (run.damage or "")
    table = store.table("p").set_index("id")  # a table reads run.json only
    assert table.loc[run_id, "status"] == "finished" and table.loc[other, "status"] == "finished"
    payload = build_payload(store)
    records = {r["id"]: r for r in payload["runs"]}
    assert records[run_id]["status"] == "damaged" and chunk in records[run_id]["damage"]
    assert payload["series"][f"p/{run_id}"]["loss"]["step"].tolist() == list(range(5, 10))
    assert records[other]["status"] == "finished" and len(payload["series"][f"p/{other}"]["loss"]["y"]) == 3
    dash = Dashboard(Store(save_dir, options), port=0, refresh=0.1).start()
    try:
        for _ in range(2):  # the second answer is built from the dashboard's cache
            time.sleep(0.2)
            status, body = _get(dash.url + "api/data")
            data = json.loads(body)
            assert status == 200 and {r["id"]: r["status"] for r in data["runs"]}[run_id] == "damaged"
            assert data["series"][f"p/{run_id}"]["loss"]["step"] == list(range(5, 10))
    finally:
        dash.stop()


@pytest.mark.parametrize("target", ["local", "s3"])
def test_a_run_with_a_truncated_chunk_resumes_with_a_warning_naming_it(
    target: str, tmp_path: Any, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    run_id, _, chunk = _two_sessions(save_dir, options)
    shutil.rmtree(tmp_path / "spool", ignore_errors=True)  # resumed elsewhere: the chunks come from the store
    with caplog.at_level(logging.WARNING, logger="lightning_tracker.writers.chunks"):
        _log(save_dir, options, range(10, 12), version=run_id)
    warned = [r.getMessage() for r in caplog.records if r.name == "lightning_tracker.writers.chunks"]
    assert warned and all(chunk in w and "left out" in w for w in warned)
    run = Store(save_dir, options).run(run_id)
    assert run.metrics(skip_damaged=True)["step"].tolist() == [5, 6, 7, 8, 9, 10, 11]
    assert run.summary["loss"]["count"] == 7, "the summary counts the points that can be read"


def test_a_damaged_checkpoint_manifest_is_named_and_the_report_shows_the_run_as_damaged(
    store_target: tuple[str, Any],
) -> None:
    save_dir, options = store_target
    run_id = _log(save_dir, options, range(3))
    store = Store(save_dir, options)
    store.storage.write_bytes(f"p/{run_id}/{MODELS_FILE}", b'{"checkpoints": [{"name": "../../run.json"}]}')
    with pytest.raises(StorageError, match=r"models.json is damaged: .*checkpoint 0 has name='../../run.json'"):
        store.run(run_id).checkpoints  # noqa: B018 - the property reads the manifest
    record = build_payload(store)["runs"][0]
    assert record["status"] == "damaged" and "models.json" in record["damage"]


def test_damaged_meta_and_config_documents_still_show(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = str(tmp_path / "runs")
    run_id = _log(save_dir, None, range(3))
    storage = Storage(save_dir)
    storage.write_bytes(f"p/{run_id}/meta.json", b'{"host": ["x"], "command": "rm -rf", "git": {"commit": 5}}')
    storage.write_bytes(f"p/{run_id}/config.json", b"[1, 2]")
    run = Store(save_dir).run(run_id)
    assert run.config == {} and run.meta["git"] == {"commit": 5} and run.status == "damaged"
    assert {p.split(":")[0] for p in run.problems} == {"meta.json", "config.json"}
    assert main(["show", run_id, save_dir]) == 0
    out = capsys.readouterr().out
    assert "damaged" in out and "'host' is ['x']" in out


# run id -> how its run.json is made unreadable on a local store, and a word of the reason
UNREADABLE_LOCAL = {
    "is-folder": "is a folder",
    "too-deep": "nested too deep",
    "is-fifo": "not a regular file",
    "to-zero": "leads out of the store",
    "to-secret": "leads out of the store",
}
SECRET = "aws_secret_access_key = s3cr3t-never-shown"


def _write_unreadable(save_dir: str, outside: Any) -> None:
    """Unreadable ``run.json`` files, as a careless teammate or an attacker leaves them in a shared folder."""
    import os

    for run_id in UNREADABLE_LOCAL:
        os.makedirs(f"{save_dir}/p/{run_id}")
    os.makedirs(f"{save_dir}/p/is-folder/{RUN_FILE}")
    with open(f"{save_dir}/p/too-deep/{RUN_FILE}", "w") as f:
        f.write("[" * 200_000 + "]" * 200_000)  # deeper than Python's recursion limit
    os.mkfifo(f"{save_dir}/p/is-fifo/{RUN_FILE}")  # nobody ever writes: a reader that opens it waits for good
    os.symlink("/dev/zero", f"{save_dir}/p/to-zero/{RUN_FILE}")  # endless: a reader that reads it fills memory
    secret = outside / "credentials"
    secret.write_text(SECRET)
    os.symlink(secret, f"{save_dir}/p/to-secret/{RUN_FILE}")


def test_an_unreadable_run_json_reads_as_damaged_and_every_other_run_reads(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    good = _log(save_dir, None, range(3))
    _write_unreadable(save_dir, tmp_path)
    store = Store(save_dir)
    runs = {r.id: r for r in store.runs()}
    assert runs[good].status == "finished" and runs[good].damage is None
    for run_id, reason in UNREADABLE_LOCAL.items():
        assert runs[run_id].status == "damaged" and reason in (runs[run_id].damage or ""), run_id
    table = store.table("p").set_index("id")
    assert table.loc[good, "summary.loss"] == pytest.approx(1 / 3)
    assert set(table.index) == {good, *UNREADABLE_LOCAL}
    assert main(["runs", "-s", save_dir, "-p", "p"]) == 0
    out = capsys.readouterr().out
    assert out.count("damaged") >= len(UNREADABLE_LOCAL) and "finished" in out and SECRET not in out
    assert main(["report", "-s", save_dir, "-o", str(tmp_path / "r.html")]) == 0
    assert SECRET not in (tmp_path / "r.html").read_text()
    status, body, statuses = _served_statuses(Store(save_dir))
    assert status == 200 and statuses[good] == "finished" and statuses["is-fifo"] == "damaged"
    assert SECRET.encode() not in body


def test_a_run_json_nested_too_deep_reads_as_damaged_on_every_target(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    good = _log(save_dir, options, range(3))
    Storage(save_dir, options).write_bytes(f"p/too-deep/{RUN_FILE}", b"{" + b'"a":{' * 100_000 + b"}" * 100_001)
    runs = {r.id: r for r in Store(save_dir, options).runs("p")}
    assert runs[good].status == "finished"
    assert runs["too-deep"].status == "damaged" and "nested too deep" in (runs["too-deep"].damage or "")


def test_another_users_private_run_reads_as_damaged_and_every_other_run_reads(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    save_dir = str(tmp_path / "runs")
    good = _log(save_dir, None, range(3))
    private = _log(save_dir, None, range(3))
    os.chmod(f"{save_dir}/p/{private}/{RUN_FILE}", 0)
    # as root, mode bits are not checked: the child runs without the capabilities that skip them
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be denied")
    script = (
        "import sys; from lightning_tracker import Store\n"
        "for r in Store(sys.argv[1]).runs(): print(r.id, r.status, r.damage)"
    )
    done = subprocess.run(
        [*prefix, sys.executable, "-c", script, save_dir], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines[good].startswith("finished None")
    assert lines[private] == "damaged run.json: cannot be read: permission denied"
