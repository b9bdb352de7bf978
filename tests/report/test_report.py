"""The HTML report: its data, and the page loaded in a real headless Chromium."""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.report import build_payload, write_report
from tests.helpers import REPO
from tests.report.pages import open_page, open_section

ARTIFACTS = os.path.join(REPO, "test-artifacts")
LONG = 3000  # steps of train/loss: more than the 500 points drawn per line


def make_runs(save_dir: str, options: Any = None) -> None:
    """Three runs: ``train/loss`` over ``LONG`` steps (a spike at step 1234), ``val/acc``, system metrics."""
    for i, (lr, optimizer) in enumerate(((0.1, "sgd"), (0.01, "adam"), (0.001, "sgd"))):
        logger = TrackerLogger(
            save_dir, name="proj", run_name=f"run-{i}", storage_options=options, tags=["sweep"], tensorboard=False
        )
        logger.log_hyperparams({"lr": lr, "optimizer": optimizer, "width": 64})
        for step in range(LONG):
            loss = 100.0 if step == 1234 else math.exp(-lr * step / 10) + 0.01
            logger.log_metrics({"train/loss": loss, "system/memory_percent": 20.0 + i}, step=step)
        for epoch in range(3):
            logger.log_metrics({"val/acc": 0.5 + lr + epoch * 0.1}, step=(epoch + 1) * 1000)
        logger.finalize("success")


