"""The commands that change runs after they ran: ``tag``, ``note``, ``rename``, ``archive``, ``unarchive``, ``rm``.

Edits are :class:`~lightning_tracker.read.run.Run`'s (one immutable document each, safe
beside a live run); deletion is :mod:`lightning_tracker.manage.delete`'s. Each command
prints what it did, or with ``--json`` one JSON document (``docs/cli-json.md``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from lightning_tracker.cli.json_output import print_json, run_record
from lightning_tracker.cli.reading import find_run, store_of
from lightning_tracker.cli.stores import diagnose, split_store
from lightning_tracker.cli.terminal import plural, text
from lightning_tracker.exceptions import InvalidArgumentError, NothingMatchedError, ProjectNotFoundError
from lightning_tracker.format.edits import check_tag
from lightning_tracker.manage.delete import (
    Doomed,
    delete_run,
    pending_deletions,
    plan_deletion,
    resolve_targets,
    undo_deletion,
)
from lightning_tracker.read.store import Run, Store

__all__ = ["cmd_archive", "cmd_note", "cmd_rename", "cmd_rm", "cmd_tag", "cmd_unarchive", "tag_removals_as_options"]


def tag_removals_as_options(argv: Sequence[str]) -> list[str]:
    """``tag RUN +best -baseline``: each ``+TAG`` becomes ``--add-tag=TAG`` and each ``-TAG`` ``--remove-tag=TAG``.

    argparse would take ``-baseline`` for an option it does not know, and a run named
    after an option for a stray argument; the options of ``tag`` itself (``-s``, ``-p``,
    ``-h``, anything starting ``--``) stay options.

    Example:
        >>> tag_removals_as_options(["tag", "r1", "+best", "-baseline", "-s", "./runs"])
        ['tag', 'r1', '--add-tag=best', '--remove-tag=baseline', '-s', './runs']
        >>> tag_removals_as_options(["show", "tag", "-x"])
        ['show', 'tag', '-x']
    """
    argv = list(argv)
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)  # only --debug comes before
    if command is None or argv[command] != "tag":
        return argv
    start = command + 1
    own = {"-s", "-p", "-h"}
    out = argv[:start]
    after_value = False
    for arg in argv[start:]:
        if after_value:
            out.append(arg)
            after_value = False
        elif arg in own:
            out.append(arg)
            after_value = arg != "-h"
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            out.append(f"--remove-tag={arg[1:]}")
        elif arg.startswith("+"):
            out.append(f"--add-tag={arg[1:]}")
        else:
            out.append(arg)
    return out


def _runs(args: argparse.Namespace, targets: Sequence[str]) -> tuple[Store, list[Run]]:
    rest, positional = split_store(targets)
    store = store_of(args, positional)
    if not rest:
        raise InvalidArgumentError(f"{args.command} needs a run (an id, id prefix or name); got none")
    runs: list[Run] = []
    for target in rest:
        run = find_run(store, target, args.project)
        if all(r.path != run.path for r in runs):
            runs.append(run)
    return store, runs


def _report(args: argparse.Namespace, out: Console, runs: list[Run], did: str) -> int:
    if args.json:
        print_json(out, {"runs": [run_record(r, metrics=False) for r in runs]})
        return 0
    for run in runs:
        out.print(text(f"{did} {run.id} ({run.name}): tags {', '.join(run.tags) or '—'}"), soft_wrap=True)
    return 0


def cmd_tag(args: argparse.Namespace, out: Console) -> int:
    added = [check_tag(t, "+TAG") for t in args.add_tag or []]
    removed = [check_tag(t, "-TAG") for t in args.remove_tag or []]
    if not added and not removed:
        raise InvalidArgumentError(
            f"tag needs tags to add (+TAG) or remove (-TAG) after the runs, got {args.runs}; "
            "for example: lightning-tracker tag RUN +best -baseline"
        )
    _, runs = _runs(args, args.runs)
    for run in runs:
        if added:
            run.add_tags(*added)
        if removed:
            run.remove_tags(*removed)
    return _report(args, out, runs, "tagged")


def cmd_note(args: argparse.Namespace, out: Console) -> int:
    _, runs = _runs(args, [args.run])
    for run in runs:
        run.set_note(args.text)
    return _report(args, out, runs, "noted")


def cmd_rename(args: argparse.Namespace, out: Console) -> int:
    _, runs = _runs(args, [args.run])
    for run in runs:
        run.rename(args.name)
    return _report(args, out, runs, "renamed")


def cmd_archive(args: argparse.Namespace, out: Console) -> int:
    _, runs = _runs(args, args.runs)
    for run in runs:
        run.archive()
    return _report(args, out, runs, "archived")


def cmd_unarchive(args: argparse.Namespace, out: Console) -> int:
    _, runs = _runs(args, args.runs)
    for run in runs:
        run.unarchive()
    return _report(args, out, runs, "unarchived")


def _selected(args: argparse.Namespace, store: Store, targets: list[str]) -> list[Run | tuple[str, str]]:
    """The runs ``rm`` names: by id, prefix or name, or the selection of ``runs`` (filters, project)."""
    filtered = bool(args.where or args.status or args.tag or args.archived or args.include_archived)
    if targets:
        if filtered:
            raise InvalidArgumentError(
                f"rm takes runs {targets} or a selection (--where, --status, --tag), not both; give one"
            )
        return resolve_targets(store, targets, args.project)
    if args.project is None and not filtered:
        raise InvalidArgumentError(
            "rm needs runs (ids, id prefixes or names) or a selection: -p PROJECT, --where TERM, --status, --tag; "
            "for example: lightning-tracker rm -p demo --status failed"
        )
    if args.project is not None and args.project not in store.projects():
        raise ProjectNotFoundError(diagnose(store, args.project) or f"no project {args.project!r}")
    archived = None if args.include_archived else (True if args.archived else False)
    runs = store.runs(
        args.project, tags=args.tag or None, status=args.status or None, where=args.where, archived=archived
    )
    found: list[Run | tuple[str, str]] = list(runs)
    if not filtered:  # a whole project: a deletion left half-way there is finished too
        found += pending_deletions(store, args.project)
    if not found:
        asked = " ".join(
            [
                *([f"-p {args.project}"] if args.project else []),
                *(f"--where {w!r}" for w in args.where or []),
                *(f"--status {s}" for s in args.status or []),
                *(f"--tag {t}" for t in args.tag or []),
            ]
        )
        raise NothingMatchedError(f"no runs match {asked} in {store.storage.url}; nothing to delete")
    return found


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _listing(out: Console, plan: list[Doomed]) -> None:
    table = Table(header_style="bold", show_edge=False, box=box.SIMPLE_HEAD if out.is_terminal else None)
    for col in ("project", "id", "name", "status", "objects", "size"):
        table.add_column(col, justify="right" if col in ("objects", "size") else "left")
    for d in plan:
        table.add_row(text(d.project), d.run_id, text(d.name or "—"), d.status, str(len(d.objects)), _size(d.size))
    out.print(table)


def _doc(plan: list[Doomed], deleted: bool) -> dict[str, object]:
    return {
        "deleted": deleted,
        "runs": [
            {
                "project": d.project,
                "id": d.run_id,
                "name": d.name,
                "status": d.status,
                "objects": len(d.objects),
                "bytes": d.size,
            }
            for d in plan
        ],
        "objects": sum(len(d.objects) for d in plan),
        "bytes": sum(d.size for d in plan),
    }


def _confirmed(out: Console, plan: list[Doomed]) -> bool:
    total = sum(d.size for d in plan)
    what = f"{plural(len(plan), 'run')} ({_size(total)})"
    if sys.stdin is None or not sys.stdin.isatty():
        raise InvalidArgumentError(
            f"rm would delete {what} but cannot ask: stdin is not a terminal; pass --yes to delete without "
            "asking, or --dry-run to only list them"
        )
    out.print(text(f"delete {what}? this cannot be undone [y/N] "), end="")
    try:
        answer = input()
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _undo(args: argparse.Namespace, out: Console, store: Store, targets: list[str]) -> int:
    """``rm --undo RUN``: removes the deletion marks of runs whose deletion removed nothing yet."""
    if not targets:
        raise InvalidArgumentError("rm --undo needs the ids of runs being deleted; got none")
    pending = pending_deletions(store, args.project)
    undone = []
    for target in targets:
        if not target.strip():
            raise InvalidArgumentError(f"run={target!r}: the run id is empty; give the id of a run being deleted")
        found = [p for p in pending if p[1] == target] or [p for p in pending if p[1].startswith(target)]
        if len(found) != 1:
            which = f"matches {len(found)} of them" if found else "names none of them"
            ids = ", ".join(p[1] for p in pending) or "none"
            raise InvalidArgumentError(f"rm --undo {target!r} {which}; runs being deleted: {ids}")
        undo_deletion(store.storage, *found[0])
        undone.append(found[0])
    if args.json:
        print_json(out, {"undone": [{"project": p, "id": r} for p, r in undone]})
    else:
        for project, run_id in undone:
            out.print(text(f"run {run_id} of project {project} is no longer being deleted"))
    return 0


def cmd_rm(args: argparse.Namespace, out: Console) -> int:
    targets, positional = split_store(args.runs)
    store = store_of(args, positional)
    if args.undo:
        return _undo(args, out, store, targets)
    plan = plan_deletion(store, _selected(args, store, targets), force=args.force)
    if not args.json:
        verb = "would delete" if args.dry_run else "deleting"
        out.print(
            text(f"{verb} {plural(len(plan), 'run')} ({_size(sum(d.size for d in plan))}) in {store.storage.url}")
        )
        _listing(out, plan)
    if args.dry_run:
        if args.json:
            print_json(out, _doc(plan, False))
        return 0
    if not args.yes and not _confirmed(out, plan):
        out.print(text("nothing deleted"))
        return 1
    freed = 0
    for doomed in plan:
        freed += delete_run(store.storage, doomed)
    if args.json:
        print_json(out, _doc(plan, True))
    else:
        out.print(text(f"deleted {plural(len(plan), 'run')}, {_size(freed)} freed"))
    return 0
