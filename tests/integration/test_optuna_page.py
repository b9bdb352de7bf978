"""The report shows a trial Optuna pruned as ``pruned``, in its own colour (not a failure's), in Chromium."""

from __future__ import annotations

from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from lightning_tracker import Store  # noqa: E402
from lightning_tracker.report import write_report  # noqa: E402
from tests.integration.test_optuna import _objective, _PruneAfterFirst  # noqa: E402
from tests.report.pages import open_page  # noqa: E402


def test_the_report_shows_pruned_trials_in_their_own_colour(tmp_path: Any, browser_page: tuple[Any, list[str]]) -> None:
    save_dir = str(tmp_path / "runs")
    optuna.create_study(study_name="page", pruner=_PruneAfterFirst()).optimize(_objective(save_dir, None), n_trials=2)
    out = write_report(Store(save_dir), tmp_path / "report.html")
    page, errors = browser_page
    open_page(page, "file://" + out)
    cells = page.evaluate(
        "[...document.querySelectorAll('td[class*=status-]')].map((c) => [c.textContent, c.classList[1],"
        " getComputedStyle(c).color])"
    )
    assert sorted(c[:2] for c in cells) == [["finished", "status-finished"], ["pruned", "status-pruned"]]
    colours = {c[0]: c[2] for c in cells}
    assert colours["pruned"] == "rgb(154, 103, 0)", "amber: stopped on purpose, neither green nor a failure's red"
    assert errors == []
