"""The live dashboard's media: full-size objects over HTTP (listed names only) and the panel in Chromium."""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.report import Dashboard
from tests.report.media_runs import images, pixels, table, write_run
from tests.report.pages import open_page


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def live_run(tmp_path: Any) -> Iterator[tuple[Dashboard, str]]:
    """A dashboard of a store with one run: two 160×120 images at step 0 and a table; and the run's folder."""
    save_dir = str(tmp_path / "runs")
    run_dir = write_run(
        save_dir,
        "m",
        "live",
        [
            *images("samples", [0], 2, "live", size=(120, 160)),
            table("scores", 0, {"name": ["a", "b"], "score": [2.5, 1.0]}),
        ],
    )
    dash = Dashboard(Store(save_dir), port=0, refresh=0.5).start()
    try:
        yield dash, run_dir
    finally:
        dash.stop()


def test_serves_listed_objects_at_full_size_and_nothing_else(live_run: tuple[Dashboard, str], tmp_path: Any) -> None:
    dash, run_dir = live_run
    run = dash.store.run("live")
    rows = run.media("samples")
    base = f"{dash.url}media/m/{run.id}/"
    image = rows.iloc[0]
    status, headers, body = _get(base + image["object"])
    assert status == 200 and Image.open(io.BytesIO(body)).size == (160, 120), "the full-size object"
    assert headers["Content-Type"] == {"png": "image/png", "webp": "image/webp"}[image["object"].split(".")[1]]
    assert "immutable" in headers["Cache-Control"] and headers["X-Content-Type-Options"] == "nosniff"
    status, _, thumb = _get(base + image["thumbnail"])
    assert status == 200 and Image.open(io.BytesIO(thumb)).size == (128, 96), "the preview"
    status, _, head = _get(base + image["object"], "HEAD")
    assert status == 200 and head == b""
    scores = run.media("scores").iloc[0]["object"]
    status, headers, body = _get(f"{dash.url}api/table/m/{run.id}/{scores}")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"columns": ["name", "score"], "rows": [["a", 2.5], ["b", 1.0]], "total": 2}

    # a real image in media-files/ under its sha256, but not in the index: not served
    buf = io.BytesIO()
    Image.fromarray(pixels(9, 9)).save(buf, "PNG")
    stray = f"{hashlib.sha256(buf.getvalue()).hexdigest()}.png"
    with open(os.path.join(run_dir, "media-files", stray), "wb") as f:
        f.write(buf.getvalue())
    obj, media = image["object"], f"{dash.url}media/"
    refused = [
        base + stray,
        base + obj.upper(),
        base + scores,
        f"{dash.url}api/table/m/{run.id}/{obj}",
        f"{media}m/../{run.id}/{obj}",
        f"{media}%2e%2e/m/{run.id}/{obj}",
        f"{media}m/{run.id}/..%2frun.json",
        f"{media}m/{run.id}/%2e%2e%2f%2e%2e%2fm%2f{run.id}%2frun.json",
        f"{media}m/{run.id}/../run.json",
        f"{media}m/{run.id}/{obj}/x",
        f"{media}m/{run.id}%2f..%2f{run.id}/{obj}",
        f"{media}m/{run.id}/run.json",
        f"{media}m/.{run.id}/{obj}",
        f"{media}m/nope/{obj}",
    ]
    for url in refused:
        assert _get(url)[0] == 404, url
    assert _get(base + image["object"], "POST")[0] == 405
    other = Dashboard(dash.store, project="other", port=0).start()
    try:
        assert _get(f"{other.url}media/m/{run.id}/{image['object']}")[0] == 404, "outside the dashboard's project"
    finally:
        other.stop()

    # objects never change under their name: an answered one is not read again
    os.remove(os.path.join(run_dir, "media-files", image["object"]))
    assert _get(base + image["object"])[2] == _get(base + image["object"])[2] != b"not found"
    assert _get(base + rows.iloc[1]["object"])[0] == 200


IMAGES = """() => [...document.querySelectorAll('#media-panels figure')].map((f) => ({
    src: f.querySelector('img').getAttribute('src'), width: f.querySelector('img').naturalWidth,
    caption: f.querySelector('figcaption').textContent}))"""


def _gradient(step: int, index: int) -> np.ndarray:
    return pixels(step, index, 120, 160)


def test_the_live_panel_shows_new_steps_and_opens_full_size_images(
    tmp_path: Any, browser_page: tuple[Any, list[str]]
) -> None:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="m", run_name="live", tensorboard=False)  # still training
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_image("samples", [_gradient(0, i) for i in range(2)], step=0, caption=["live s0 #0", "live s0 #1"])
    logger.log_table("scores", columns=["name", "score"], data=[["a", 2.5], ["b", 1.0]], step=0)
    logger.flush()
    dash = Dashboard(Store(save_dir), port=0, refresh=0.5).start()
    try:
        _follow(dash, logger, browser_page)
    finally:
        dash.stop()
        logger.finalize("success")


def _follow(dash: Dashboard, logger: TrackerLogger, browser_page: tuple[Any, list[str]]) -> None:
    page, errors = browser_page
    open_page(page, dash.url)
    page.wait_for_function("document.querySelectorAll('#media-panels img').length === 2")
    page.wait_for_function("[...document.querySelectorAll('#media-panels img')].every((i) => i.naturalWidth > 0)")
    before = page.evaluate(IMAGES)
    assert [(i["caption"], i["width"]) for i in before] == [("live s0 #0", 128), ("live s0 #1", 128)]
    assert all(i["src"].startswith("media/m/") for i in before), "previews from the server"
    page.wait_for_selector(".media-table")
    assert page.inner_text("[data-key='scores'] tbody") == "a\t2.5\nb\t1", "the table, fetched on demand"
    page.click("#media-panels img")
    page.wait_for_function("document.getElementById('lightbox-img').naturalWidth > 0")
    assert page.evaluate("document.getElementById('lightbox-img').naturalWidth") == 160, "full size"
    assert page.is_visible("#lightbox") and "live s0 #0" in page.inner_text("#lightbox-caption")
    full = page.get_attribute("#lightbox-open", "href")
    assert full.startswith("media/m/") and _get(dash.url + full)[0] == 200, "also in a new tab"
    page.keyboard.press("Escape")
    assert page.is_hidden("#lightbox")

    logger.log_image("samples", [_gradient(5, i) for i in range(2)], step=5, caption=["later s5 #0", "later s5 #1"])
    logger.flush()
    page.wait_for_function("document.querySelector('.media-step').textContent === 'step 5 (2 of 2)'", timeout=30_000)
    page.wait_for_function("[...document.querySelectorAll('#media-panels img')].every((i) => i.naturalWidth > 0)")
    after = page.evaluate(IMAGES)
    assert [i["caption"] for i in after] == ["later s5 #0", "later s5 #1"], "the slider follows the newest step"
    assert {i["src"] for i in after}.isdisjoint(i["src"] for i in before)
    assert errors == []
