"""The commands that keep a store tidy: ``du`` (what it holds), ``gc`` (what it need not) and ``import``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lightning_tracker.cli.reading import store_of
from lightning_tracker.cli.terminal import fmt_bytes, plural, text
from lightning_tracker.exceptions import InvalidArgumentError, NothingMatchedError

__all__ = ["cmd_du", "cmd_gc", "cmd_import"]

_KIND_HEADS = {"metrics": "metrics", "media": "media", "checkpoints": "ckpts", "tensorboard": "tb", "other": "other"}


def _print_json(out: Console, doc: Any) -> None:
    """A JSON document on its own, never styled or wrapped: what a script parses."""
    out.file.write(json.dumps(doc, indent=2) + "\n")
    out.file.flush()


def _usage_table(out: Console, usage: Any) -> Table:
    """One project's runs, largest first: total then bytes per kind (a kind no run has is left out)."""
    from lightning_tracker.manage.du import KINDS

    kinds = [kind for kind in KINDS if usage.kinds[kind]]
    table = Table(
        header_style="bold",
        box=box.SIMPLE_HEAD if out.is_terminal else None,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("run", no_wrap=True)
    for head in ("total", *(_KIND_HEADS[kind] for kind in kinds)):
        table.add_column(head, justify="right", no_wrap=True)
    table.add_row(
        Text(f"{usage.project} (all)", style="bold"),
        fmt_bytes(usage.bytes),
        *(fmt_bytes(usage.kinds[k]) for k in kinds),
    )
    for run in usage.runs:
        table.add_row(text(run.run), fmt_bytes(run.bytes), *(fmt_bytes(run.kinds[k]) for k in kinds))
    return table


def cmd_du(args: argparse.Namespace, out: Console) -> int:
    from lightning_tracker.manage.du import disk_usage

    store = store_of(args, args.store_arg)
    usage = disk_usage(store, args.project)
    if args.json:
        _print_json(out, usage.to_json())
        return 0
    if not usage.files:
        raise NothingMatchedError(f"{store.storage.url} is empty: it holds no runs")
    by_kind = sorted(((k, b) for k, b in usage.kinds.items() if b), key=lambda kb: -kb[1])
    out.print(
        text(
            f"{fmt_bytes(usage.bytes)} in {plural(usage.files, 'file')}, {plural(len(usage.projects), 'project')} "
            f"in {store.storage.url}"
        ),
        soft_wrap=True,  # the store's URL whole, on one line the terminal wraps: what a person copies
    )
    if by_kind:
        out.print(text("by kind: " + ", ".join(f"{kind} {fmt_bytes(size)}" for kind, size in by_kind)))
    if usage.outside_files:
        out.print(
            text(f"outside the projects: {fmt_bytes(usage.outside_bytes)} in {plural(usage.outside_files, 'file')}")
        )
    for project in usage.projects:
        out.print()
        out.print(_usage_table(out, project))
    return 0


def cmd_gc(args: argparse.Namespace, out: Console) -> int:
    from lightning_tracker.manage.gc import DEFAULT_GRACE_S, SAFE_GRACE_S, collect_garbage

    store = store_of(args, args.store_arg)
    grace = DEFAULT_GRACE_S if args.grace is None else args.grace
    if grace < 0:
        raise InvalidArgumentError(
            f"--grace={grace:g} is negative; pass the seconds an unreferenced file is kept, 0 or more"
        )
    if grace < SAFE_GRACE_S and not args.force:
        raise InvalidArgumentError(
            f"--grace={grace:g} is below {SAFE_GRACE_S:g} s: a file a writer uploaded but has not named yet "
            f"would go; pass --grace {SAFE_GRACE_S:g} or more, or add --force if no writer is at work"
        )
    verb = "would remove" if args.dry_run else "removed"

    def said(item: Any) -> None:  # as it goes: a gc cut off has said what it did
        out.print(
            Text.assemble(f"{verb} ", text(item.url), f" ({fmt_bytes(item.size)}, {item.reason})"), soft_wrap=True
        )

    report = collect_garbage(
        store, args.project, dry_run=args.dry_run, grace_s=grace, spool_root=args.spool_dir, on_removed=said
    )
    for where, why in report.kept:
        out.print(Text.assemble(("kept ", "yellow"), text(where), ": ", text(why)), soft_wrap=True)
    if not report.removed:
        out.print(text(f"no garbage in {store.storage.url}" + (f" (project {args.project})" if args.project else "")))
    else:
        freed = "would free" if args.dry_run else "freed"
        out.print(text(f"{verb} {plural(len(report.removed), 'item')}, {freed} {fmt_bytes(report.bytes)}"))
    return 0


def cmd_import(args: argparse.Namespace, out: Console) -> int:
    from dataclasses import asdict

    from lightning_tracker.cli.stores import pick_store, storage_options
    from lightning_tracker.manage.import_tensorboard import import_tensorboard
    from lightning_tracker.read.store import Store

    if not args.project:
        raise InvalidArgumentError(
            "-p/--project is missing; name the project the imported runs go to, e.g. -p tensorboard"
        )
    store = Store(pick_store(args.store, None), storage_options(args.storage_options))

    def said(run: Any) -> None:
        where = f"{args.project}/{run.run_id}"
        if not run.imported:
            new = ""
            if run.new_files:
                files = plural(run.new_files, "new event file")
                new = f"; {files} ({fmt_bytes(run.new_bytes)}) not imported: use --update to import it again"
            out.print(Text.assemble(text(run.folder), f": already imported as {where}{new}"), soft_wrap=True)
            return
        found = {"point": run.points, "image": run.images, "text": run.texts, "histogram": run.histograms}
        counts = [plural(n, what) for what, n in {**found, "hyperparameter": run.hyperparameters}.items() if n]
        out.print(
            Text.assemble(
                ("✓ ", "green"),
                text(run.folder),
                f" → {where}{' (updated)' if run.updated else ''}: {', '.join(counts) or 'no data'}",
            ),
            soft_wrap=True,
        )

    results = import_tensorboard(
        store, args.logdir, args.project, update=args.update, on_run=None if args.json else said
    )
    if args.json:
        _print_json(out, [asdict(run) for run in results])
        return 0
    added = sum(run.imported for run in results)
    out.print(text(f"{plural(added, 'run')} imported into {store.storage.url} (project {args.project})"))
    return 0
