"""The commands that read runs: ``runs``, ``show`` and ``hist`` (``compare`` has its own module).

Each returns the exit status 0 when it found what was asked; a valid query that matched
nothing raises ``NothingMatchedError`` (status 1, said plainly) and usage errors
``InvalidArgumentError`` (status 2).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lightning_tracker.cli import groups_table, runs_table
from lightning_tracker.cli.stores import diagnose, open_store, pick_store, project_counts, split_store
from lightning_tracker.cli.terminal import fmt_duration, fmt_value, plural, status_text, text, visible
from lightning_tracker.exceptions import (
    InvalidArgumentError,
    NothingMatchedError,
    ProjectNotFoundError,
    RunNotFoundError,
)
from lightning_tracker.format import keys
from lightning_tracker.format.status import STATUSES
from lightning_tracker.read.groups import BEST, COUNT, IDS
from lightning_tracker.read.store import Run, Store

__all__ = ["cmd_hist", "cmd_runs", "cmd_show", "find_run", "store_of"]


def store_of(args: argparse.Namespace, positional: str | None = None) -> Store:
    """The store a command names (``-s``, a positional path, the environment or ``./runs``)."""
    return open_store(pick_store(args.store, positional), args.storage_options)


def _check_statuses(statuses: list[str] | None) -> None:
    for status in statuses or []:
        if status not in STATUSES:
            raise InvalidArgumentError(f"--status={status!r} is not a run state; use one of: {', '.join(STATUSES)}")


def _projects(store: Store, out: Console) -> int:
    counts = project_counts(store)
    out.print(text(f"{plural(len(counts), 'project')} in {store.storage.url}"))
    listing = Table(header_style="bold", show_edge=False, box=box.SIMPLE_HEAD if out.is_terminal else None)
    listing.add_column("project")
    listing.add_column("runs", justify="right")
    for name, count in counts.items():
        listing.add_row(text(name), str(count))
    out.print(listing)
    out.print(text(f"list one project's runs with: lightning-tracker runs -s {store.storage.url} -p PROJECT"))
    return 0


def cmd_runs(args: argparse.Namespace, out: Console) -> int:
    from rich.progress import Progress

    store = store_of(args, args.store_arg)
    _check_statuses(args.status)
    # a filter, columns or a sort ask for runs: across the projects when none is named
    archived = None if args.include_archived else (True if args.archived else False)
    group_by = getattr(args, "group_by", None)
    filtered = bool(
        args.where
        or args.status
        or args.tag
        or args.columns
        or args.sort
        or args.all
        or args.json
        or group_by
        or archived is not False
    )
    projects = store.projects()
    if args.project is None and not filtered and len(projects) > 1:
        return _projects(store, out)
    if not projects:  # a valid store with nothing in it: nothing matched
        raise NothingMatchedError(diagnose(store) or f"no runs in {store.storage.url}")
    if args.project is not None and args.project not in projects:
        raise ProjectNotFoundError(diagnose(store, args.project) or f"no project {args.project!r}")
    runs: list[Run] = []
    with Progress(console=out, transient=True, disable=not out.is_terminal) as bar:
        task = bar.add_task(f"reading runs from {escape(visible(store.storage.url))}", total=None)
        filters = {
            "tags": args.tag or None,
            "status": args.status or None,
            "where": args.where,
            "archived": archived,
            "progress": lambda done, total: bar.update(task, completed=done, total=total),
        }
        try:
            if args.json and not group_by:  # the records and their order from one read of the runs
                runs = store.runs(args.project, **filters)
                table = runs_table.of_runs(runs)
            else:
                table = store.table(
                    args.project,
                    **filters,
                    **({"group_by": group_by, "best": _best_key(args.sort, group_by)} if group_by else {}),
                )
        except InvalidArgumentError as err:  # Store.table names its arguments; the command line, its options
            raise InvalidArgumentError(_as_options(str(err))) from None
    where = f" (project {args.project})" if args.project else ""
    if table.empty:
        asked = " ".join(
            [
                *(f"--where {w!r}" for w in args.where or []),
                *(f"--status {s}" for s in args.status or []),
                *(f"--tag {t}" for t in args.tag or []),
            ]
        )
        raise NothingMatchedError(f"no runs match {asked} in {store.storage.url}{where}")
    if group_by:
        return _groups(args, store, table, out, where)
    if args.sort:
        col = runs_table.sort_column(table, args.sort.lstrip("-"))
        if col in table:  # else no run shown has the key: nothing to sort by
            table = table.sort_values(col, ascending=not args.sort.startswith("-"), na_position="last")
    if args.json:
        return _runs_json(args, store, table, runs, out)
    columns = [c for part in args.columns or [] for c in part.split(",") if c.strip()]
    layout = runs_table.choose(table, columns=columns, show_all=args.all, multi_project=table["project"].nunique() > 1)
    every_id = [name for project in table["project"].unique() for name in store.storage.listdir(project)]
    ids = runs_table.short_ids(list(table["id"]), every_id)
    rendered = runs_table.render(table, layout, width=out.width, ids=ids, framed=out.is_terminal)
    out.print(text(f"{plural(len(table), 'run')} in {store.storage.url}{where}"))
    out.print(rendered)
    for note in runs_table.left_out_notes(layout):
        out.print(text(note, "dim"))
    return 0


def _runs_json(args: argparse.Namespace, store: Store, table: pd.DataFrame, read: list[Run], out: Console) -> int:
    """``runs --json``: the runs ``read``, in the order of their ``table``, as records (``docs/cli-json.md``)."""
    from lightning_tracker.cli.json_output import print_json, run_record

    found = {(r.project, r.id): r for r in read}
    runs = [found[key] for key in zip(table["project"], table["id"], strict=True)]
    print_json(out, {"store": store.storage.url, "project": args.project, "runs": [run_record(r) for r in runs]})
    return 0


def _as_options(message: str) -> str:
    """``Store.table``'s error as the command line says it: ``group_by=`` is ``--group-by=``, ``best=``, ``--sort=``."""
    for argument, option in (("group_by=", "--group-by="), ("best=", "--sort=")):
        if message.startswith(argument):
            return option + message[len(argument) :]
    return message


