"""The dashboard sends its JSON and its page gzip-compressed to a client that accepts it.

A real HTTP client (requests, and http.client for the bytes on the wire) against a real
``Dashboard``, and a real Chromium that loads the page and its data compressed.
"""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.report import Dashboard

TOKEN = "a-team-token-of-enough-length"


def _log_run(save_dir: str, name: str, steps: int) -> str:
    logger = TrackerLogger(save_dir, name="live", run_name=name, tensorboard=False)
    logger.log_hyperparams({"lr": 0.1})
    for step in range(steps):
        logger.log_metrics({"train/loss": 1.0 / (step + 1), "val/acc": step / steps}, step=step)
    logger.finalize("success")
    return f"live/{logger.version}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Dashboard, str]]:
    save_dir = str(tmp_path / "runs")
    run = _log_run(save_dir, "run-0", 3000)
    dash = Dashboard(Store(save_dir), port=0, refresh=60).start()
    try:
        yield dash, run
    finally:
        dash.stop()


def _raw(url: str, path: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and the body's bytes as sent, without any decoding."""
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname or "", split.port, timeout=30)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_the_data_is_sent_gzip_compressed_to_a_client_that_accepts_it(served: tuple[Dashboard, str]) -> None:
    dash, run = served
    plain_status, plain_headers, plain = _raw(dash.url, "/api/data")
    assert plain_status == 200 and "content-encoding" not in plain_headers
    status, headers, packed = _raw(dash.url, "/api/data", **{"Accept-Encoding": "gzip, deflate, br"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert int(headers["content-length"]) == len(packed) < len(plain) / 2
    assert gzip.decompress(packed) == plain  # the same document, only smaller on the wire
    for answer in (plain_headers, headers):  # a cache keeps one copy per encoding; the rest is as before
        assert answer["vary"] == "Accept-Encoding" and answer["cache-control"] == "no-store"
        assert answer["content-type"] == "application/json" and answer["x-frame-options"] == "DENY"

    # what an everyday client does: it asks for gzip and reads the JSON decoded
    with requests.Session() as client:
        answer = client.get(f"{dash.url}api/data", timeout=30)
        assert answer.headers["content-encoding"] == "gzip" and answer.json() == json.loads(plain)
        params = {"run": run, "key": "train/loss", "from": 0, "to": 2999}
        zoom = client.get(f"{dash.url}api/points", params=params, timeout=30)
        assert zoom.headers["content-encoding"] == "gzip" and zoom.json()["n"] == 3000
        page = client.get(dash.url, timeout=30)
        assert page.headers["content-encoding"] == "gzip" and b'id="lt-data"' in page.content


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "br", "*;q=0", "deflate, gzip;q=0.0"])
def test_a_client_that_refuses_gzip_gets_the_data_as_it_is(served: tuple[Dashboard, str], accept: str) -> None:
    dash, _ = served
    status, headers, body = _raw(dash.url, "/api/data", **{"Accept-Encoding": accept})
    assert status == 200 and "content-encoding" not in headers and json.loads(body)["runs"]
    assert headers["vary"] == "Accept-Encoding"


@pytest.mark.parametrize("accept", ["GZIP", "x-gzip", "*", "br;q=1, gzip;q=0.5"])
def test_every_spelling_that_accepts_gzip_gets_it(served: tuple[Dashboard, str], accept: str) -> None:
    dash, _ = served
    _, headers, packed = _raw(dash.url, "/api/data", **{"Accept-Encoding": accept})
    assert headers["content-encoding"] == "gzip" and json.loads(gzip.decompress(packed))["runs"]


def test_a_head_request_announces_the_compressed_answer_without_its_body(served: tuple[Dashboard, str]) -> None:
    dash, _ = served
    _, got, packed = _raw(dash.url, "/api/data", **{"Accept-Encoding": "gzip"})
    status, headers, body = _raw(dash.url, "/api/data", "HEAD", **{"Accept-Encoding": "gzip"})
    assert status == 200 and body == b"" and headers["content-encoding"] == "gzip"
    assert headers["content-length"] == got["content-length"] == str(len(packed))


def test_small_answers_and_errors_are_not_compressed(served: tuple[Dashboard, str]) -> None:
    dash, run = served
    gz = {"Accept-Encoding": "gzip"}
    # two points: a few dozen bytes, which gzip would only make longer
    status, headers, body = _raw(dash.url, f"/api/points?run={run}&key=train/loss&from=0&to=1", **gz)
    assert status == 200 and "content-encoding" not in headers and json.loads(body)["step"] == [0, 1]
    for path in ("/api/points?run=nope", "/nothing/here", f"/api/points?run={run}x&key=a&from=0&to=1"):
        status, headers, _ = _raw(dash.url, path, **gz)
        assert status in (400, 404) and "content-encoding" not in headers, path


def test_a_team_dashboard_compresses_only_what_the_token_opens(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _log_run(save_dir, "run-0", 3000)
    dash = Dashboard(Store(save_dir), port=0, refresh=60, token=TOKEN).start()
    try:
        status, headers, _ = _raw(dash.url, "/api/data", **{"Accept-Encoding": "gzip"})
        assert status == 401 and "content-encoding" not in headers
        status, headers, packed = _raw(
            dash.url, "/api/data", **{"Accept-Encoding": "gzip", "Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 200 and headers["content-encoding"] == "gzip" and json.loads(gzip.decompress(packed))
        assert TOKEN.encode() not in gzip.decompress(packed)  # nothing secret is compressed beside user input
    finally:
        dash.stop()


def test_chromium_loads_the_dashboard_and_its_data_compressed(
    served: tuple[Dashboard, str], browser_page: tuple[Any, list[str]]
) -> None:
    dash, _ = served
    page, errors = browser_page
    encodings: dict[str, str | None] = {}

    def seen(response: Any) -> None:
        path = urlsplit(response.url).path
        if path in ("/", "/api/data"):
            encodings[path] = response.all_headers().get("content-encoding")

    page.on("response", seen)
    page.goto(dash.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    traces = "document.querySelector('[data-metric=\"train/loss\"]').data.filter((t) => t.meta.kind === 'line')"
    assert page.evaluate(f"{traces}.map((t) => t.name)") == ["run-0"]
    assert encodings == {"/": "gzip", "/api/data": "gzip"}
    assert errors == []