def test_payload_draws_at_most_max_points_while_the_data_stays_whole(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    make_runs(save_dir, options)
    store = Store(save_dir, options)
    payload = build_payload(store, project="proj", max_points=300)
    assert [r["name"] for r in payload["runs"]] == ["run-0", "run-1", "run-2"]
    first = payload["runs"][0]
    assert first["config"] == {"lr": 0.1, "optimizer": "sgd", "width": 64} and first["summary"]["val/acc"] == 0.8
    loss = payload["series"][first["key"]]["train/loss"]
    # step buckets of the rollup, a multiple of its width wide: at most max_points of them
    assert loss["n"] == LONG and 150 < len(loss["y"]) <= 300 and loss["hi"].max() == 100.0
    acc = payload["series"][first["key"]]["val/acc"]
    assert acc["step"].tolist() == [1000, 2000, 3000] and "lo" not in acc
    assert len(store.run("run-0").metrics(["train/loss"])) == LONG, "the data is never sampled"


def test_a_nan_point_leaves_its_bucket_drawn_and_a_spike_stays_in_the_envelope(tmp_path: Any) -> None:
    logger = TrackerLogger(str(tmp_path / "runs"), name="p", version="r1", tensorboard=False)
    for step in range(10_000):
        value = 50.0 if step == 4321 else float("nan") if step == 77 else math.sin(step / 100.0)
        logger.log_metrics({"wave": value}, step=step)
    logger.finalize("success")
    wave = build_payload(Store(str(tmp_path / "runs")), max_points=200)["series"]["p/r1"]["wave"]
    assert wave["n"] == 10_000 and 100 < len(wave["y"]) <= 200
    assert wave["hi"].max() == 50.0 and wave["lo"].min() == pytest.approx(-1.0, abs=1e-3)
    assert all(math.isfinite(y) for y in wave["y"]), "a NaN point does not blank out its bucket"
    assert all(a < b for a, b in zip(wave["step"], wave["step"][1:], strict=False))


def _lines(page: Any, metric: str) -> list[dict[str, Any]]:
    """The line traces drawn in a metric's chart: run, drawn points, total points, x of the first point."""
    return page.evaluate(
        """(metric) => {
            const div = [...document.querySelectorAll('.chart')].find((d) => d.dataset.metric === metric);
            return div.data.filter((t) => t.meta.kind === 'line').map((t) => ({
                run: t.name, drawn: t.x.length, points: t.meta.points, x0: t.x[0], x1: t.x[t.x.length - 1]}));
        }""",
        metric,
    )


def test_report_in_chromium_draws_selected_runs_and_filters(tmp_path: Any, browser_page: tuple[Any, list[str]]) -> None:
    page, errors = browser_page
    save_dir = str(tmp_path / "runs")
    make_runs(save_dir)
    path = write_report(Store(save_dir), tmp_path / "report.html")
    assert os.path.getsize(path) < 8_000_000
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    open_page(page, f"file://{path}")
    assert requests == [f"file://{path}"], "the report loads nothing but itself"

    loss = _lines(page, "train/loss")
    assert [t["run"] for t in loss] == ["run-0", "run-1", "run-2"]
    assert all(250 < t["drawn"] <= 500 and t["points"] == LONG for t in loss)
    assert [t["drawn"] for t in _lines(page, "val/acc")] == [3, 3, 3]
    open_section(page, "system")  # closed, so drawn only now
    assert [t["run"] for t in _lines(page, "system/memory_percent")] == ["run-0", "run-1", "run-2"]
    envelope_max = page.evaluate(
        """() => Math.max(...document.querySelector('[data-metric="train/loss"]').data
            .filter((t) => t.meta.kind === 'envelope').flatMap((t) => t.y))"""
    )
    assert envelope_max == 100.0, "the spike survives down-sampling in the envelope"
    diff = page.eval_on_selector_all("#diff-table td.changed", "cells => cells.map((c) => c.textContent)")
    assert sorted(diff) == ["0.001", "0.01", "adam"]
    assert page.evaluate("document.getElementById('parallel-chart').data[0].dimensions.length") == 3
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "report.png"), full_page=True)

    page.fill("#filter", "lr<0.05")
    assert page.eval_on_selector_all("#runs-table tbody tr", "rows => rows.length") == 2
    assert [t["run"] for t in _lines(page, "train/loss")] == ["run-1", "run-2"]
    assert page.eval_on_selector_all("#diff-table td.changed", "cells => cells.length") == 2  # lr, optimizer
    page.fill("#filter", "optimizer=adam")
    assert [t["run"] for t in _lines(page, "val/acc")] == ["run-1"]
    page.fill("#filter", "")
    page.click("#runs-table tbody tr[data-run$='run-0'] input, #runs-table tbody tr:first-child input")
    assert len(_lines(page, "train/loss")) == 2, "unticking a run removes it from the charts"

    page.select_option("#xaxis", "t")
    times = _lines(page, "val/acc")
    assert all(0 <= t["x0"] <= t["x1"] < 600 for t in times), "x is seconds since the run started"
    page.check("#logscale")
    assert page.evaluate("document.querySelector('[data-metric=\"train/loss\"]').layout.yaxis.type") == "log"
    names = "cells => cells.map((c) => c.textContent)"
    page.click("#runs-table th[data-col='summary.val/acc']")
    assert page.eval_on_selector_all("#runs-table tbody td:nth-child(2)", names) == ["run-2", "run-1", "run-0"]
    page.click("#runs-table th[data-col='summary.val/acc']")
    assert page.eval_on_selector_all("#runs-table tbody td:nth-child(2)", names) == ["run-0", "run-1", "run-2"]
    page.screenshot(path=os.path.join(ARTIFACTS, "report-filtered.png"), full_page=True)
    assert errors == []


