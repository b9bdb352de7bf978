"""The ``runs`` table: which columns a person wants, fitted to the terminal whole.

A person comparing runs reads the name and status, the hyperparameters that differ
between the listed runs, then the metrics in the order they matter, the monitor families
(``gradients/*``, ``parameters/*``, ``system/*``, also under a logger prefix) hidden unless
asked for: :mod:`~lightning_tracker.format.keys` decides both, for the page too, and how a
key names a column and how a column is headed (``lr``, and ``summary.lr`` for a metric
that shares a hyperparameter's name). A cell is never cut: when the terminal is too
narrow, whole columns are left out, by priority, and the table says how many and how to
show them.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from rich import box
from rich.cells import cell_len
from rich.console import OverflowMethod
from rich.table import Table
from rich.text import Text

from lightning_tracker.cli.terminal import fmt_duration, fmt_value, plural, status_text, text
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format import keys
from lightning_tracker.read.store import Run
from lightning_tracker.read.table import table_row

__all__ = ["Layout", "choose", "left_out_notes", "of_runs", "render", "short_ids", "sort_column"]

_NAME_CAP = 24  # a long name is cut (it is text, not a number) before any other column is dropped
_ROW_FIELDS = ("group", "tags", "start")  # identity fields a person may ask for by name


@dataclass
class Layout:
    """The columns of one table: ``(header, frame column)`` in display order, and what was left out."""

    columns: list[tuple[str, str]]
    hidden_family: int = 0
    dropped: list[str] = field(default_factory=list)


def short_ids(ids: Sequence[str], among: Sequence[str]) -> dict[str, str]:
    """The shortest prefix length (8 at least) at which no id shares its prefix with another id in ``among``.

    Example:
        >>> short_ids(["20261129-081203-aaaa", "20261129-081203-abcd"], ["20261129-081203-aaaa",
        ...           "20261129-081203-abcd", "20261129-090000-zzzz"])
        {'20261129-081203-aaaa': '20261129-081203-aa', '20261129-081203-abcd': '20261129-081203-ab'}
    """
    others = sorted(set(among) | set(ids))
    place = {run_id: i for i, run_id in enumerate(others)}

    def common(a: str, b: str) -> int:
        return len(os.path.commonprefix([a, b]))

    n = 8  # one length for the column: prefixes of different lengths read as different ids
    for run_id in ids:  # the id sharing the longest prefix with it is a neighbour in sorted order
        i = place[run_id]
        shared = max([common(run_id, others[j]) for j in (i - 1, i + 1) if 0 <= j < len(others)], default=0)
        n = max(n, min(len(run_id), shared + 1))
    return {run_id: run_id[:n] for run_id in ids}


def of_runs(runs: Sequence[Run]) -> pd.DataFrame:
    """The runs table of runs already read, in their order: the rows ``Store.table`` shows (``table_row``).

    ``runs --json`` sorts and prints the runs of one read (``Store.runs``) with it, instead of
    reading the project once for the table and again for the records. A bare key names
    what it names among these runs (the table's columns).

    Example:
        >>> from lightning_tracker import Store, TrackerLogger
        >>> logger = TrackerLogger("memory://doc-of-runs", name="p", version="r1", tensorboard=False)
        >>> logger.log_hyperparams({"lr": 0.1})
        >>> logger.finalize("success")
        >>> of_runs(Store("memory://doc-of-runs").runs("p"))[["id", "config.lr"]].values.tolist()
        [['r1', 0.1]]
    """
    return pd.DataFrame([table_row(run) for run in runs])


def _differing(table: pd.DataFrame, columns: list[str]) -> list[str]:
    if len(table) <= 1:
        return columns
    return [c for c in columns if table[c].astype(str).nunique(dropna=False) > 1]


def choose(
    table: pd.DataFrame, *, columns: Sequence[str] | None = None, show_all: bool = False, multi_project: bool = False
) -> Layout:
    """The columns to show, in display order, before fitting them to a width.

    Args:
        table: :meth:`Store.table`'s frame (with a ``monitor`` column).
        columns: names (``lr``, ``val/acc``, ``config.lr``, ``summary.val/acc``) or
            patterns (``system/*``) to show instead of the chosen hyperparameters and metrics.
        show_all: every hyperparameter and metric, the monitor families included.
        multi_project: add a ``project`` column.

    Raises:
        InvalidArgumentError: a name in ``columns`` matches nothing; the closest ones are named.
    """
    config = [c for c in table.columns if c.startswith("config.")]
    summary = [c for c in table.columns if c.startswith("summary.")]
    fixed = [("id", "id"), ("name", "name"), *([("project", "project")] if multi_project else []), ("status", "status")]
    if "damage" in table and table["damage"].notna().any():
        fixed.append(("damage", "damage"))
    fixed.append(("duration", "duration_s"))
    metrics = _names(summary)  # what the runs shown have
    named_params, named_metrics = _scope(table)  # what a name names: every run queried, as --where reads it
    heads = keys.labels(named_params, named_metrics)
    if columns:
        return Layout(fixed + [(heads.get(c, c), c) for c in _requested(table, columns, named_params, named_metrics)])
    monitored = keys.monitored(table["monitor"].dropna()) if "monitor" in table else []
    shown = metrics if show_all else [m for m in metrics if keys.family(m) is None]
    chosen = (config if show_all else _differing(table, config)) + [
        f"summary.{m}" for m in keys.metric_order(shown, monitored)
    ]
    return Layout(fixed + [(heads[c], c) for c in chosen], hidden_family=len(metrics) - len(shown))


def _names(columns: list[str]) -> list[str]:
    return [c.split(".", 1)[1] for c in columns]


def _scope(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The hyperparameter and metric names a bare key is decided over, as ``--where`` decides it.

    Those of every run queried (``Store.table``'s ``attrs["scope"]``), so that ``--where``
    filtering out the runs with a hyperparameter does not turn its name into a metric's.
    """
    scope = table.attrs.get("scope")
    if scope is not None:
        return list(scope["params"]), list(scope["metrics"])
    columns = [str(c) for c in table.columns]
    return _names([c for c in columns if c.startswith("config.")]), _names(
        [c for c in columns if c.startswith("summary.")]
    )


def _named(col: str | None, table: pd.DataFrame) -> bool:
    """Whether ``col`` is a column to show: in ``table``, or a key no run shown has (all of it empty)."""
    return col is not None and (col in table.columns or col.startswith(("config.", "summary.")))


def sort_column(table: pd.DataFrame, key: str) -> str:
    """The column of ``table`` that ``--sort KEY`` names: a key as ``--where`` resolves it, ``start`` or ``duration``.

    The column may be missing from ``table`` when none of its runs has the key (but a run
    queried has): then the rows have no value to sort by.

    Raises:
        InvalidArgumentError: ``key`` names no column; the message lists what does.
    """
    params, metrics = _scope(table)
    col = {"duration": "duration_s"}.get(key, key) if key in ("start", "duration", "duration_s") else None
    col = col or keys.column(key, params, metrics)
    if col is None or not _named(col, table):
        known = ["start", "duration", *keys.labels(params, metrics).values()]
        raise InvalidArgumentError(
            f"--sort={key!r} is not a column; {_did_you_mean(key, known)}use one of: {', '.join(known)}"
        )
    return col


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    """``did you mean val/acc? `` when ``name`` is close to a known key (a typo), else ``''``."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}? " if close else ""


def _requested(table: pd.DataFrame, names: Sequence[str], params: list[str], metrics: list[str]) -> list[str]:
    """The columns ``--columns`` names: keys as ``--where`` resolves them, or patterns of names.

    A key resolves over ``params`` and ``metrics``, the names of the runs queried; its column
    is empty when none of the runs shown has it.
    """
    fields = [f for f in _ROW_FIELDS if f in table]
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if name in fields:
            hits = [name]
        elif any(ch in name for ch in "*?["):
            hits = [h for h in _matching(name, params, metrics) if h in table.columns]
        else:
            col = keys.column(name, params, metrics)
            hits = [col] if col is not None and _named(col, table) else []
        if not hits:
            known = [*fields, *keys.labels(params, metrics).values()]
            hint = _did_you_mean(name, known)
            plain = [k for k in known if keys.family(k) is None]
            raise InvalidArgumentError(
                f"--columns: {name!r} is not a hyperparameter or metric of these runs; {hint}"
                f"known: {', '.join(plain[:12])}{' …' if len(plain) > 12 else ''} "
                "(and patterns, such as 'system/*')"
            )
        out += [h for h in hits if h not in out]
    return out


def _matching(pattern: str, params: list[str], metrics: list[str]) -> list[str]:
    """The columns a pattern names: ``config.*``/``summary.*`` one section; a bare one metrics first, as before."""
    for prefix, section in keys.PREFIXES:
        if pattern.startswith(prefix):
            names = params if section == "params" else metrics
            column = "config." if section == "params" else "summary."
            return [column + n for n in names if fnmatch.fnmatchcase(n, pattern[len(prefix) :])]
    return [f"summary.{n}" for n in metrics if fnmatch.fnmatchcase(n, pattern)] + [
        f"config.{n}" for n in params if fnmatch.fnmatchcase(n, pattern)
    ]


def _cell(column: str, value: object, ids: dict[str, str]) -> Text:
    if column == "id":
        return text(ids.get(str(value), value), "dim")
    if column == "status":
        return status_text(str(value))
    if column == "duration_s":
        return text(fmt_duration(value))
    if column == "start":
        return text("—" if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M"))
    if column in ("name", "project", "group", "tags", "damage"):
        return text(value or "")
    return text(fmt_value(value))


def render(table: pd.DataFrame, layout: Layout, *, width: int, ids: dict[str, str], framed: bool = True) -> Table:
    """The table at most ``width`` cells wide; ``layout.dropped`` gets the columns left out.

    Columns are kept by priority: id, name, project, status, damage, the first metric,
    the hyperparameters, the duration, then the other metrics.
    """
    # a column no run shown has (a key that --where decided over every run queried) is empty
    empty = [None] * len(table)
    cells = {col: [_cell(col, v, ids) for v in (table[col] if col in table else empty)] for _, col in layout.columns}
    natural = {col: max([cell_len(head), *(c.cell_len for c in cells[col])]) for head, col in layout.columns}
    # each column: its cells, one space of padding on both sides, and one rule (or space) between two columns
    budget = width + 1
    first = [col for _, col in layout.columns if col in ("id", "name", "project", "status", "damage")]
    rest = [col for _, col in layout.columns if col not in first and col != "duration_s"]
    metric = next((c for c in rest if c.startswith("summary.")), None)
    params = [c for c in rest if c.startswith("config.")]
    others = [c for c in rest if c not in params and c != metric]
    order = first + ([metric] if metric else []) + params + ["duration_s"] + others
    want = {c: min(natural[c], _NAME_CAP) if c in ("name", "damage") else natural[c] for c in order}
    kept, used = [], 0
    for col in order:  # by priority, until one does not fit: what is left out is the least wanted
        need = want[col] + 3
        if used + need > budget and col not in ("id", "status"):
            if col not in first:
                break
            continue
        kept.append(col)
        used += need
    if "name" in kept:  # room left: the name grows back to its full width
        want["name"] += min(natural["name"] - want["name"], max(0, budget - used))
    layout.dropped = [head for head, col in layout.columns if col not in kept]
    out = Table(header_style="bold", box=box.SIMPLE_HEAD if framed else None, show_edge=False, pad_edge=framed)
    shown = [(head, col) for head, col in layout.columns if col in kept]
    for head, col in shown:
        numeric = col.startswith(("config.", "summary.")) or col == "duration_s"
        style = "yellow" if col.startswith("config.") else "magenta" if col.startswith("summary.") else ""
        overflow: OverflowMethod = "ellipsis" if col in ("name", "damage") else "fold"  # only text is shortened
        out.add_column(
            text(head),
            justify="right" if numeric else "left",
            style=style,
            min_width=want[col],
            max_width=want[col],
            no_wrap=True,
            overflow=overflow,
        )
    for i in range(len(table)):
        out.add_row(*(cells[col][i] for _, col in shown))
    return out


def left_out_notes(layout: Layout) -> list[str]:
    """A line on the columns not shown and one on the hidden monitor metrics, with how to show them."""
    parts = []
    if layout.dropped:
        names = ", ".join(layout.dropped[:4]) + (", …" if len(layout.dropped) > 4 else "")
        parts.append(
            f"{plural(len(layout.dropped), 'column')} did not fit ({names}): widen the terminal or pick with --columns"
        )
    if layout.hidden_family:
        families = ", ".join(f"{f}/" for f in keys.FAMILIES)
        parts.append(f"{plural(layout.hidden_family, 'monitor metric')} ({families}) hidden: --all shows them")
    return parts
