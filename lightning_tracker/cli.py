"""The ``lightning-tracker`` command: list, show and sync runs, and run the demo.

This is the only module that prints. Text read from a store (names, tags, metric keys,
hyperparameters) is printed as plain text: never as rich markup, and with control
characters shown as escapes (``\x1b``), so stored data cannot restyle or take over the
terminal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

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


# C0, DEL and C1 controls (ESC, CSI, OSC...), and the bidirectional overrides that reorder text
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(value: Any) -> str:
    """Stored text as it may reach a terminal: every control character shown as an escape (``\\x1b``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", str(value))


def _text(value: Any, style: str = "") -> Text:
    """Stored text as a rich ``Text``: printed as it is, never read as markup."""
    return Text(_visible(value), style=style)


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


_STATUS_STYLE = {"finished": "green", "running": "cyan", "failed": "red", "crashed": "bold red", "damaged": "bold red"}


def _status(status: str) -> Text:
    return _text(status, _STATUS_STYLE.get(status, ""))


def _cmd_runs(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from lightning_tracker.api import Store

    store = Store(args.store, _storage_options(args.storage_options))
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"reading runs from {escape(_visible(store.storage.url))}", total=None)
        table = store.table(args.project, tags=args.tag or None, status=args.status or None, where=args.where,
                            progress=lambda done, total: bar.update(task, completed=done, total=total))  # fmt: skip
    if table.empty:
        where = f" (project {args.project!r})" if args.project else ""
        console.print(_text(f"no runs in {store.storage.url}{where}"))
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
    damaged = bool(table["damage"].notna().any())
    out = Table(title=_text(f"{len(table)} runs in {store.storage.url}"), header_style="bold")
    fields = ["id", "name", *([] if args.project else ["project"]), "status", *(["damage"] if damaged else [])]
    for col in fields:
        out.add_column(col, no_wrap=col == "id", style={"id": "dim", "damage": "red"}.get(col, ""))
    out.add_column("duration", justify="right")
    for col in config_cols:
        out.add_column(_text(col[len("config."):]), justify="right", style="yellow")
    for col in metric_cols:
        out.add_column(_text(col[len("summary."):]), justify="right", style="magenta")
    for row in table.itertuples(index=False):
        rec = dict(zip(table.columns, row, strict=True))
        cells = [_status(rec[c]) if c == "status" else _text(rec[c] or "") for c in fields]
        cells.append(_text(_fmt_duration(rec["duration_s"])))
        out.add_row(*cells, *(_text(_fmt(rec[c])) for c in config_cols + metric_cols))
    console.print(out)
    return 0


def _cmd_show(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker.api import Store

    store = Store(args.store, _storage_options(args.storage_options))
    run = store.run(args.run, args.project)
    meta, flat, summary = run.meta, run.flat_config, run.summary  # read first: the status shows their damage
    info = Table.grid(padding=(0, 2))
    start = datetime.fromtimestamp(run.start_time).isoformat(" ", "seconds") if run.start_time else "—"
    git = meta.get("git") or {}
    git_text = f"{str(git.get('commit') or '')[:12]} {git.get('branch') or ''}{' (dirty)' if git.get('dirty') else ''}"
    for key, value in [
        ("id", run.id), ("name", run.name), ("project", run.project), ("group", run.group or "—"),
        ("tags", ", ".join(run.tags) or "—"), ("status", _status(run.status)), ("damage", run.damage),
        ("start", start), ("duration", _fmt_duration(run.duration)), ("url", run.url),
        ("host", meta.get("host") or "—"), ("command", " ".join(meta.get("command") or [])),
        ("git", git_text if git else "—"),
    ]:  # fmt: skip
        if value is not None:
            info.add_row(Text(key, style="bold"), value if isinstance(value, Text) else _text(value))
    console.print(info)
    config = Table(title="hyperparameters", header_style="bold")
    config.add_column("key")
    config.add_column("value")
    for key, value in sorted(flat.items()):
        config.add_row(_text(key), _text(json.dumps(value) if not isinstance(value, str) else value))
    console.print(config)
    metrics = Table(title="metrics", header_style="bold")
    for col in ("metric", "last", "step", "min", "max", "points"):
        metrics.add_column(col, justify="left" if col == "metric" else "right")
    for key, s in sorted(summary.items()):
        metrics.add_row(_text(key), *(_text(_fmt(s.get(f))) for f in ("last", "last_step", "min", "max", "count")))
    console.print(metrics)
    return 0


def _cmd_sync(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from lightning_tracker.sync import spooled_runs, sync

    if args.list:
        for path in spooled_runs(None, args.spool_dir):
            console.print(_text(path))
        return 0
    dirs = spooled_runs(args.paths or None, args.spool_dir)
    failed = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("syncing runs", total=len(dirs))

        def on_run(path: str, report: Any) -> None:
            nonlocal failed
            progress.advance(task)
            if report.complete:
                progress.console.print(Text.assemble(("✓ ", "green"), _text(path),
                                                     f": {len(report.uploaded)} files uploaded"))  # fmt: skip
            else:
                failed += 1
                progress.console.print(Text.assemble(
                    ("✗ ", "red"), _text(path), f": {len(report.pending)} files not uploaded (",
                    _text(report.error), "); run sync again"))  # fmt: skip

        sync(dirs, storage_options=_storage_options(args.storage_options), on_run=on_run)
    if not dirs:
        console.print("nothing to sync")
    return 1 if failed else 0


def _cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker.api import Store

    store = Store(args.store, _storage_options(args.storage_options))
    with console.status(_text(f"reading runs from {store.storage.url} …")):
        runs = [store.run(run_id, args.project) for run_id in args.runs]
        keys = sorted({k for r in runs for k in r.flat_config})
        summaries = [r.summary for r in runs]
    differ = [k for k in keys if len({json.dumps(r.flat_config.get(k), sort_keys=True, default=str) for r in runs}) > 1]
    config = Table(title=f"hyperparameters that differ ({len(differ)} of {len(keys)})", header_style="bold")
    config.add_column("key")
    for r in runs:
        config.add_column(Text.assemble(_visible(r.name), "\n", (_visible(r.id), "dim")), justify="right")
    for key in differ:
        values = [r.flat_config.get(key) for r in runs]
        styles = ["bold yellow" if i > 0 and v != values[0] else "" for i, v in enumerate(values)]
        config.add_row(_text(key), *(_text(_fmt(v), style) for v, style in zip(values, styles, strict=True)))
    console.print(config if differ else f"the {len(runs)} runs share all {len(keys)} hyperparameters")
    metrics = Table(title="metrics (last value)", header_style="bold")
    metrics.add_column("metric")
    for r in runs:
        metrics.add_column(_text(r.name), justify="right")
    metrics.add_row("status", *[_status(r.status) for r in runs])
    if any(r.damage for r in runs):
        metrics.add_row("damage", *[_text(r.damage or "", "red") for r in runs])
    metrics.add_row("duration", *[_fmt_duration(r.duration) for r in runs])
    for key in sorted({k for s in summaries for k in s if not k.startswith("system/")}):
        metrics.add_row(_text(key), *[_text(_fmt(s.get(key, {}).get("last"))) for s in summaries])
    console.print(metrics)
    return 0


def _write_report(store: Any, runs: Any, output: str, console: Console, project: str | None = None) -> str:
    from rich.progress import Progress

    from lightning_tracker.report import write_report

    with console.status(_text(f"listing runs in {store.storage.url} …")):
        runs = runs if runs is not None else store.runs(project)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("reading runs", total=len(runs))
        return write_report(store, output, runs, on_run=lambda _run: progress.advance(task))


def _cmd_report(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker.api import Store

    store = Store(args.store, _storage_options(args.storage_options))
    runs = [store.run(run_id, args.project) for run_id in args.runs] if args.runs else None
    path = _write_report(store, runs, args.output, console, args.project)
    console.print(_text(f"report written to {path} ({os.path.getsize(path) / 1e6:.1f} MB); open it in a browser"))
    return 0


def _cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker.api import Store
    from lightning_tracker.report import Dashboard

    store = Store(args.store, _storage_options(args.storage_options))
    try:
        dashboard = Dashboard(store, project=args.project, host=args.host, port=args.port, refresh=args.refresh)
    except OSError as err:
        raise InvalidArgumentError(
            f"cannot listen on {args.host}:{args.port} ({err.strerror or err}); "
            "pass another --port, or --port 0 for any free one"
        ) from None
    console.print(Text.assemble("serving ", _visible(store.storage.url), " at ", (dashboard.url, "bold"),
                                " (read-only; Ctrl+C to stop)"))  # fmt: skip
    try:
        dashboard.serve_forever()
    finally:
        dashboard.stop()
    return 0


def _cmd_hist(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker._heatmap import write_heatmaps
    from lightning_tracker.api import Store

    store = Store(args.store, _storage_options(args.storage_options))
    run = store.run(args.run, args.project)
    with console.status(_text(f"reading the histograms of {run.id} …")):
        hist = run.histograms()
    for path in write_heatmaps(hist, args.out or f"histograms-{run.id}", run, pattern=args.pattern, kind=args.kind):
        console.print(_text(path), soft_wrap=True)
    return 0


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from lightning_tracker.demo import DEFAULT_CONFIGS, run_demo

    console.print(_text(f"training {len(DEFAULT_CONFIGS)} configurations of a digit classifier into {args.save_dir} …"))
    run_demo(args.save_dir, args.project, storage_options=_storage_options(args.storage_options))
    ns = argparse.Namespace(store=args.save_dir, project=args.project, storage_options=args.storage_options,
                            tag=None, status=None, where=None, sort="-val/acc", columns=None)  # fmt: skip
    _cmd_runs(ns, console)
    from lightning_tracker.api import Store

    store = Store(args.save_dir, _storage_options(args.storage_options))
    path = _write_report(store, None, args.report, console, args.project)
    console.print(Text.assemble("report written to ", (_visible(path), "bold")))
    console.print(_text(f"watch runs live with: lightning-tracker serve {args.save_dir}"))
    return 0


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
    runs.add_argument("--where", "-w", action="append", metavar="TERM",
                      help="only runs where a hyperparameter, metric or field compares true, e.g. "
                           "'lr<0.01', 'optimizer=adam', 'val/acc>=0.9', 'tags=baseline', or whose "
                           "id, name, project, group, status or tags contain a word (repeatable)")  # fmt: skip
    runs.add_argument("--sort", help="sort by a column; prefix '-' for descending (e.g. -val/acc)")
    runs.add_argument("--columns", help="comma-separated hyperparameters and metrics to show")
    runs.set_defaults(func=_cmd_runs)

    show = sub.add_parser("show", help="one run: metadata, hyperparameters, metric summary")
    show.add_argument("run", help="run id, id prefix or name")
    store_args(show)
    show.set_defaults(func=_cmd_show)

    hist = sub.add_parser("hist", help="PNG heatmaps (steps x values) of a run's gradient and weight histograms")
    hist.add_argument("run", help="run id, id prefix or name")
    hist.add_argument("pattern", nargs="?", default="*", help="tensors to draw, fnmatch pattern (default: all)")
    store_args(hist)
    hist.add_argument("--out", help="folder for the PNG files (default ./histograms-<run id>)")
    hist.add_argument("--kind", choices=("gradient", "parameter"), help="only gradients or only weights")
    hist.set_defaults(func=_cmd_hist)

    syn = sub.add_parser("sync", help="upload spooled runs (offline runs, outages, crashes)")
    syn.add_argument("paths", nargs="*", help="spool folders of runs (default: every spooled run)")
    syn.add_argument("--spool-dir",
                     help="spool root (default $LIGHTNING_TRACKER_SPOOL or ~/.cache/lightning_tracker/spool)")
    syn.add_argument("--storage-options", help=f"fsspec options as JSON (or ${_OPTIONS_ENV})")
    syn.add_argument("--list", action="store_true", help="only list spooled runs")
    syn.set_defaults(func=_cmd_sync)

    def store_option(p: argparse.ArgumentParser) -> None:  # the store as an option: the runs come first
        p.add_argument("--store", "-s", default="./runs", help="folder or URL of the runs (default ./runs)")
        p.add_argument("--project", "-p", help="only this project")
        p.add_argument("--storage-options", help=f"fsspec options as JSON (or ${_OPTIONS_ENV})")

    compare = sub.add_parser("compare", help="runs side by side: hyperparameters that differ, final metrics")
    compare.add_argument("runs", nargs="+", help="run ids, id prefixes or names")
    store_option(compare)
    compare.set_defaults(func=_cmd_compare)

    report = sub.add_parser("report", help="write one self-contained HTML report (opens offline)")
    report.add_argument("runs", nargs="*", help="run ids, id prefixes or names (default: every run)")
    store_option(report)
    report.add_argument("--output", "-o", default="report.html", help="the HTML file to write (default report.html)")
    report.set_defaults(func=_cmd_report)

    serve = sub.add_parser("serve", help="live dashboard in the browser, updating while runs train")
    store_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    serve.add_argument("--refresh", type=float, default=5.0, help="seconds between updates (default 5)")
    serve.set_defaults(func=_cmd_serve)

    demo = sub.add_parser("demo", help="train several configurations and record them")
    demo.add_argument("--save-dir", default="./runs", help="folder or URL for the runs (default ./runs)")
    demo.add_argument("--project", default="demo")
    demo.add_argument("--report", default="report.html", help="where to write the report (default report.html)")
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
        err.print(Text.assemble(("error:", "red"), " ", _visible(exc)))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
