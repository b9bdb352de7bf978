"""Helpers for the report tests that drive the page in Chromium (fixtures: tests/conftest.py)."""

from __future__ import annotations

from typing import Any

DRAWN = (
    "[...document.querySelectorAll(`details[data-section='${s}'] .chart:not([hidden])`)].every((c) => c.dataset.drawn)"
)


def open_page(page: Any, url: str) -> None:
    """Loads the report or dashboard at ``url`` and waits until it has drawn its data."""
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)


def open_section(page: Any, section: str) -> None:
    """Opens a collapsed chart section (system, gradients ...) and waits until its charts are drawn."""
    page.click(f"details[data-section='{section}'] > summary")
    page.wait_for_function(f"(s) => {DRAWN}", arg=section, timeout=10_000)
