"""The report and the dashboard as a person sees them in Chromium: on a desktop and on a 390 px phone.

One store of four runs, whose ModelCheckpoint monitors ``train/loss`` (not a ``val`` metric,
so that the monitored metric coming first is the owner's doing), a hyperparameter only one
run has, one that varies, one that does not, long run names and a logged table of floats.
"""

from __future__ import annotations

import base64
import gzip
import re
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.report import Dashboard, write_report
from tests.report.pages import open_page
from tests.report.test_report_views import record_monitor

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1400, "height": 1000}
RUNS = 4


def _store(save_dir: str) -> None:
    for i in range(RUNS):
        logger = TrackerLogger(save_dir, name="polish", run_name=f"a-rather-long-run-name-{i}", tensorboard=False)
        params: dict[str, Any] = {"batch_size": 32, "dropout": 0.1 if i % 2 else 0.3, "lr": 10.0 ** -(i + 1)}
        if i == 0:
            params["augment_note"] = "only this run has it"  # first by name, but one run is no axis
        logger.log_hyperparams(params)
        for step in range(5):
            logger.log_metrics({"val/acc": 0.5 + i / 10 + step / 100, "train/loss": 2.0 / (step + 1 + i)}, step=step)
        logger.log_table("predictions", columns=["id", "score"], data=[[1, 1 / 3], [2, 2 / 3 + 1e-9]], step=4)
        logger.finalize("success")
    record_monitor(save_dir, "train/loss")


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("polish") / "team-runs"
    _store(str(folder))
    return folder


@pytest.fixture(scope="module")
def report(store_dir: Path) -> str:
    return write_report(Store(str(store_dir)), store_dir.parent / "report.html")


def _page(chromium: Any, url: str, viewport: dict[str, int]) -> tuple[Any, Any, list[str]]:
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_page(page, url)
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    page.wait_for_timeout(300)  # opened sections draw their charts
    return context, page, errors


@pytest.fixture(scope="module")
def trained_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A report with every section: a real fit with gradient histograms and stored checkpoints."""
    from lightning_tracker.integration.callbacks import GradientMonitor
    from tests.helpers import lightning, tiny_model, trainer

    folder = tmp_path_factory.mktemp("trained")
    logger = TrackerLogger(str(folder / "runs"), name="grads", log_model=True, tensorboard=False)
    best = lightning().callbacks.ModelCheckpoint(monitor="train/loss", dirpath=str(folder / "ckpt"), save_top_k=2)
    trainer(
        logger,
        max_epochs=2,
        enable_checkpointing=True,
        default_root_dir=str(folder),
        callbacks=[GradientMonitor(every_n_steps=1, bins=8), best],
    ).fit(tiny_model())
    return write_report(Store(str(folder / "runs")), folder / "report.html")


WIDER = """() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5 && !e.closest('.table-wrap'))
    .map((e) => e.tagName + '#' + e.id + '.' + e.className)"""


@pytest.mark.parametrize("which", ["report", "trained_report"])
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_report_fits_the_screen_without_sideways_scrolling(
    which: str, chromium: Any, viewport: dict[str, int], request: pytest.FixtureRequest
) -> None:
    context, page, errors = _page(chromium, "file://" + request.getfixturevalue(which), viewport)
    try:
        if which == "trained_report":
            assert page.is_visible("#histograms-section") and page.is_visible("#checkpoints-section")
        width = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], f"the page scrolls sideways: {page.evaluate(WIDER)[:8]}"
        assert errors == []
    finally:
        context.close()


def test_the_dashboard_fits_a_phone_without_sideways_scrolling(store_dir: Path, chromium: Any) -> None:
    dashboard = Dashboard(Store(str(store_dir)), port=0).start()
    try:
        context, page, errors = _page(chromium, dashboard.url, PHONE)
        try:
            width = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
            assert width[0] <= width[1], f"the dashboard scrolls sideways: {page.evaluate(WIDER)[:8]}"
            assert errors == []
        finally:
            context.close()
    finally:
        dashboard.stop()


def test_the_header_shows_the_store_name_not_the_local_path(report: str, store_dir: Path, chromium: Any) -> None:
    context, page, errors = _page(chromium, "file://" + report, DESKTOP)
    try:
        header = page.inner_text("header")
        assert "team-runs" in header and str(store_dir.parent) not in header, header
        assert str(store_dir.parent) not in page.title()
    finally:
        context.close()
    html = Path(report).read_text()
    packed = re.search(r'id="lt-data" type="application/gzip-base64">([^<]+)<', html)
    assert packed is not None
    data = gzip.decompress(base64.b64decode(packed[1])).decode()
    assert str(store_dir.parent) not in html and str(store_dir.parent) not in data, "no local path in the file"


def test_the_monitored_metric_is_the_first_metric_of_the_runs_table(report: str, chromium: Any) -> None:
    context, page, errors = _page(chromium, "file://" + report, DESKTOP)
    try:
        cols = page.eval_on_selector_all("#runs-table th[data-col]", "ths => ths.map((t) => t.dataset.col)")
        metrics = [c for c in cols if c.startswith("summary.")]
        assert metrics[0] == "summary.train/loss", f"the metric ModelCheckpoint monitors first: {cols}"
    finally:
        context.close()


def test_the_scatter_opens_on_a_hyperparameter_that_varies(report: str, chromium: Any) -> None:
    context, page, errors = _page(chromium, "file://" + report, DESKTOP)
    try:
        x = page.input_value("#scatter-x")
        assert x == "lr", f"lr takes four values; {x!r} does not vary"
        options = page.eval_on_selector_all("#scatter-x option", "opts => opts.map((o) => o.value)")
        assert "batch_size" not in options and "augment_note" not in options, "only keys with two values or more"
    finally:
        context.close()


def test_table_floats_are_rounded_like_the_rest_of_the_page(report: str, chromium: Any) -> None:
    context, page, errors = _page(chromium, "file://" + report, DESKTOP)
    try:
        cells = page.eval_on_selector_all(
            ".media-table tbody tr:first-child td", "tds => tds.map((t) => [t.textContent, t.title])"
        )
        assert cells[0][0] == "1" and cells[1][0] == "0.3333", cells
        assert cells[1][1] == str(1 / 3), "the whole value on hover"
        assert errors == []
    finally:
        context.close()
