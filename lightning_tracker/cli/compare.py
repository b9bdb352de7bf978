"""The ``compare`` command: runs side by side, or one row per run when they do not fit side by side.

Each run is labelled with its name and the shortest id prefix that no other run of the
store shares, so a label typed back (``show 20261206-0317``) finds that run. Runs are
columns while they all fit the terminal beside the key column; more runs than that are
rows instead (the table turned), and the keys are spread over as many tables as the
width needs, each starting with the run's label. A cell is never cut.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from lightning_tracker.cli import runs_table
from lightning_tracker.cli.reading import find_run, store_of
from lightning_tracker.cli.stores import split_store
from lightning_tracker.cli.terminal import fmt_duration, fmt_value, plural, status_text, text, visible
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format import keys
from lightning_tracker.read.store import Run, Store

__all__ = ["cmd_compare"]

_KEY_WIDTH = 40  # the key column (side by side) and a turned table's header fold past this


@dataclass
class _Section:
    """One table of the comparison: a title, then per key its cells, one per run."""

    title: str
    head: str  # what the key column is called side by side
    rows: list[tuple[str, list[Text]]]


def _labels(store: Store, runs: Sequence[Run]) -> dict[str, str]:
    """Each run's id cut to the shortest prefix no other run of the store shares."""
    every_id = [name for project in store.projects() for name in store.storage.listdir(project)]
    return runs_table.short_ids([r.id for r in runs], every_id)


def _differing(runs: list[Run]) -> tuple[list[str], list[str]]:
    """Every hyperparameter key of the runs, and those whose values differ between them."""
    param_keys = sorted({k for r in runs for k in r.flat_config})
    differ = [
        k for k in param_keys if len({json.dumps(r.flat_config.get(k), sort_keys=True, default=str) for r in runs}) > 1
    ]
    return param_keys, differ


def _sections(runs: list[Run], show_all: bool) -> tuple[_Section, _Section, int]:
    """The hyperparameters that differ (highlighted where they differ from the first run), and the metrics."""
    param_keys, differ = _differing(runs)
    params = []
    for key in differ:
        values = [fmt_value(r.flat_config.get(key)) for r in runs]
        params.append((key, [text(v, "bold yellow" if v != values[0] else "") for v in values]))
    summaries = [r.summary for r in runs]
    monitored = keys.monitored((r.monitor or {}).get("name") for r in runs)
    metric_keys = keys.metric_order({k for s in summaries for k in s if show_all or keys.family(k) is None}, monitored)
    metrics = [("status", [status_text(r.status) for r in runs])]
    if any(r.damage for r in runs):
        metrics.append(("damage", [text(r.damage or "", "red") for r in runs]))
    metrics.append(("duration", [text(fmt_duration(r.duration)) for r in runs]))
    metrics += [(key, [text(fmt_value(s.get(key, {}).get("last"))) for s in summaries]) for key in metric_keys]
    title = f"hyperparameters that differ ({len(differ)} of {len(param_keys)})"
    return _Section(title, "key", params), _Section("metrics (last value)", "metric", metrics), len(param_keys)


def _side_by_side_widths(runs: list[Run], labels: dict[str, str], sections: list[_Section]) -> tuple[int, list[int]]:
    """The key column's width and each run column's: as wide as its widest value, name (up to 24) or label."""
    key_width = min(_KEY_WIDTH, max(cell_len(k) for s in sections for k in [s.head, *(key for key, _ in s.rows)]))
    widths = []
    for i, run in enumerate(runs):
        cells = [cells[i].cell_len for s in sections for _, cells in s.rows]
        widths.append(max(8, min(24, cell_len(visible(run.name))), len(labels[run.id]), *cells))
    return key_width, widths


def _side_by_side(section: _Section, runs: list[Run], labels: dict[str, str], widths: tuple[int, list[int]]) -> Table:
    key_width, run_widths = widths
    table = Table(title=section.title, header_style="bold", title_justify="left")
    # text folds, never cut: a stored name shows whole (escapes included); numbers fit their column
    table.add_column(section.head, min_width=key_width, max_width=key_width, overflow="fold")
    for run, width in zip(runs, run_widths, strict=True):
        header = Text.assemble(visible(run.name), "\n", (labels[run.id], "dim"))
        table.add_column(header, justify="right", min_width=width, max_width=width, overflow="fold")
    for key, cells in section.rows:
        table.add_row(text(key), *cells)
    return table


