"""``lightning-tracker sql``: a DuckDB query over the views ``runs`` and ``metrics``, printed as a table."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from lightning_tracker.cli.stores import open_store, pick_store
from lightning_tracker.cli.terminal import fmt_value, plural, text

__all__ = ["cmd_sql"]


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_cell, value))
    return fmt_value(None if value is pd.NaT else value)


def cmd_sql(args: argparse.Namespace, out: Console) -> int:
    """Runs the query; prints the result (``--csv``: as CSV, every digit), then its row count on a terminal."""
    store = open_store(pick_store(args.store, None), args.storage_options)
    result = store.sql(args.query, project=args.project)
    if args.csv:
        out.file.write(result.to_csv(index=False))
        return 0
    table = Table(header_style="bold", show_edge=False, box=box.SIMPLE_HEAD if out.is_terminal else None)
    for name in result.columns:
        numeric = pd.api.types.is_numeric_dtype(result[name]) and not pd.api.types.is_bool_dtype(result[name])
        table.add_column(text(str(name)), justify="right" if numeric else "left")
    for row in result.itertuples(index=False):
        table.add_row(*(text(_cell(v)) for v in row))
    out.print(table)
    if out.is_terminal:
        out.print(text(plural(len(result), "row")))
    return 0
