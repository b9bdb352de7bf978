"""The page follows format/keys.py in a real Chromium: distinct headers, families under a prefix, the CLI's order."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.report import write_report
from tests.report.pages import open_page

KEYS = {"lr": 0.3, "val/loss": 1.0, "train/loss": 2.0, "test/acc": 0.5, "system/cpu_percent": 40.0, "epoch": 0.0}


def _runs(save_dir: str) -> None:
    for i, lr in enumerate((0.1, 0.01)):
        logger = TrackerLogger(save_dir, name="p", run_name=f"run-{i}", prefix="fit", tensorboard=False)
        logger.log_hyperparams({"lr": lr})
        for step in range(3):
            logger.log_metrics({k: v + i for k, v in KEYS.items()}, step=step)
        logger.finalize("success")


def test_the_page_heads_columns_orders_metrics_and_closes_families_as_the_cli_does(
    tmp_path: Any,
    browser_page: tuple[Any, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save_dir = str(tmp_path / "runs")
    _runs(save_dir)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["runs", save_dir]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("id "))
    cli = re.split(r"\s{2,}", line.strip())[4:]
    assert cli == ["lr", "fit-val/loss", "fit-train/loss", "fit-test/acc", "fit-epoch", "fit-lr"]

    page, errors = browser_page
    open_page(page, "file://" + write_report(Store(save_dir), tmp_path / "report.html"))
    heads = page.eval_on_selector_all(
        "#runs-table th[data-col]", "ths => ths.map((t) => [t.dataset.col, t.textContent])"
    )
    shown = [(col, text) for col, text in heads if col.startswith(("config.", "summary."))]
    assert shown == [("config.lr", "lr")] + [(f"summary.{h}", h) for h in cli[1:]], "the CLI's headers, in its order"
    sections = page.evaluate(
        "[...document.querySelectorAll('#metric-charts > details.section')].map((d) => [d.dataset.section, d.open])"
    )
    assert sections == [["fit-val", True], ["fit-train", True], ["fit-test", True], ["", True], ["fit-system", False]]
    assert page.input_value("#pc-metric") == "fit-val/loss"
    page.fill("#filter", "lr<0.05")
    names = "tds => tds.map((t) => t.textContent)"
    assert page.eval_on_selector_all("#runs-table tbody td:nth-child(2)", names) == ["run-1"]
    assert errors == []


def test_a_metric_named_like_a_hyperparameter_gets_its_own_header_on_the_page(
    tmp_path: Any, browser_page: tuple[Any, list[str]]
) -> None:
    save_dir = str(tmp_path / "runs")
    for i, (lr, logged) in enumerate(((0.1, 0.2), (0.01, 0.3))):
        logger = TrackerLogger(save_dir, name="p", run_name=f"run-{i}", tensorboard=False)
        logger.log_hyperparams({"lr": lr})
        logger.log_metrics({"lr": logged}, step=0)
        logger.finalize("success")
    page, errors = browser_page
    open_page(page, "file://" + write_report(Store(save_dir), tmp_path / "report.html"))
    heads = page.eval_on_selector_all(
        "#runs-table th[data-col]", "ths => ths.map((t) => [t.dataset.col, t.textContent])"
    )
    assert ["config.lr", "lr"] in heads and ["summary.lr", "summary.lr"] in heads
    page.fill("#filter", "lr<0.05")  # the hyperparameter, as --where reads it
    names = "tds => tds.map((t) => t.textContent)"
    assert page.eval_on_selector_all("#runs-table tbody td:nth-child(2)", names) == ["run-1"]
    page.fill("#filter", "summary.lr<0.25")
    assert page.eval_on_selector_all("#runs-table tbody td:nth-child(2)", names) == ["run-0"]
    assert errors == []


def test_a_bare_key_is_decided_over_the_runs_on_the_page_not_each_run(
    tmp_path: Any, browser_page: tuple[Any, list[str]]
) -> None:
    save_dir = str(tmp_path / "runs")
    a = TrackerLogger(save_dir, name="p", run_name="run-a", tensorboard=False)
    a.log_hyperparams({"lr": 0.5})  # run A: the hyperparameter lr, no metric lr
    a.finalize("success")
    b = TrackerLogger(save_dir, name="p", run_name="run-b", tensorboard=False)
    b.log_metrics({"lr": 0.001}, step=0)  # run B: the metric lr, no hyperparameter lr
    b.finalize("success")
    page, errors = browser_page
    open_page(page, "file://" + write_report(Store(save_dir), tmp_path / "report.html"))
    names = "tds => tds.map((t) => t.textContent)"
    shown = lambda: page.eval_on_selector_all("#runs-table tbody td:nth-child(2)", names)  # noqa: E731
    assert shown() == ["run-a", "run-b"]
    page.fill("#filter", "lr<0.01")  # the hyperparameter for both runs, as --where reads it: B has none
    assert shown() == [] and page.get_attribute("#filter", "aria-invalid") == "false"
    page.fill("#filter", "lr>0.1")
    assert shown() == ["run-a"]
    page.fill("#filter", "summary.lr<0.01")
    assert shown() == ["run-b"]
    page.fill("#filter", "lrr<0.01")  # a typo names the closest key; the last valid query keeps filtering
    assert "did you mean 'lr'" in page.text_content("#filter-error") and shown() == ["run-b"]
    assert errors == []
