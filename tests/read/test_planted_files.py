"""A shared store holds what anyone put there: the reader shows only the objects the run wrote.

Files are planted in a run's ``media-files/`` under the names its media index lists, as an
attacker or a careless teammate would: a symbolic link to a secret outside the store, a
copy of it, a link to ``/dev/zero`` and a FIFO. ``report`` (the real CLI, in a process of
its own so that a hang is a timeout, not a stuck test run), ``serve`` (a real HTTP client)
and ``Run.read_media`` must neither disclose the secret nor hang nor read without bound.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from lightning_tracker import Store
from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.layout import MEDIA_FILES_DIR
from lightning_tracker.report import Dashboard
from tests.report.media_runs import images, table, write_run

SECRET = b"[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _plant(run_dir: str, name: str, how: str, secret: str) -> None:
    path = os.path.join(run_dir, MEDIA_FILES_DIR, name)
    os.remove(path)
    if how == "link-to-secret":
        os.symlink(secret, path)
    elif how == "copy-of-secret":
        shutil.copyfile(secret, path)
    elif how == "link-to-zero":
        os.symlink("/dev/zero", path)
    else:
        os.mkfifo(path)


@pytest.fixture
def planted(tmp_path: Any) -> tuple[str, str, dict[str, Any]]:
    """A store with one run of five 200×200 images (previews apart) and a table; files planted in four of them.

    Returns the store, the run id and what each planted name is (``{"name": ..., "how": ...}`` per item).
    """
    secret = tmp_path / "credentials"
    secret.write_bytes(SECRET)
    save_dir = str(tmp_path / "runs")
    run_dir = write_run(
        save_dir,
        "p",
        "r",
        [*images("samples", [0], 5, "x", size=(200, 200)), table("scores", 0, {"a": [1, 2]})],
    )
    rows = Store(save_dir).run("r").media().set_index(["key", "index"])
    preview = {i: rows.loc[("samples", i), "thumbnail"] for i in range(5)}
    full = {i: rows.loc[("samples", i), "object"] for i in range(5)}
    plan = {
        "preview-link": (preview[0], "link-to-secret"),
        "preview-copy": (preview[1], "copy-of-secret"),
        "object-link": (full[1], "link-to-secret"),
        "preview-zero": (preview[2], "link-to-zero"),
        "object-zero": (full[2], "link-to-zero"),
        "preview-fifo": (preview[3], "fifo"),
        "object-fifo": (full[3], "fifo"),
        "table-zero": (rows.loc[("scores", 0), "object"], "link-to-zero"),
    }
    for name, how in plan.values():
        _plant(run_dir, name, how, str(secret))
    return save_dir, os.path.basename(run_dir), {"plan": plan, "intact": (preview[4], full[4])}


def test_report_never_embeds_a_planted_file_nor_hangs_on_one(planted: tuple[str, str, Any], tmp_path: Any) -> None:
    save_dir, _, found = planted
    out = tmp_path / "r.html"
    done = subprocess.run(
        [sys.executable, "-m", "lightning_tracker.cli", "report", "-s", save_dir, "-o", str(out)],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_bytes()
    match = re.search(rb'<script id="lt-data" type="application/gzip-base64">([^<]+)</script>', html)
    assert match is not None
    payload = gzip.decompress(base64.b64decode(match[1]))  # the report's data, as the page unpacks it
    for text in (html, payload):
        assert SECRET not in text and base64.b64encode(SECRET) not in text and b"wJalrXUtnFEMI" not in text
    assert sorted(json.loads(payload)["files"]) == [found["intact"][0]], "only the intact preview is embedded"


def test_serve_answers_only_the_objects_the_run_wrote(planted: tuple[str, str, Any]) -> None:
    save_dir, run_id, found = planted
    dash = Dashboard(Store(save_dir), port=0, refresh=0.5).start()
    try:
        for what, (name, _) in found["plan"].items():
            route = "api/table" if what.startswith("table") else "media"
            status, body = _get(f"{dash.url}{route}/p/{run_id}/{name}")
            assert status != 200 and b"wJalrXUtnFEMI" not in body, what
        for name in found["intact"]:
            assert _get(f"{dash.url}media/p/{run_id}/{name}")[0] == 200
    finally:
        dash.stop()


def test_read_media_refuses_a_planted_object(planted: tuple[str, str, Any]) -> None:
    save_dir, _, _ = planted
    run = Store(save_dir).run("r")
    with pytest.raises(StorageError, match="leads out of the store"):
        run.read_media("samples", step=0, index=1)
    with pytest.raises(StorageError, match="leads out of the store"):
        run.read_media("samples", step=0, index=2)
    with pytest.raises(StorageError, match="not a regular file"):
        run.read_media("samples", step=0, index=3)
    assert run.read_media("samples", step=0, index=4).size == (200, 200)
