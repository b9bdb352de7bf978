"""The ``lightning-tracker`` command: list, show and sync runs, and run the demo.

This is the only module that prints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from lightning_tracker.exceptions import InvalidArgumentError, TrackerError

__all__ = ["main"]

_OPTIONS_ENV = "LIGHTNING_TRACKER_STORAGE_OPTIONS"


def _storage_options(text: str | None) -> dict[str, Any] | None:
    text = text or os.environ.get(_OPTIONS_ENV)
    if not text:
        return None
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidArgumentError(
            f"--storage-options={text!r} is not JSON ({err}); pass an object such as "
            '\'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}\''
        ) from None
    if not isinstance(options, dict):
        raise InvalidArgumentError(f"--storage-options={text!r} must be a JSON object.")
    return options


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _fmt_duration(seconds: Any) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


_STATUS_STYLE = {"finished": "green", "running": "cyan", "failed": "red", "crashed": "bold red"}


def _cmd_runs(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker.api import Store

    store = Store(args.store, _storage_options(args.storage_options))
    with console.status(f"reading runs from {store.storage.url} …"):
        table = store.table(args.project, tags=args.tag or None, status=args.status or None)
    if table.empty:
        console.print(f"no runs in {store.storage.url}" + (f" (project {args.project!r})" if args.project else ""))
        return 0
    config_cols = [c for c in table.columns if c.startswith("config.")]
    if len(table) > 1:
        config_cols = [c for c in config_cols if table[c].astype(str).nunique(dropna=False) > 1]
    metric_cols = [c for c in table.columns if c.startswith("summary.")]
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",")]
        config_cols = [c for c in config_cols if c in wanted or c[len("config."):] in wanted]
        metric_cols = [c for c in metric_cols if c in wanted or c[len("summary."):] in wanted]
    if args.sort:
        key = args.sort.lstrip("-")
        col = next((c for c in (key, f"summary.{key}", f"config.{key}") if c in table.columns), None)
        if col is None:
            raise InvalidArgumentError(
                f"--sort={args.sort!r} is not a column; use one of: "
                + ", ".join(["start", "duration_s", *[c.split(".", 1)[1] for c in metric_cols + config_cols]])
            )
        table = table.sort_values(col, ascending=not args.sort.startswith("-"), na_position="last")
    out = Table(title=f"{len(table)} runs in {store.storage.url}", header_style="bold")
    out.add_column("id", no_wrap=True, style="dim")
    out.add_column("name")
    if not args.project:
        out.add_column("project")
    out.add_column("status")
    out.add_column("duration", justify="right")
    for col in config_cols:
        out.add_column(col[len("config."):], justify="right", style="yellow")
    for col in metric_cols:
        out.add_column(col[len("summary."):], justify="right", style="magenta")
    for row in table.itertuples(index=False):
        rec = dict(zip(table.columns, row))
        cells = [rec["id"], rec["name"]]
        if not args.project:
            cells.append(rec["project"])
        status = rec["status"]
        cells += [f"[{_STATUS_STYLE.get(status, '')}]{status}[/]", _fmt_duration(rec["duration_s"])]
        cells += [_fmt(rec[c]) for c in config_cols + metric_cols]
        out.add_row(*cells)
    console.print(out)
    return 0


def _cmd_show(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker.api import Store

    store = Store(args.store, _storage_options(args.storage_options))
    run = store.run(args.run, args.project)
    info = Table.grid(padding=(0, 2))
    start = datetime.fromtimestamp(run.start_time).isoformat(" ", "seconds") if run.start_time else "—"
    git = run.meta.get("git") or {}
    for key, value in [
        ("id", run.id), ("name", run.name), ("project", run.project), ("group", run.group or "—"),
        ("tags", ", ".join(run.tags) or "—"), ("status", run.status), ("start", start),
        ("duration", _fmt_duration(run.duration)), ("url", run.url),
        ("host", run.meta.get("host", "—")), ("command", " ".join(run.meta.get("command") or [])),
        ("git", f"{git.get('commit', '')[:12]} {git.get('branch', '')}{' (dirty)' if git.get('dirty') else ''}"
         if git else "—"),
    ]:  # fmt: skip
        info.add_row(f"[bold]{key}", str(value))
    console.print(info)
    config = Table(title="hyperparameters", header_style="bold")
    config.add_column("key")
    config.add_column("value")
    for key, value in sorted(run.flat_config.items()):
        config.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    console.print(config)
    metrics = Table(title="metrics", header_style="bold")
    for col in ("metric", "last", "step", "min", "max", "points"):
        metrics.add_column(col, justify="left" if col == "metric" else "right")
    for key, s in sorted(run.summary.items()):
        metrics.add_row(key, _fmt(s.get("last")), _fmt(s.get("last_step")), _fmt(s.get("min")),
                        _fmt(s.get("max")), _fmt(s.get("count")))  # fmt: skip
    console.print(metrics)
    return 0


def _cmd_sync(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from lightning_tracker.sync import find_spooled_runs, sync

    if args.list:
        for path in find_spooled_runs(args.spool_dir):
            console.print(path)
        return 0
    targets = args.paths or None
    dirs = [d for t in targets for d in find_spooled_runs(t)] if targets else find_spooled_runs(args.spool_dir)
    failed = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("syncing runs", total=len(dirs))

        def on_run(path: str, report: Any) -> None:
            nonlocal failed
            progress.advance(task)
            if report.complete:
                progress.console.print(f"[green]✓[/] {path}: {len(report.uploaded)} files uploaded")
            else:
                failed += 1
                progress.console.print(
                    f"[red]✗[/] {path}: {len(report.pending)} files not uploaded ({report.error}); run sync again"
                )

        sync(dirs, storage_options=_storage_options(args.storage_options), on_run=on_run)
    if not dirs:
        console.print("nothing to sync")
    return 1 if failed else 0


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker.demo import DEFAULT_CONFIGS, run_demo

    console.print(f"training {len(DEFAULT_CONFIGS)} configurations of a digits classifier into {args.save_dir} …")
    run_demo(args.save_dir, args.project, storage_options=_storage_options(args.storage_options))
    ns = argparse.Namespace(store=args.save_dir, project=args.project, storage_options=args.storage_options,
                            tag=None, status=None, sort="-val/acc", columns=None)  # fmt: skip
    return _cmd_runs(ns, console)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-tracker", description="Self-hosted experiment tracking.")
    sub = parser.add_subparsers(dest="command", required=True)

    def store_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("store", nargs="?", default="./runs", help="folder or URL of the runs (default ./runs)")
        p.add_argument("--project", "-p", help="only this project")
        p.add_argument("--storage-options", help=f"fsspec options as JSON (or ${_OPTIONS_ENV})")

    runs = sub.add_parser("runs", help="list runs as a table")
    store_args(runs)
    runs.add_argument("--status", action="append", help="only runs in this status (repeatable)")
    runs.add_argument("--tag", action="append", help="only runs with this tag (repeatable)")
    runs.add_argument("--sort", help="sort by a column; prefix '-' for descending (e.g. -val/acc)")
    runs.add_argument("--columns", help="comma-separated hyperparameters and metrics to show")
    runs.set_defaults(func=_cmd_runs)

    show = sub.add_parser("show", help="one run: metadata, hyperparameters, metric summary")
    show.add_argument("run", help="run id, id prefix or name")
    store_args(show)
    show.set_defaults(func=_cmd_show)

    syn = sub.add_parser("sync", help="upload spooled runs (offline runs, outages, crashes)")
    syn.add_argument("paths", nargs="*", help="spool folders of runs (default: every spooled run)")
    syn.add_argument("--spool-dir", help="spool root (default $LIGHTNING_TRACKER_SPOOL or ~/.cache/lightning_tracker/spool)")
    syn.add_argument("--storage-options", help=f"fsspec options as JSON (or ${_OPTIONS_ENV})")
    syn.add_argument("--list", action="store_true", help="only list spooled runs")
    syn.set_defaults(func=_cmd_sync)

    demo = sub.add_parser("demo", help="train several configurations and record them")
    demo.add_argument("--save-dir", default="./runs", help="folder or URL for the runs (default ./runs)")
    demo.add_argument("--project", default="demo")
    demo.add_argument("--storage-options", help=f"fsspec options as JSON (or ${_OPTIONS_ENV})")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    # a pipe or CI log gets wide tables instead of rich's 80-column default
    console = Console() if sys.stdout.isatty() else Console(width=int(os.environ.get("COLUMNS", 200)))
    err = Console(stderr=True)
    try:
        return int(args.func(args, console))
    except TrackerError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
