"""The report as a W&B or TensorBoard user reads it, in a real headless Chromium.

One sweep of 21 runs (``lr`` from 1e-4 to 1e-1, the runs' ModelCheckpoint monitoring
``val/loss``) is written once per module; each test opens the report once.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.layout import RUN_FILE
from lightning_tracker.report import write_report
from lightning_tracker.storage.changes import record_change
from tests.report.pages import open_page, open_section

RUNS = 21
STEPS = 40
KEYS = ["train/loss", "train_acc", "val/loss", "val/acc", "test/loss", "lr-SGD", "gradients/w_norm",
        "parameters/w_mean", "system/ram_used_bytes", "system/net_sent_bytes"]  # fmt: skip


def record_monitor(save_dir: str, name: str, mode: str = "min") -> None:
    """Writes the ModelCheckpoint monitor into each run's run.json, where the logger does not yet."""
    for run in Store(save_dir).runs():
        path = f"{run.path}/{RUN_FILE}"
        doc = json.loads(run.storage.read_bytes(path))
        doc["monitor"] = doc.get("monitor") or {"name": name, "mode": mode}
        run.storage.write_bytes(path, json.dumps(doc).encode())
        record_change(run.storage, run.project, run.id, "edit")  # a run.json written by hand tells the index


def sweep(save_dir: str, runs: int = RUNS) -> None:
    for i in range(runs):
        lr = 10 ** (-4 + 3 * i / (runs - 1))
        logger = TrackerLogger(save_dir, name="sweep", run_name=f"run-{i:02d}", tensorboard=False)
        logger.log_hyperparams({"lr": lr, "batch_size": 32, "optimizer": "adam" if i % 2 else "sgd"})
        for step in range(STEPS):
            epoch = step // 10
            logger.log_metrics(
                {
                    "train/loss": math.exp(-lr * step) + 0.05 * (step % 3),
                    "train_acc": 0.5,
                    "lr-SGD": lr,
                    "epoch": float(epoch),
                    "gradients/w_norm": 1.0,
                    "parameters/w_mean": 0.0,
                    "system/ram_used_bytes": 3.2e9 + i * 1e6,
                    "system/net_sent_bytes": step * 5e5,
                },
                step=step,
            )
            if step % 10 == 9:
                logger.log_metrics(
                    {"val/loss": 1 / (1 + lr * step), "val/acc": lr * step, "test/loss": 1.0, "epoch": float(epoch)},
                    step=step,
                )
        logger.finalize("success")
    record_monitor(save_dir, "val/loss")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("views")
    sweep(str(folder / "runs"))
    return "file://" + write_report(Store(str(folder / "runs")), folder / "report.html")


def _traces(page: Any, metric: str, kind: str = "line") -> list[dict[str, Any]]:
    return page.evaluate(
        """([metric, kind]) => {
            const div = [...document.querySelectorAll('.chart')].find((d) => d.dataset.metric === metric);
            return (div.data || []).filter((t) => t.meta.kind === kind).map((t) => ({run: t.meta.run, name: t.name,
                color: t.line.color, opacity: t.opacity ?? 1, x: t.x, y: t.y}));
        }""",
        [metric, kind],
    )