def _best_key(sort: str | None, group_by: str) -> str | None:
    """The key ``--sort`` judges a group's best run by: none when it sorts by a group key or the runs count."""
    key = (sort or "").lstrip("-")
    return sort if key and key not in ("runs", *(k.strip() for k in group_by.split(","))) else None


def _groups(args: argparse.Namespace, store: Store, grouped: pd.DataFrame, out: Console, where: str) -> int:
    """``runs --group-by``: one row per group (runs, mean ± std of each metric, best run)."""
    if args.sort:
        grouped = groups_table.sort_groups(grouped, args.sort)
    if args.json:
        from lightning_tracker.cli.json_output import group_record, print_json

        document = {
            "store": store.storage.url,
            "project": args.project,
            "group_by": list(grouped.attrs.get("group_by", [])),
            "best": grouped.attrs.get("best"),
            "groups": [group_record(grouped, i) for i in range(len(grouped))],
        }
        print_json(out, document)
        return 0
    columns = [c for part in args.columns or [] for c in part.split(",") if c.strip()]
    layout = groups_table.choose(grouped, columns=columns, show_all=args.all)
    best = [str(b) for b in grouped[BEST].dropna()]
    every_id = [i for ids in grouped[IDS] for i in ids]
    rendered = groups_table.render(
        grouped, layout, width=out.width, ids=runs_table.short_ids(best, every_id), framed=out.is_terminal
    )
    runs = plural(int(grouped[COUNT].sum()), "run")
    out.print(text(f"{plural(len(grouped), 'group')} of {runs} in {store.storage.url}{where}, by {args.group_by}"))
    out.print(rendered)
    for note in [groups_table.best_note(grouped), *runs_table.left_out_notes(layout)]:
        out.print(text(note, "dim"))
    return 0


def _one_run(args: argparse.Namespace) -> tuple[Store, list[str]]:
    rest, positional = split_store(args.targets)
    return store_of(args, positional), rest