def test_report_shows_gradient_histograms_and_checkpoints_when_recorded(
    tmp_path: Any, browser_page: tuple[Any, list[str]]
) -> None:
    from lightning_tracker.integration.callbacks import GradientMonitor
    from tests.helpers import lightning, tiny_model, trainer

    page, errors = browser_page
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="grads", version="g1", log_model=True, tensorboard=False)
    best = lightning().callbacks.ModelCheckpoint(monitor="train/loss", dirpath=str(tmp_path / "ckpt"))
    trainer(
        logger,
        max_epochs=2,
        enable_checkpointing=True,
        default_root_dir=str(tmp_path),
        callbacks=[GradientMonitor(every_n_steps=1, bins=8), best],
    ).fit(tiny_model())
    run = Store(save_dir).run("g1")
    assert run.monitor == {"name": "train/loss", "mode": "min"}
    hist = run.histograms()
    assert not hist.empty and len(run.checkpoints) >= 1
    path = write_report(Store(save_dir), tmp_path / "report.html")
    open_page(page, f"file://{path}")
    assert page.is_visible("#histograms-section") and page.is_visible("#checkpoints-section")
    assert page.input_value("#pc-metric") == "train/loss", "the monitored metric, ahead of val/loss"
    tensors = page.eval_on_selector_all("#hist-tensor option", "opts => opts.map((o) => o.value)")
    first = sorted(f"{t} ({k})" for t, k in hist[["tensor", "kind"]].drop_duplicates().itertuples(index=False))[0]
    assert tensors[0] == first
    heat_x = page.evaluate("document.querySelector('#histogram-charts .chart').data[0].x")
    tensor, kind = first.rsplit(" (", 1)
    expected = hist[(hist["tensor"] == tensor) & (hist["kind"] == kind.rstrip(")"))]["step"].tolist()
    assert heat_x == expected, "one heatmap column per recorded step"
    cells = page.inner_text("#checkpoints")
    assert run.checkpoints[-1].name in cells and "latest" in cells
    # sizes read in KB/MB, aliases as chips, no JSON
    chips = page.eval_on_selector_all("#checkpoints span.chip", "cs => cs.map((c) => c.textContent)")
    assert chips.count("latest") == 1
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('#checkpoints table')].flatMap((t) => {
            const col = [...t.rows[0].cells].findIndex((c) => c.textContent === 'size');
            return [...t.rows].slice(1).map((r) => r.cells[col].textContent); })"""
    )
    assert len(sizes) == len(run.checkpoints) and all(re.fullmatch(r"\d+(\.\d)? (B|KB|MB|GB)", s) for s in sizes), sizes
    assert "[" not in cells and '"' not in cells
    # the heatmap's colour is log(1 + count), and an empty bin is blank, not the lowest colour
    heat = page.evaluate(
        "(() => { const t = document.querySelector('#histogram-charts .chart').data[0]; "
        "return {z: t.z, counts: t.customdata}; })()"
    )
    pairs = [(z, c) for zs, cs in zip(heat["z"], heat["counts"], strict=True) for z, c in zip(zs, cs, strict=True)]
    assert any(z is None for z, _ in pairs) and all((z is None) == (c == 0) for z, c in pairs)
    assert all(z == pytest.approx(math.log1p(c)) for z, c in pairs if z is not None)
    page.screenshot(path=os.path.join(ARTIFACTS, "report-histograms.png"), full_page=True)
    assert errors == []


def test_runs_without_histograms_or_checkpoints_leave_those_views_hidden(
    tmp_path: Any, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    save_dir = str(tmp_path / "runs")
    make_runs(save_dir)
    payload = build_payload(Store(save_dir))
    assert payload["histograms"] == {} and payload["checkpoints"] == {}
    path = write_report(Store(save_dir), tmp_path / "report.html")
    open_page(page, f"file://{path}")
    assert not page.is_visible("#histograms-section") and not page.is_visible("#checkpoints-section")
    one = write_report(Store(save_dir), tmp_path / "one.html", runs=Store(save_dir).runs()[:1])
    open_page(page, f"file://{one}")
    assert " · 1 run · " in page.inner_text("#subtitle") and page.inner_text("#runs-count").startswith(
        "1 of 1 run shown"
    )
    assert errors == []


def test_demo_ends_by_writing_the_report_and_naming_the_serve_command(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import lightning_tracker.cli.demo as demo
    from lightning_tracker.cli import main

    real = demo.run_demo
    # one short configuration keeps the test quick; the full demo is tests/cli/test_demo.py
    monkeypatch.setattr(demo, "run_demo", lambda *a, **kw: real(*a, configs=(demo.DemoConfig(epochs=1),), **kw))
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--save-dir", "runs"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    report = tmp_path / "report.html"
    assert f"report written to {report}" in out and "lightning-tracker serve runs" in out
    payload = build_payload(Store(str(tmp_path / "runs")), project="demo")
    assert len(payload["runs"]) == 1 and report.stat().st_size > 1_000_000