def test_hyperparameters_open_on_the_monitored_metric_on_log_axes_with_names_on_hover(
    report: str, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    open_page(page, report)
    options = page.eval_on_selector_all("#pc-metric option", "opts => opts.map((o) => o.value)")
    assert page.input_value("#pc-metric") == "val/loss", "the metric ModelCheckpoint monitors"
    assert not [o for o in options if o == "epoch" or o.split("/")[0] in ("system", "gradients", "parameters")]
    assert page.input_value("#scatter-x") == "lr", "the first hyperparameter that differs (batch_size does not)"
    parallel = page.evaluate("document.getElementById('parallel-chart').layout.title.text")
    assert parallel == "hyperparameters vs val/loss"
    # lr spans three decades: log10 values in the parallel coordinates, labelled with the values
    dims = page.evaluate("document.getElementById('parallel-chart').data[0].dimensions")
    lr = next((d for d in dims if d["label"] == "lr (log)"), None)
    assert lr is not None and lr["values"][0] == pytest.approx(-4) and lr["values"][-1] == pytest.approx(-1)
    assert lr["ticktext"] == ["0.0001", "0.001", "0.01", "0.1"]
    assert page.evaluate("document.getElementById('scatter-chart').layout.xaxis.type") == "log"
    # run names on hover only: labels beside 21 points would overlap
    scatter = page.evaluate("document.getElementById('scatter-chart').data[0]")
    assert scatter["mode"] == "markers" and len(scatter["x"]) == RUNS
    assert page.locator("#scatter-chart .textpoint").count() == 0
    point = page.locator("#scatter-chart .scatterlayer .point").last
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#scatter-chart .hovertext", timeout=5_000)
    assert "run-20" in page.eval_on_selector("#scatter-chart .hovertext", "(t) => t.textContent")
    assert errors == []


def test_charts_are_grouped_by_prefix_with_the_main_metrics_first_and_searchable(
    report: str, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    open_page(page, report)
    sections = page.evaluate(
        """() => [...document.querySelectorAll('#metric-charts > details.section')].map((d) => ({
            name: d.dataset.section, open: d.open, drawn: d.querySelectorAll('.chart[data-drawn]').length,
            charts: [...d.querySelectorAll('.chart')].map((c) => c.dataset.metric)}))"""
    )
    assert [s["name"] for s in sections] == ["val", "train", "test", "", "gradients", "parameters", "system"]
    by_name = {s["name"]: s for s in sections}
    assert by_name["val"]["charts"] == ["val/loss", "val/acc"], "the monitored metric first"
    assert by_name["train"]["charts"] == ["train/loss", "train_acc"]
    assert by_name[""]["charts"] == ["lr-SGD"], "epoch is an x-axis, not a chart"
    for name in ("gradients", "parameters", "system"):
        assert not by_name[name]["open"] and by_name[name]["drawn"] == 0, f"{name} waits, closed and undrawn"
    assert by_name["val"]["drawn"] == 2 and by_name["train"]["drawn"] == 2
    open_section(page, "system")

    page.fill("#chart-search", "LOSS")  # a substring, any case
    visible = page.evaluate(
        """() => [...document.querySelectorAll('#metric-charts details.section')].filter((d) => !d.hidden)
            .map((d) => [d.dataset.section, [...d.querySelectorAll('.chart')].filter((c) => !c.hidden)
            .map((c) => c.dataset.metric)])"""
    )
    assert visible == [["val", ["val/loss"]], ["train", ["train/loss"]], ["test", ["test/loss"]]]
    page.fill("#chart-search", "no such chart")
    assert page.evaluate("[...document.querySelectorAll('#metric-charts details.section')].every((d) => d.hidden)")
    assert page.inner_text("#chart-search-count") == "no chart matches"
    page.fill("#chart-search", "")
    assert page.evaluate("[...document.querySelectorAll('#metric-charts details.section')].every((d) => !d.hidden)")
    assert errors == []


def _lab(color: str) -> tuple[float, float, float]:
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lin = [((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92 for c in (r, g, b)]
    x = (lin[0] * 0.4124 + lin[1] * 0.3576 + lin[2] * 0.1805) / 0.95047
    y = lin[0] * 0.2126 + lin[1] * 0.7152 + lin[2] * 0.0722
    z = (lin[0] * 0.0193 + lin[1] * 0.1192 + lin[2] * 0.9505) / 1.08883
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def test_twenty_runs_get_distinct_colours_that_survive_a_reload_and_a_filter(
    report: str, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    open_page(page, report)
    colours = {t["run"]: t["color"] for t in _traces(page, "train/loss")}
    assert len(colours) == RUNS and len(set(colours.values())) == RUNS
    first20 = [colours[k] for k in sorted(colours)][:20]
    closest = min(math.dist(_lab(a), _lab(b)) for a, b in itertools.combinations(first20, 2))
    assert closest > 25, f"every two of 20 colours are clearly distinct (CIE76 ΔE {closest:.1f})"
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert {t["run"]: t["color"] for t in _traces(page, "train/loss")} == colours, "the same colour after a reload"
    page.fill("#filter", "optimizer=adam")
    kept = {t["run"]: t["color"] for t in _traces(page, "train/loss")}
    assert len(kept) == RUNS // 2 and all(colours[k] == c for k, c in kept.items()), "a run keeps its colour"
    assert errors == []


def test_smoothing_draws_over_the_faint_raw_line_and_epoch_is_an_x_axis(
    report: str, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    open_page(page, report)
    assert _traces(page, "train/loss", "raw") == [], "no smoothing, one line per run"
    raw_y = {t["run"]: t["y"] for t in _traces(page, "train/loss")}
    page.eval_on_selector("#smoothing", "(s) => { s.value = '0.8'; s.dispatchEvent(new Event('input')); }")
    raw, smooth = _traces(page, "train/loss", "raw"), _traces(page, "train/loss")
    assert len(raw) == len(smooth) == RUNS
    for r, s in zip(raw, smooth, strict=True):
        assert r["run"] == s["run"] and r["color"] == s["color"] and r["opacity"] < 0.5 <= s["opacity"]
        assert r["y"] == raw_y[r["run"]] and s["y"] != r["y"] and s["y"][0] == pytest.approx(r["y"][0])
        assert max(s["y"]) - min(s["y"]) < max(r["y"]) - min(r["y"]), "smoothed is calmer"
    page.select_option("#xaxis", "epoch")
    line = _traces(page, "train/loss")[0]
    assert line["x"] == [float(step // 10) for step in range(STEPS)], "x is the epoch logged at each step"
    assert page.evaluate("document.querySelector('[data-metric=\"val/loss\"]').layout.xaxis.title.text") == "epoch"
    assert errors == []


def test_system_counters_are_rates_and_bytes_read_in_kb_mb_gb(report: str, browser_page: tuple[Any, list[str]]) -> None:
    page, errors = browser_page
    open_page(page, report)
    open_section(page, "system")
    layout = (
        "(m) => { const l = document.querySelector(`[data-metric='${m}']`).layout; "
        "return [l.title.text, l.yaxis.ticksuffix]; }"
    )
    assert page.evaluate(layout, "system/ram_used_bytes") == ["system/ram_used_bytes", " GB"]
    title, suffix = page.evaluate(layout, "system/net_sent_bytes")
    assert title == "system/net_sent_bytes (per second)" and re.fullmatch(r" (B|KB|MB|GB|TB)/s", suffix)
    ram = _traces(page, "system/ram_used_bytes")
    assert ram[0]["y"][0] == pytest.approx(3.2), "3.2e9 bytes drawn as 3.2 GB"
    ticks = page.eval_on_selector_all(
        "[data-metric='system/ram_used_bytes'] .ytick text, [data-metric='system/net_sent_bytes'] .ytick text",
        "ts => ts.map((t) => t.textContent)",
    )
    assert ticks and all(re.fullmatch(r"[\d.,\u2212-]+ (B|KB|MB|GB|TB)(/s)?", t) for t in ticks), ticks
    sent = _traces(page, "system/net_sent_bytes")[0]
    assert len(sent["y"]) == STEPS - 1, "a rate per sample after the first"
    assert all(v is None or v > 0 for v in sent["y"]), "bytes per second, never the rising counter's 0 at the start"
    assert errors == []


def test_without_a_monitor_the_first_val_metric_is_the_default_then_the_first_metric_never_epoch(
    tmp_path: Any, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    save_dir = str(tmp_path / "runs")
    for name, metrics in (
        ("a", {"accuracy": 0.5, "epoch": 0.0, "train_loss": 1.0, "val_acc": 0.7}),
        ("b", {"accuracy": 0.6, "epoch": 0.0, "system/cpu_percent": 9.0}),
    ):
        logger = TrackerLogger(save_dir, name="p", run_name=name, tensorboard=False)
        logger.log_hyperparams({"lr": 0.1 if name == "a" else 0.2})
        logger.log_metrics(metrics, step=0)
        logger.finalize("success")
    open_page(page, "file://" + write_report(Store(save_dir), tmp_path / "report.html"))
    assert page.input_value("#pc-metric") == "val_acc"
    assert page.evaluate("document.getElementById('scatter-chart').layout.title.text") == "val_acc vs lr"
    page.fill("#filter", "name=b")  # run b logged no val* metric
    assert page.input_value("#pc-metric") == "accuracy"
    options = page.eval_on_selector_all("#pc-metric option", "opts => opts.map((o) => o.value)")
    assert options == ["accuracy"], "neither epoch nor system metrics are scores"
    assert errors == []
