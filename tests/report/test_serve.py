"""The live dashboard: HTTP surface (read-only, nothing outside the store) and the page in Chromium."""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.report import Dashboard
from tests.conftest import free_port
from tests.report.test_report import ARTIFACTS


def _log_run(save_dir: str, name: str, steps: int, options: Any = None, finalize: bool = True) -> TrackerLogger:
    logger = TrackerLogger(save_dir, name="live", run_name=name, storage_options=options, tensorboard=False)
    logger.log_hyperparams({"lr": 0.1 if name.endswith("0") else 0.01})
    for step in range(steps):
        logger.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    if finalize:
        logger.finalize("success")
    else:
        logger.flush()
    return logger


@pytest.fixture
def dashboard(store_target: tuple[str, Any]) -> Iterator[Dashboard]:
    save_dir, options = store_target
    _log_run(save_dir, "run-0", 30, options)
    dash = Dashboard(Store(save_dir, options), port=0, refresh=0.5).start()
    try:
        yield dash
    finally:
        dash.stop()


def _get(url: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_serves_the_page_and_fresh_data_and_nothing_else(dashboard: Dashboard) -> None:
    assert dashboard.url.startswith("http://127.0.0.1:"), "binds this machine only by default"
    status, page = _get(dashboard.url)
    assert status == 200 and b'data-live="0.5"' in page
    status, body = _get(dashboard.url + "api/data")
    data = json.loads(body)
    assert status == 200 and [r["name"] for r in data["runs"]] == ["run-0"]
    assert data["series"][data["runs"][0]["key"]]["train/loss"]["n"] == 30
    run_path = f"live/{data['runs'][0]['id']}/run.json"
    for path in (run_path, f"../{run_path}", "%2e%2e/etc/passwd", "api/../live", "api/data/../../run.json"):
        assert _get(dashboard.url + path)[0] == 404, path
    for method in ("POST", "PUT", "DELETE"):
        assert _get(dashboard.url + "api/data", method)[0] == 405
    rebound = urllib.request.Request(dashboard.url + "api/data", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(rebound, timeout=30)


def test_refresh_must_be_positive(tmp_path: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"refresh=0 must be a positive number"):
        Dashboard(Store(str(tmp_path)), port=0, refresh=0)


def test_dashboard_in_chromium_follows_a_training_run(tmp_path: Any, browser_page: tuple[Any, list[str]]) -> None:
    page, errors = browser_page
    save_dir = str(tmp_path / "runs")
    _log_run(save_dir, "run-0", 30)
    dash = Dashboard(Store(save_dir), port=0, refresh=0.5).start()
    try:
        page.goto(dash.url)
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        traces = "document.querySelector('[data-metric=\"train/loss\"]').data.filter((t) => t.meta.kind === 'line')"
        assert page.evaluate(f"{traces}.map((t) => [t.name, t.x.length])") == [["run-0", 30]]
        live = _log_run(save_dir, "run-1", 40, finalize=False)  # still training
        page.wait_for_function(f"{traces}.length === 2", timeout=30_000)
        assert page.evaluate(f"{traces}.map((t) => [t.name, t.x.length])") == [["run-0", 30], ["run-1", 40]]
        assert "running" in page.inner_text("#runs-table tbody")
        live.log_metrics({"train/loss": 0.001}, step=40)
        live.flush()
        page.wait_for_function(f"{traces}[1].x.length === 41", timeout=30_000)
        page.fill("#filter", "lr=0.1")
        assert page.evaluate(f"{traces}.map((t) => t.name)") == ["run-0"]
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "dashboard.png"), full_page=True)
        live.finalize("success")
    finally:
        dash.stop()
    assert errors == []


def test_serve_command_binds_localhost_and_names_a_busy_port(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    _log_run(save_dir, "run-0", 5)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_tracker.cli", "serve", save_dir, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/api/data")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        assert status == 200 and json.loads(body)["runs"][0]["name"] == "run-0"
        busy = subprocess.run(
            [sys.executable, "-m", "lightning_tracker.cli", "serve", save_dir, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert busy.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "--port 0" in " ".join(busy.stderr.split())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_tab_closed_mid_answer_prints_nothing_and_the_server_keeps_serving(
    tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    _log_run(save_dir, "run-0", 5)
    # logging as a script with logging.basicConfig(level=logging.DEBUG) has it: all of it printed
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    dash = Dashboard(Store(save_dir), port=0).start()
    try:
        host, port = dash.url.split("//")[1].rstrip("/").split(":")
        for _ in range(3):
            tab = socket.create_connection((host, int(port)), timeout=10)
            tab.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            tab.recv(64)  # the answer has started: the page (megabytes) is still being sent
            # closed with unread data: the kernel answers the next write with a reset
            tab.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tab.close()
        status, body = _get(dash.url)
        assert status == 200 and body.startswith(b"<!DOCTYPE html>"), "the server still answers"
    finally:
        dash.stop()
        root.removeHandler(handler)
        root.setLevel(level)
    err = capfd.readouterr().err
    for word in ("Traceback", "BrokenPipeError", "ConnectionResetError", "Exception occurred"):
        assert word not in err, err
