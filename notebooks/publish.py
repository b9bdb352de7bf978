"""Runs the quickstart notebook and saves it with its outputs, as it is published.

Where the notebook is read without a kernel (GitHub, a file browser) scripts do not run: a
plotly chart shows only as a picture. So each chart gets a PNG drawn by Chromium beside
its interactive form (``application/vnd.plotly.v1+json``, which JupyterLab and VS Code
draw), and plotly's 4 MB script bundle, useless there, is left out. The notebook works
in a temporary folder and removes it in its last cell, so nothing is left behind.

Run it after changing the notebook: ``make notebook-outputs`` (or ``python notebooks/publish.py``).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent / "quickstart.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"
CHROMIUM = "/usr/bin/chromium"


def _png(figure: dict[str, Any], browser: Any) -> str:
    """The chart as Chromium draws it, Base64 PNG."""
    import plotly.io as pio

    page = browser.new_page(viewport={"width": 820, "height": 480})
    try:
        html = pio.to_html(
            pio.from_json(json.dumps(figure)),
            include_plotlyjs=True,
            full_html=True,
            default_width=800,
            default_height=450,
            config={"staticPlot": True},
        )
        page.set_content(html)
        page.wait_for_selector(".plotly-graph-div .main-svg")
        return base64.b64encode(page.locator(".plotly-graph-div").screenshot()).decode("ascii")
    finally:
        page.close()


def publish(path: Path = NOTEBOOK) -> None:
    """Executes ``path`` top to bottom and writes it back with its outputs, charts as PNG too."""
    from playwright.sync_api import sync_playwright

    nb = nbformat.read(path, as_version=4)
    before = os.environ.get("TMPDIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TMPDIR"] = tmp  # the kernel's temporary folder, gone afterwards whatever the last cell did
        try:
            resources = {"metadata": {"path": str(path.parent)}}
            NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
        finally:
            if before is None:
                os.environ.pop("TMPDIR")
            else:
                os.environ["TMPDIR"] = before
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"])
        try:
            for cell in nb.cells:
                kept = []
                for output in cell.get("outputs", []):
                    data = output.get("data", {})
                    if PLOTLY in data:
                        data["image/png"] = _png(data[PLOTLY], browser)
                        data.pop("text/html", None)  # plotly's script: drawn only where scripts run
                    elif "<script" in data.get("text/html", "") and set(data) <= {"text/html"}:
                        continue  # the bundle plotly's notebook renderer injects once
                    kept.append(output)
                if cell.cell_type == "code":
                    cell.outputs = kept
        finally:
            browser.close()
    nbformat.write(nb, path)


if __name__ == "__main__":
    publish(Path(sys.argv[1]) if len(sys.argv) > 1 else NOTEBOOK)
