"""The quickstart notebook runs top to bottom on CPU, shows its charts inline and writes only
into the temporary folder it makes, never next to itself in the repository."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from lightning_tracker import Store
from tests.helpers import REPO

NOTEBOOK = Path(REPO) / "notebooks" / "quickstart.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


def _entries() -> set[str]:
    """The repository's top level and the notebook's folder, where a careless notebook writes."""
    return {*os.listdir(REPO), *(f"notebooks/{n}" for n in os.listdir(NOTEBOOK.parent))}


def _values(array: Any) -> list[Any]:
    """An array of a plotly figure's JSON: a list, or (plotly >= 6) base64 with its dtype."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _outputs(cell: Any) -> list[Any]:
    return list(cell.get("outputs", []))


def test_quickstart_notebook_shows_charts_inline_and_writes_only_into_its_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's tempfile.mkdtemp() lands here
    before = _entries()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not [o for cell in nb.cells for o in _outputs(cell)], "the notebook is committed without outputs"
    # the kernel starts in the notebook's folder, as Jupyter starts it
    resources = {"metadata": {"path": str(NOTEBOOK.parent)}}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources).execute()
    errors = [o for cell in nb.cells for o in _outputs(cell) if o.get("output_type") == "error"]
    assert errors == []

    charts = [cell for cell in nb.cells if any(PLOTLY in o.get("data", {}) for o in _outputs(cell))]
    assert len(charts) == 3, "metric overlay, parallel coordinates, gradient heatmap"
    figures = [[o["data"][PLOTLY] for o in _outputs(cell) if PLOTLY in o.get("data", {})] for cell in charts]
    kinds = [{trace["type"] for figure in cell for trace in figure["data"]} for cell in figures]
    assert kinds == [{"scatter"}, {"parcoords"}, {"heatmap"}]
    overlay = figures[0][0]  # 3 runs, val/loss after each of 4 epochs of 16 steps
    assert [_values(trace["x"]) for trace in overlay["data"]] == [[15, 31, 47, 63]] * 3
    assert all(any("text/html" in o.get("data", {}) for o in _outputs(cell)) for cell in charts)  # classic notebook

    (workdir,) = tmp_path.glob("lightning-tracker-quickstart-*")
    table = Store(str(workdir / "runs")).table("quickstart")
    assert len(table) == 3 and set(table["status"]) == {"finished"}
    assert sorted(table["config.lr"]) == [0.005, 0.01, 0.05]
    run = Store(str(workdir / "runs")).run(table["id"].iloc[0])
    assert run.monitor == {"name": "val/loss", "mode": "min"} and len(run.checkpoints) == 2
    assert not run.histograms("net.0.weight").empty
    assert (workdir / "report.html").stat().st_size > 1_000_000
    assert (workdir / "best.ckpt").stat().st_size > 0
    printed = "".join(o.get("text", "") for cell in nb.cells for o in _outputs(cell))
    assert f"working in {workdir}" in printed and str(workdir / "report.html") in printed
    assert "adam runs: [" in printed and "monitored: {'name': 'val/loss', 'mode': 'min'}" in printed
    assert "serves" in printed and "data of 3 runs" in printed
    images = [o for cell in nb.cells for o in _outputs(cell) if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the logged figure, read back and shown inline"
    assert "eval/predicted_vs_target" in printed and "eval/worst" in printed
    evaluated = Store(str(workdir / "runs")).runs("quickstart-eval")[0]
    assert evaluated.read_media("eval/worst", 0).shape == (5, 3)
    assert _entries() - before == set(), "the notebook wrote into the repository"
