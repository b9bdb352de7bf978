"""The ``runs --group-by`` table: one row per group, fitted to the terminal whole.

The frame is :func:`~lightning_tracker.read.groups.group_table`'s (``Store.table(project,
group_by=...)``): the group keys, the number of runs, each metric as ``mean ± std`` of
the runs' final values, and the best run's id. Metrics are chosen and ordered as the runs
table chooses them (:mod:`~lightning_tracker.format.keys`: the monitored one first, the
monitor families hidden unless ``--all``, or those ``--columns`` names); when the terminal
is too narrow, the last metrics are left out whole and the table says so.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from lightning_tracker.cli.runs_table import Layout
from lightning_tracker.cli.terminal import fmt_value, text
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format import keys
from lightning_tracker.read.groups import BEST, COUNT

__all__ = ["best_note", "choose", "render", "sort_groups", "spread"]


def spread(mean: Any, std: Any) -> str:
    """A metric of a group as a cell: ``mean ± std``, the mean alone for one run, ``—`` for none.

    Example:
        >>> spread(0.91234, 0.0041), spread(0.5, float("nan")), spread(float("nan"), float("nan"))
        ('0.9123 ± 0.0041', '0.5', '—')
    """
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return fmt_value(mean)
    return f"{fmt_value(mean)} ± {fmt_value(std)}"


def _metrics(grouped: pd.DataFrame) -> list[str]:
    return [str(c)[5:] for c in grouped.columns if str(c).startswith("mean.")]


def _scope(grouped: pd.DataFrame) -> tuple[list[str], list[str]]:
    scope = grouped.attrs.get("scope") or {"params": [], "metrics": _metrics(grouped)}
    return list(scope["params"]), list(scope["metrics"])


def _monitors(grouped: pd.DataFrame) -> list[str]:
    rule = grouped.attrs.get("best")
    column = str(rule["column"]) if rule else ""
    return [column[8:]] if column.startswith("summary.") else []


def choose(grouped: pd.DataFrame, *, columns: Sequence[str] | None = None, show_all: bool = False) -> Layout:
    """The columns: the group keys, ``runs``, ``best``, then the metrics ``--columns`` names or in the owner's order.

    Raises:
        InvalidArgumentError: a name of ``columns`` names no metric of these runs.
    """
    params, metrics_queried = _scope(grouped)
    heads = keys.labels(params, metrics_queried)
    fixed = [(heads.get(c, c), c) for c in grouped.attrs.get("group_by", [])]
    fixed += [("runs", COUNT), ("best", BEST)]
    metrics = _metrics(grouped)
    if columns:
        chosen: list[str] = []
        for raw in columns:
            name = raw.strip()
            if any(ch in name for ch in "*?["):
                hits = [m for m in metrics if fnmatch.fnmatchcase(m, name.removeprefix("summary."))]
            else:
                col = keys.column(name, params, metrics_queried)
                hits = [col[8:]] if col and col.startswith("summary.") and col[8:] in metrics else []
            if not hits:
                raise InvalidArgumentError(
                    f"--columns: {name!r} is not a metric of these runs; with --group-by the columns are metrics "
                    f"(their mean ± std), such as {', '.join(keys.metric_order(metrics)[:4]) or 'val/acc'}"
                )
            chosen += [h for h in hits if h not in chosen]
        return Layout(fixed + [(heads.get(f"summary.{m}", m), f"mean.{m}") for m in chosen])
    shown = metrics if show_all else [m for m in metrics if keys.family(m) is None]
    ordered = keys.metric_order(shown, _monitors(grouped))
    return Layout(
        fixed + [(heads.get(f"summary.{m}", m), f"mean.{m}") for m in ordered], hidden_family=len(metrics) - len(shown)
    )


def sort_groups(grouped: pd.DataFrame, sort: str) -> pd.DataFrame:
    """The groups ordered by ``--sort KEY``: a metric's mean, a group key, or the runs count (``runs``).

    Raises:
        InvalidArgumentError: ``KEY`` is none of those.
    """
    key = sort.lstrip("-")
    params, metrics = _scope(grouped)
    col = keys.column(key, params, metrics)
    by = {COUNT: COUNT}.get(key) or (
        f"mean.{col[8:]}"
        if col and col.startswith("summary.")
        else col
        if col in grouped.attrs.get("group_by", [])
        else None
    )
    if by is None:
        group_keys = [keys.labels(params, metrics).get(c, c) for c in grouped.attrs.get("group_by", [])]
        raise InvalidArgumentError(
            f"--sort={sort!r} with --group-by sorts groups by a metric's mean, a group key ({', '.join(group_keys)}) "
            "or runs; pass one of those, e.g. --sort=-val/acc"
        )
    if by not in grouped:
        return grouped
    return grouped.sort_values(by, ascending=not sort.startswith("-"), na_position="last", kind="stable")


def best_note(grouped: pd.DataFrame) -> str:
    """How the best run of each group was chosen, as a line under the table."""
    rule = grouped.attrs.get("best")
    if not rule:
        return "best: no run is judged best (these runs monitor no metric); --sort KEY judges them by KEY"
    params, metrics = _scope(grouped)
    name = keys.labels(params, metrics).get(rule["column"], rule["column"])
    why = "the runs' monitored metric" if rule["why"] == "monitored" else "--sort"
    return f"best: the run with the {'lowest' if rule['ascending'] else 'highest'} {name} ({why})"


def _cell(grouped: pd.DataFrame, column: str, i: int, ids: dict[str, str]) -> Text:
    value = grouped[column].iloc[i]
    if column == BEST:
        return text(ids.get(str(value), value) if value is not None else "—", "dim")
    if column.startswith("mean."):
        return text(spread(value, grouped[f"std.{column[5:]}"].iloc[i]))
    if column == COUNT:
        return text(str(value))
    return text(fmt_value(value) if value is not None else "—")


def render(grouped: pd.DataFrame, layout: Layout, *, width: int, ids: dict[str, str], framed: bool = True) -> Table:
    """The table at most ``width`` cells wide: metrics that do not fit are left out (``layout.dropped``)."""
    cells = {col: [_cell(grouped, col, i, ids) for i in range(len(grouped))] for _, col in layout.columns}
    natural = {col: max([cell_len(head), *(c.cell_len for c in cells[col])]) for head, col in layout.columns}
    budget, used, kept = width + 1, 0, []
    for _, col in layout.columns:  # keys, runs and best always; then the metrics in the order they matter
        need = natural[col] + 3
        if col.startswith("mean.") and used + need > budget:
            break
        kept.append(col)
        used += need
    layout.dropped = [head for head, col in layout.columns if col not in kept]
    out = Table(header_style="bold", box=box.SIMPLE_HEAD if framed else None, show_edge=False, pad_edge=framed)
    shown = [(head, col) for head, col in layout.columns if col in kept]
    for head, col in shown:
        numeric = col.startswith(("mean.", "config.", "summary.")) or col == COUNT
        style = "magenta" if col.startswith("mean.") else "yellow" if col.startswith("config.") else ""
        out.add_column(text(head), justify="right" if numeric else "left", style=style, no_wrap=True, overflow="fold")
    for i in range(len(grouped)):
        out.add_row(*(cells[col][i] for _, col in shown))
    return out
