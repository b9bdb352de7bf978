"""Runs in groups on the page (Chromium): the "group by" control, mean lines with bands, colours by group,
and the view kept in the link, at desktop and phone widths."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from lightning_tracker import Store
from lightning_tracker.report import write_report
from tests.read.test_groups import seeded_sweep
from tests.report.pages import open_page

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("groups")
    seeded_sweep(str(folder / "runs"))
    return "file://" + write_report(Store(str(folder / "runs")), folder / "report.html")


def _traces(page: Any, metric: str) -> list[dict[str, Any]]:
    return page.evaluate(
        """(metric) => {
            const div = [...document.querySelectorAll('.chart')].find((d) => d.dataset.metric === metric);
            return div.data.map((t) => ({kind: t.meta.kind, group: t.meta.group, runs: t.meta.runs, name: t.name,
                x: t.x, y: t.y, color: t.line.color || t.fillcolor, fill: t.fillcolor}));
        }""",
        metric,
    )


def _accs(lr: float, step: int) -> list[float]:
    """``val/acc`` of the three seeds of ``lr`` at ``step`` (see ``seeded_sweep``)."""
    return [0.5 + 10 * lr + seed / 100 - (2 - step) / 10 for seed in range(3)]


def test_the_page_groups_by_the_runs_group_with_mean_lines_bands_and_their_runs_on_hover(
    report: str, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    open_page(page, report)
    assert page.input_value("#group-by") == "group", "the runs have a group: it is the default"
    options = page.eval_on_selector_all("#group-by option", "opts => opts.map((o) => o.value)")
    assert options[:3] == ["", "group", "status"] and "lr" in options and "seed" in options
    traces = _traces(page, "val/acc")
    means = [t for t in traces if t["kind"] == "group-mean"]
    bands = [t for t in traces if t["kind"] == "group-band"]
    assert [t["group"] for t in means] == ["lr=0.01", "lr=0.02"] and len(bands) == 2
    assert [len(t["runs"]) for t in means] == [3, 3] and not [t for t in traces if t["kind"] == "line"]
    for mean, band, lr in zip(means, bands, (0.01, 0.02), strict=True):
        assert mean["x"] == [0, 1, 2]
        assert mean["y"] == pytest.approx([statistics.mean(_accs(lr, s)) for s in range(3)])
        assert band["y"] == pytest.approx(
            [max(_accs(lr, s)) for s in range(3)] + [min(_accs(lr, s)) for s in (2, 1, 0)]
        )
        assert band["fill"] == mean["color"], "a group's band in its line's colour"
    assert means[0]["color"] != means[1]["color"]
    # the runs behind a mean line, on hover
    point = page.locator("[data-metric='val/acc'] .scatterlayer .point").last
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("[data-metric='val/acc'] .hovertext", timeout=5_000)
    hover = page.eval_on_selector("[data-metric='val/acc'] .hovertext", "(t) => t.textContent")
    assert "lr=0.02" in hover and "3 runs" in hover and all(f"lr0.02-s{s}" in hover for s in range(3))
    # ± std instead of min–max
    page.select_option("#group-band", "std")
    band = next(t for t in _traces(page, "val/acc") if t["kind"] == "group-band")
    sd = [statistics.stdev(_accs(0.01, s)) for s in range(3)]
    mid = [statistics.mean(_accs(0.01, s)) for s in range(3)]
    assert band["y"] == pytest.approx(
        [m + d for m, d in zip(mid, sd, strict=True)] + [m - d for m, d in zip(mid, sd, strict=True)][::-1]
    )
    # the runs table, the scatter and the parallel coordinates take the group's colour
    rows = page.evaluate(
        "[...document.querySelectorAll('#runs-table tbody tr')].map((tr) => [tr.dataset.group,"
        " getComputedStyle(tr.querySelector('.swatch')).backgroundColor])"
    )
    colours = {group: {c for g, c in rows if g == group} for group, _ in rows}
    assert sorted(colours) == ["lr=0.01", "lr=0.02"] and all(len(c) == 1 for c in colours.values())
    assert colours["lr=0.01"] != colours["lr=0.02"]
    line = page.evaluate("document.getElementById('parallel-chart').data[0].line")
    assert line["color"] == [0, 0, 0, 1, 1, 1] and line["showscale"] is False
    scatter = page.evaluate("document.getElementById('scatter-chart').data[0].marker.color")
    assert len(set(scatter[:3])) == 1 and scatter[0] != scatter[3]
    # another key, then none: one line per run again, coloured by metric in the parallel coordinates
    page.select_option("#group-by", "seed")
    assert [t["group"] for t in _traces(page, "val/acc") if t["kind"] == "group-mean"] == ["0", "1", "2"]
    page.select_option("#group-by", "")
    assert {t["kind"] for t in _traces(page, "val/acc")} == {"line"}
    assert page.evaluate("document.getElementById('parallel-chart').data[0].line.colorscale") == "Viridis"
    assert errors == []


def test_a_link_opens_the_same_view_in_a_fresh_page(report: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1400, "height": 1800})
    try:
        page = context.new_page()
        open_page(page, report)
        page.fill("#filter", "seed>=1")
        page.select_option("#group-by", "lr")
        page.select_option("#group-band", "std")
        page.select_option("#xaxis", "t")
        page.locator("#runs-table tbody tr").first.locator("input[type=checkbox]").uncheck()
        link = page.url
        assert "#" in link
        view = _view(page)
        fresh = context.new_page()
        open_page(fresh, link)
        assert _view(fresh) == view
        assert view["filter"] == "seed>=1" and view["group"] == "lr" and view["x"] == "t" and view["band"] == "std"
        assert len(view["selected"]) == 3 and view["shown"] == 4, "4 runs match the filter; one was unselected"
        assert view["means"] == [["0.01", 1], ["0.02", 2]], "the charts draw the selected runs' groups"
    finally:
        context.close()


def _view(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => ({
            filter: document.getElementById('filter').value,
            group: document.getElementById('group-by').value,
            band: document.getElementById('group-band').value,
            x: document.getElementById('xaxis').value,
            selected: [...document.querySelectorAll('#runs-table tbody tr')]
                .filter((tr) => tr.querySelector('input').checked).map((tr) => tr.dataset.run),
            shown: document.querySelectorAll('#runs-table tbody tr').length,
            means: [...document.querySelector('[data-metric="val/acc"]').data]
                .filter((t) => t.meta.kind === 'group-mean').map((t) => [t.meta.group, t.meta.runs.length]),
        })"""
    )


def test_on_a_phone_the_group_control_fits_and_the_grouped_charts_draw(report: str, chromium: Any) -> None:
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        open_page(page, report)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "nothing wider than the phone"
        box = page.locator("#group-by").bounding_box()
        assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"]
        page.select_option("#group-by", "seed")
        assert [t["group"] for t in _traces(page, "val/acc") if t["kind"] == "group-mean"] == ["0", "1", "2"]
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert errors == []
    finally:
        context.close()
