"""The quickstart notebook runs top to bottom on CPU, shows its charts inline, writes only into
the temporary folder it makes (never next to itself in the repository) and removes that folder
in its last cell; its headings are numbered in the order they come, as its opening list says."""

from __future__ import annotations

import base64
import os
import re
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
    # the kernel starts in the notebook's folder, as Jupyter starts it
    resources = {"metadata": {"path": str(NOTEBOOK.parent)}}
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources)
    with client.setup_kernel():  # cell by cell: what it wrote is checked before the last cell removes it
        for index, cell in enumerate(nb.cells[:-1]):
            client.execute_cell(cell, index)
        (workdir,) = tmp_path.glob("lightning-tracker-quickstart-*")
        _check_what_it_wrote(nb, workdir)
        client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
    assert not workdir.exists() and list(tmp_path.glob("lightning-tracker-quickstart-*")) == [], "removed at the end"
    assert f"removed {workdir}" in "".join(o.get("text", "") for o in _outputs(nb.cells[-1]))
    assert _entries() - before == set(), "the notebook wrote into the repository"


def _check_what_it_wrote(nb: Any, workdir: Path) -> None:
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


def test_the_notebook_headings_are_numbered_in_the_order_they_come() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    numbers = [int(n) for n in re.findall(r"^## (\d+)\. ", text, flags=re.MULTILINE)]
    assert numbers == list(range(1, len(numbers) + 1)), f"sections out of order: {numbers}"
    promised = re.findall(r"^(\d+)\. ", nb.cells[0].source, flags=re.MULTILINE)
    assert [int(n) for n in promised] == numbers, "the opening list names each numbered section"


def test_make_notebook_opens_the_quickstart_in_jupyter(tmp_path: Path) -> None:
    import shutil
    import subprocess

    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"  # a dry run (-n): nothing is installed or started
    # under `make test` this make is a sub-make: no "Entering directory" lines, no inherited flags
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    argv = [make, "-n", "--no-print-directory", "notebook", f"VENV={venv}"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert any('install -q -e ".[all,dev]"' in line for line in lines), "the dev extra brings jupyter"
    assert lines[-1] == f"{venv}/bin/jupyter lab notebooks/quickstart.ipynb"
    assert (Path(REPO) / lines[-1].split()[-1]).is_file()


def test_the_notebook_is_published_with_its_outputs_charts_as_pictures() -> None:
    # read without a kernel (GitHub, a file browser) no script runs: charts must be pictures too
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "run top to bottom, once"
    outputs = [o for cell in code for o in _outputs(cell)]
    assert [o for o in outputs if o.get("output_type") == "error"] == []
    charts = [o for o in outputs if PLOTLY in o.get("data", {})]
    assert len(charts) == 3 and all(o["data"].get("image/png") for o in charts), "each chart has its PNG"
    assert not [o for o in outputs if "<script" in str(o.get("data", {}).get("text/html", ""))], "no script bundle"
    assert "removed" in "".join(o.get("text", "") for o in _outputs(code[-1])), "its folder removed at the end"
    assert NOTEBOOK.stat().st_size < 1_000_000