def find_run(store: Store, run_id: str, project: str | None) -> Run:
    """The run an id, id prefix or name names; a misnamed store or project is a usage error that says so."""
    try:
        return store.run(run_id, project)
    except RunNotFoundError:
        problem = diagnose(store, project)
        if problem:
            raise InvalidArgumentError(problem) from None
        raise


def cmd_show(args: argparse.Namespace, out: Console) -> int:
    store, rest = _one_run(args)
    if len(rest) != 1:
        raise InvalidArgumentError(f"show takes one run (an id, id prefix or name), got {len(rest)}: {rest}")
    run = find_run(store, rest[0], args.project)
    if args.json:
        from lightning_tracker.cli.json_output import print_json, run_record

        print_json(out, {**run_record(run), "meta": run.meta})
        return 0
    meta, flat, summary = run.meta, run.flat_config, run.summary  # read first: the status shows their damage
    info = Table.grid(padding=(0, 2))
    start = datetime.fromtimestamp(run.start_time).isoformat(" ", "seconds") if run.start_time else "—"
    git = meta.get("git") or {}
    git_text = f"{str(git.get('commit') or '')[:12]} {git.get('branch') or ''}{' (dirty)' if git.get('dirty') else ''}"
    monitor = run.monitor
    for key, value in [
        ("id", run.id),
        ("name", run.name),
        ("project", run.project),
        ("group", run.group or "—"),
        ("tags", ", ".join(run.tags) or "—"),
        ("note", run.note),
        ("archived", "yes" if run.archived else None),
        ("status", status_text(run.status)),
        ("damage", run.damage),
        ("start", start),
        ("duration", fmt_duration(run.duration)),
        ("url", run.url),
        ("monitor", f"{monitor['name']} ({monitor.get('mode') or 'min'})" if monitor else None),
        ("host", meta.get("host") or "—"),
        ("command", " ".join(meta.get("command") or [])),
        ("git", git_text if git else "—"),
    ]:
        if value is not None:
            info.add_row(Text(key, style="bold"), value if isinstance(value, Text) else text(value))
    out.print(info)
    config = Table(title="hyperparameters", header_style="bold", title_justify="left")
    config.add_column("key")
    config.add_column("value", overflow="fold")
    for key, value in sorted(flat.items()):
        config.add_row(text(key), text(json.dumps(value) if not isinstance(value, str) else value))
    out.print(config)
    metrics = Table(title="metrics", header_style="bold", title_justify="left")
    for col in ("metric", "last", "step", "min", "max", "points"):
        metrics.add_column(col, justify="left" if col == "metric" else "right", no_wrap=col != "metric")
    for key in keys.metric_order(summary, keys.monitored([monitor["name"] if monitor else None])):
        s = summary[key]
        metrics.add_row(text(key), *(text(fmt_value(s.get(f))) for f in ("last", "last_step", "min", "max", "count")))
    out.print(metrics)
    if run.alerts:
        alerts = Table(title="alerts", header_style="bold", title_justify="left")
        for col in ("time", "level", "title", "text"):
            alerts.add_column(col, overflow="fold")
        for alert in run.alerts:
            when = alert.get("time")
            shown = datetime.fromtimestamp(when).isoformat(" ", "seconds") if isinstance(when, (int, float)) else "—"
            alerts.add_row(text(shown), *(text(str(alert.get(f) or "")) for f in ("level", "title", "text")))
        out.print(alerts)
    return 0


def cmd_hist(args: argparse.Namespace, out: Console) -> int:
    from lightning_tracker.cli.heatmap import write_heatmaps

    rest, positional = split_store(args.targets)
    if not 1 <= len(rest) <= 2:
        raise InvalidArgumentError(f"hist takes a run and an optional tensor pattern, got {rest}")
    store = store_of(args, positional)
    run = find_run(store, rest[0], args.project)
    with out.status(text(f"reading the histograms of {run.id} …")):
        hist = run.histograms()
    pattern = rest[1] if len(rest) > 1 else "*"
    for path in write_heatmaps(hist, args.out or f"histograms-{run.id}", run, pattern=pattern, kind=args.kind):
        out.print(text(path), soft_wrap=True)
    return 0
