"""Charts over many runs draw rollups (a spike in one step stays in the envelope); a zoom shows the points."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import StorageError
from lightning_tracker.report import data
from lightning_tracker.report.data import build_payload
from lightning_tracker.report.html import write_report
from lightning_tracker.report.server import Dashboard
from tests.report.pages import open_page

STEPS = 5000
SPIKE = 2345  # the one step of run r0 whose loss is 1000


def _log_runs(save_dir: str) -> None:
    for i in range(2):
        logger = TrackerLogger(save_dir, name="p", version=f"r{i}", tensorboard=False, flush_interval=300)
        for step in range(STEPS):
            logger.log_metrics({"loss": 1000.0 if (i, step) == (0, SPIKE) else 1.0 + i + step % 3}, step=step)
            if step % 200 == 0:
                logger.flush()
        logger.finalize("success")


def test_a_report_over_the_point_bound_draws_rollups_and_reads_no_metrics_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_dir = str(tmp_path / "runs")
    _log_runs(save_dir)
    store, opened = Store(save_dir), []
    kind = type(store.storage)  # every file a reader reads is opened through its store's open
    real_open = kind.open
    monkeypatch.setattr(kind, "open", lambda self, rel, *a, **k: opened.append(rel) or real_open(self, rel, *a, **k))
    monkeypatch.setattr(data, "REPORT_RAW_POINTS", STEPS)  # two runs of STEPS points: over the bound
    payload = build_payload(store)
    loss = payload["series"]["p/r0"]["loss"]
    assert loss["n"] == STEPS and len(loss["y"]) <= data.DEFAULT_MAX_POINTS and loss["hi"].max() == 1000.0
    assert payload["zoom"] == "rollups" and payload["points"] == {}
    assert opened and not [rel for rel in opened if "/metrics/" in rel], "a finished run is drawn from its rollup"


def test_a_small_report_embeds_the_points_a_zoom_shows(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _log_runs(save_dir)
    payload = build_payload(Store(save_dir))
    assert payload["zoom"] == "points"
    points = payload["points"]["p/r0"]["loss"]
    assert points["step"].tolist() == list(range(STEPS)) and points["y"][SPIKE] == 1000.0 and "lo" not in points


def test_the_dashboard_answers_the_points_of_a_zoomed_range(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _log_runs(save_dir)
    dash = Dashboard(Store(save_dir), port=0).start()
    try:
        with urllib.request.urlopen(dash.url + f"api/points?run=p/r0&key=loss&from={SPIKE - 2}&to={SPIKE + 2}") as r:
            got = json.loads(r.read())
        assert got["step"] == list(range(SPIKE - 2, SPIKE + 3)) and got["y"][2] == 1000 and got["n"] == 5
        for query, status in (("run=p/r9&key=loss&from=0&to=9", 404), ("run=p/../r0&key=loss&from=0&to=9", 400)):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(dash.url + "api/points?" + query)
            assert err.value.code == status, query
    finally:
        dash.stop()


_TRACES = "document.querySelector('[data-metric=\"loss\"]').data"


@pytest.mark.parametrize("where", ["report", "dashboard"])
def test_a_spike_in_one_step_shows_in_the_overview_and_a_zoom_shows_the_points(
    tmp_path: Path, browser_page: tuple[Any, list[str]], where: str
) -> None:
    page, errors = browser_page
    save_dir = str(tmp_path / "runs")
    _log_runs(save_dir)
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    dash = Dashboard(Store(save_dir), port=0, refresh=60).start() if where == "dashboard" else None
    try:
        url = dash.url if dash is not None else f"file://{write_report(Store(save_dir), tmp_path / 'r.html')}"
        open_page(page, url)
        overview = page.evaluate(f"{_TRACES}.map((t) => [t.meta.kind, t.meta.run, Math.max(...t.y), t.x.length])")
        envelope = {run: top for kind, run, top, _ in overview if kind == "envelope"}
        assert envelope == {"p/r0": 1000, "p/r1": 4}, "the spike of one step is in r0's envelope"
        assert all(n <= 500 for kind, _, _, n in overview if kind == "line")
        page.evaluate(
            f"Plotly.relayout(document.querySelector('[data-metric=\"loss\"]'), "
            f"{{'xaxis.range[0]': {SPIKE - 10}, 'xaxis.range[1]': {SPIKE + 10}}})"
        )
        page.wait_for_function(f"{_TRACES}.filter((t) => t.meta.zoomed).length === 2", timeout=15_000)
        zoomed = page.evaluate(f"{_TRACES}.filter((t) => t.meta.zoomed).map((t) => [t.meta.run, t.x, t.y])")
        assert [run for run, _, _ in zoomed] == ["p/r0", "p/r1"]
        assert all(x == list(range(SPIKE - 10, SPIKE + 11)) for _, x, _ in zoomed), "every point of the range"
        assert zoomed[0][2][10] == 1000 and zoomed[1][2][10] == 1.0 + 1 + SPIKE % 3
        assert not page.evaluate(f"{_TRACES}.filter((t) => t.meta.kind === 'envelope').length"), "points, not buckets"
        assert (where == "dashboard") == any("api/points" in u for u in requests)
        page.evaluate("Plotly.relayout(document.querySelector('[data-metric=\"loss\"]'), {'xaxis.autorange': true})")
        page.wait_for_function(f"{_TRACES}.filter((t) => t.meta.kind === 'envelope').length === 2", timeout=15_000)
    finally:
        if dash is not None:
            dash.stop()
    assert not errors, errors


def test_a_truncated_chunk_under_an_intact_rollup_is_drawn_from_the_rollup(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _log_runs(save_dir)
    folder = tmp_path / "runs" / "p" / "r0" / "metrics"
    (chunk,) = os.listdir(folder)
    (folder / chunk).write_bytes((folder / chunk).read_bytes()[:100])
    store = Store(save_dir)
    loss = build_payload(store)["series"]["p/r0"]["loss"]
    # the report reads no chunk the rollup covers: the chart is whole; the reader names the damage
    assert loss["n"] == STEPS and loss["hi"].max() == 1000.0
    with pytest.raises(StorageError, match=chunk):
        store.run("r0").metrics()
