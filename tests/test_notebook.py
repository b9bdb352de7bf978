"""The quickstart notebook runs top to bottom on CPU and leaves runs and a report behind."""

from __future__ import annotations

import os
from typing import Any

import nbformat
from nbclient import NotebookClient

from lightning_tracker import Store

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(__file__)), "notebooks", "quickstart.ipynb")


def test_quickstart_notebook_runs_and_writes_runs_and_a_report(tmp_path: Any) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    table = Store(str(tmp_path / "runs")).table("quickstart")
    assert len(table) == 3 and set(table["status"]) == {"finished"}
    assert sorted(table["config.lr"]) == [0.005, 0.01, 0.05]
    assert (tmp_path / "report.html").stat().st_size > 1_000_000
    printed = "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))
    assert str(tmp_path / "report.html") in printed and "adam runs: [" in printed
