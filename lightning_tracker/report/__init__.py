"""Reports and the live dashboard: runs side by side in a browser.

``write_report`` writes one self-contained HTML file (scripts and data inside, opens
offline); ``Dashboard`` serves the same page with data that follows training runs.
"""

from __future__ import annotations

from lightning_tracker.report.data import build_payload
from lightning_tracker.report.html import render_page, write_report
from lightning_tracker.report.server import Dashboard

__all__ = ["Dashboard", "build_payload", "render_page", "write_report"]
