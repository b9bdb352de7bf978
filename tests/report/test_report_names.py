"""Names decide nothing in the report but their own text: every metric its own chart, no name a link.

Also the report file and the dashboard's sockets: a link planted at a temporary name is
never followed, and an idle connection is closed.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.report import Dashboard, write_report
from tests.report.pages import open_page, open_section

LINK = '<a href="http://x">x</a>'
METRICS = ["train/loss", "train_loss", "损失", "精度", "charts", LINK, "metric-charts", "system-charts"]


def _runs(save_dir: str) -> None:
    """Two runs; metric i logs i + 1 and i + 2 (steps 0, 1), so each chart's data is its own."""
    for run_name in (LINK, "<b>plain</b>"):
        logger = TrackerLogger(save_dir, name="p", run_name=run_name, tensorboard=False)
        logger.log_hyperparams({"lr": 0.1 if run_name == LINK else 0.2, LINK: "<i>v</i>" if run_name == LINK else "w"})
        for step in range(2):
            logger.log_metrics({m: float(i + 1 + step) for i, m in enumerate(METRICS)}, step=step)
        logger.log_metrics({"system/" + LINK: 5.0}, step=0)
        logger.finalize("success")


@pytest.fixture(params=["report", "dashboard"])
def page_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    save_dir = str(tmp_path / "runs")
    _runs(save_dir)
    if request.param == "report":
        yield "file://" + write_report(Store(save_dir), tmp_path / "report.html")
        return
    dash = Dashboard(Store(save_dir), port=0).start()
    try:
        yield dash.url
    finally:
        dash.stop()


def test_every_metric_has_its_own_chart_and_no_name_becomes_a_link(
    page_url: str, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    open_page(page, page_url)
    open_section(page, "system")  # closed, so drawn only now
    charts = page.evaluate(
        """() => [...document.querySelectorAll('#metric-charts .chart')].map((div) => ({
            metric: div.dataset.metric, title: div.querySelector('.gtitle').textContent,
            section: div.closest('details').dataset.section,
            first: div.data.filter((t) => t.meta.kind === 'line').map((t) => t.y[0])}))"""
    )
    system = [c for c in charts if c["section"] == "system"]
    assert [c["metric"] for c in system] == ["system/" + LINK] and system[0]["title"] == "system/" + LINK
    charts = [c for c in charts if c["section"] != "system"]
    assert sorted(c["metric"] for c in charts) == sorted(METRICS), "one chart per metric"
    for c in charts:
        i = METRICS.index(c["metric"])
        assert c["first"] == [i + 1, i + 1], (c, "each chart draws its own metric, for both runs")
        assert c["title"] == c["metric"], "the title is the name, as text"
    sections = page.evaluate("[...document.querySelectorAll('#metric-charts > details')].map((d) => d.dataset.section)")
    assert '<a href="http:' in sections, "a section named by a stored prefix, as text"
    containers = page.evaluate(
        "[...document.querySelectorAll('#metric-charts .charts')].map((g) => g.parentNode.nodeName)"
    )
    assert set(containers) == {"DETAILS"}, "no chart took a container's place"
    links = page.evaluate(
        """() => [...document.querySelectorAll('a')].map((a) => a.getAttribute('href')
            || a.getAttributeNS('http://www.w3.org/1999/xlink', 'href') || '').filter((h) => h.includes('//x'))"""
    )
    assert links == [], "no link comes from a stored name"
    assert page.evaluate("document.querySelectorAll('svg b, svg i, svg a').length") == 0
    legend = page.evaluate("[...document.querySelectorAll('#metric-charts .legendtext')].map((t) => t.textContent)")
    assert LINK in legend, "a run name shows as its text in legends"
    page.select_option("#scatter-x", LINK)  # the scatter opens on lr (numbers first): the text key is picked
    ticks = page.evaluate("[...document.querySelectorAll('#scatter-chart .xtick text')].map((t) => t.textContent)")
    assert "<i>v</i>" in ticks, "a hyperparameter value shows as its text on a category axis"
    assert errors == []


def test_report_never_follows_a_link_planted_at_a_temporary_name(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "x.html"
    for planted in ("x.html.tmp", ".x.html.tmp", "x.html.part"):
        (tmp_path / planted).symlink_to(victim)
    path = write_report(Store(save_dir), out)
    assert victim.read_text() == "keep me" and path == str(out)
    assert out.read_bytes().startswith(b"<!DOCTYPE html>") and not out.is_symlink()
    out.unlink()
    out.symlink_to(victim)  # the target itself a link: replaced, not written through
    write_report(Store(save_dir), out)
    assert victim.read_text() == "keep me" and not out.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_symlink()) == [".x.html.tmp", "x.html.part", "x.html.tmp"]


def test_an_idle_connection_to_the_dashboard_is_closed(tmp_path: Any) -> None:
    assert Dashboard(Store(str(tmp_path)), port=0).idle_timeout == 30.0
    dash = Dashboard(Store(str(tmp_path)), port=0, idle_timeout=0.5).start()
    try:
        host, port = dash.url.split("//")[1].rstrip("/").split(":")
        idle = socket.create_connection((host, int(port)), timeout=10)
        half = socket.create_connection((host, int(port)), timeout=10)
        half.sendall(b"GET /api/data HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a request that never ends
        started = time.monotonic()
        assert idle.recv(1024) == b"" and half.recv(1024) == b"", "the server closed both"
        assert time.monotonic() - started < 5
        idle.close()
        half.close()
        with urllib.request.urlopen(dash.url + "api/data", timeout=10) as resp:
            assert resp.status == 200, "the server still answers"
    finally:
        dash.stop()
    with pytest.raises(ValueError, match="idle_timeout=0 must be a positive number"):
        Dashboard(Store(str(tmp_path)), port=0, idle_timeout=0)