def _turned(
    title: str, columns: list[tuple[str, list[Text]]], runs: list[Run], labels: dict[str, str], width: int, framed: bool
) -> list[Table]:
    """One row per run, its label first; the columns spread over as many tables as ``width`` needs."""
    label_width = max(3, *(len(labels[r.id]) for r in runs))
    natural = [max(min(cell_len(head), _KEY_WIDTH), *(c.cell_len for c in cells)) for head, cells in columns]
    budget = width + 1  # each column: its cells, a space of padding either side, one rule between two
    blocks: list[list[int]] = []
    used = budget
    for i, need in enumerate(natural):
        # a column wider than the whole terminal still gets a table of its own: its cells fold
        if used + min(need, budget - label_width - 6) + 3 > budget:
            blocks.append([])
            used = label_width + 3
        blocks[-1].append(i)
        used += min(need, budget - label_width - 6) + 3
    tables = []
    for n, block in enumerate(blocks):
        part = f" ({n + 1} of {len(blocks)})" if len(blocks) > 1 else ""
        table = Table(
            title=title + part,
            title_justify="left",
            header_style="bold",
            box=box.SIMPLE_HEAD if framed else None,
            show_edge=False,
            pad_edge=framed,
        )
        table.add_column("run", style="dim", no_wrap=True, min_width=label_width)
        for i in block:
            head, _ = columns[i]
            cap = min(natural[i], budget - label_width - 6)
            justify: JustifyMethod = "left" if head in ("name", "status", "damage") else "right"
            table.add_column(text(head), justify=justify, min_width=cap, max_width=cap, overflow="fold")
        for r, run in enumerate(runs):
            table.add_row(labels[run.id], *(columns[i][1][r] for i in block))
        tables.append(table)
    return tables


def _compare_json(runs: list[Run], out: Console) -> int:
    """``compare --json``: each run's record, and the hyperparameters that differ (``docs/cli-json.md``)."""
    from lightning_tracker.cli.json_output import print_json, run_record

    param_keys, differ = _differing(runs)
    print_json(out, {"runs": [run_record(r) for r in runs], "differ": differ})
    return 0


def cmd_compare(args: argparse.Namespace, out: Console) -> int:
    rest, positional = split_store(args.runs)
    store = store_of(args, positional)
    if len(rest) < 2:
        raise InvalidArgumentError(f"compare takes two runs or more (ids, id prefixes or names), got {rest}")
    with out.status(text(f"reading runs from {store.storage.url} …")):
        runs = [find_run(store, run_id, args.project) for run_id in rest]
        if args.json:
            return _compare_json(runs, out)
        labels = _labels(store, runs)
        params, metrics, param_count = _sections(runs, args.all)
    widths = _side_by_side_widths(runs, labels, [params, metrics])
    if widths[0] + sum(w + 3 for w in widths[1]) + 4 <= out.width:
        if params.rows:
            out.print(_side_by_side(params, runs, labels, widths))
        else:
            out.print(text(f"the {len(runs)} runs share all {plural(param_count, 'hyperparameter')}"))
        out.print(_side_by_side(metrics, runs, labels, widths))
        return 0
    # more runs than fit side by side: one row per run
    names = [("name", [text(r.name) for r in runs]), *metrics.rows[: 3 if any(r.damage for r in runs) else 2]]
    for title, columns in (
        ("runs", names),
        (params.title, params.rows),
        (metrics.title, metrics.rows[len(names) - 1 :]),
    ):
        if columns:
            for table in _turned(title, columns, runs, labels, out.width, out.is_terminal):
                out.print(table)
    if not params.rows:
        out.print(text(f"the {len(runs)} runs share all {plural(param_count, 'hyperparameter')}"))
    return 0
