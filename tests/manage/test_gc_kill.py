"""A ``gc`` process killed half-way (SIGKILL) removed only garbage: ``gc`` again finishes the rest,
and every run still reads fully. A real ``lightning-tracker gc`` process, on a local folder and moto S3."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_tracker import Store
from lightning_tracker.manage.gc import collect_garbage
from tests.helpers import REPO, local_or_s3
from tests.manage.test_gc import age_heartbeat, assert_same, plant, read_all, record

# enough removals that the process is still at it when the first one is said
OBJECTS = {"local": 4000, "s3": 300}


@pytest.mark.parametrize("target", ["local", "s3"])
def test_gc_killed_half_way_loses_nothing_and_gc_again_finishes(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, options = local_or_s3(target, tmp_path, request)
    run_id = record(url, options)
    store = Store(url, options)
    age_heartbeat(store, run_id, 2 * 86_400)  # ended long ago: --grace 0 --force takes every unreferenced file
    before = read_all(url, options, run_id, tmp_path)
    planted = plant(store, run_id, objects=OBJECTS[target])
    argv = [sys.executable, "-m", "lightning_tracker.cli", "gc", "-s", url, "--grace", "0", "--force"]
    if options:
        argv += ["--storage-options", json.dumps(options)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("removed "):
                proc.send_signal(signal.SIGKILL)  # mid-way: it has said one removal of thousands
                break
    finally:
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL, proc.stderr.read()  # type: ignore[union-attr]
    present = set(store.storage.find(f"p/{run_id}"))
    left = {p for p in planted if p.split("/", 2)[2] in present}
    assert 0 < len(left) < len(planted), "the kill came before the first removal or after the last"
    report = collect_garbage(store, grace_s=0)
    assert {g.path for g in report.removed} == left  # the rest of the garbage, and nothing else
    assert_same(before, read_all(url, options, run_id, tmp_path))
