"""The commands that make something: ``report``, ``serve``, ``sync`` and ``demo``."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from lightning_tracker.cli.reading import cmd_runs, store_of
from lightning_tracker.cli.stores import diagnose, pick_store, split_store, storage_options
from lightning_tracker.cli.terminal import fmt_bytes, plural, text, visible
from lightning_tracker.exceptions import InvalidArgumentError, NothingMatchedError, TrackerError
from lightning_tracker.read.store import Store
from lightning_tracker.storage import Storage
from lightning_tracker.storage.urls import parse_url

__all__ = ["cmd_demo", "cmd_report", "cmd_serve", "cmd_sync", "command_name"]


def command_name() -> str:
    """How to call ``lightning-tracker`` from a new shell: the bare name only when it is on its ``PATH``.

    An activated virtual environment is not active in a new shell, so its script is named
    by its path (relative to the working folder when it is below it).
    """
    script = Path(sys.executable).parent / "lightning-tracker"
    on_path = shutil.which("lightning-tracker")
    if not script.exists() or (on_path and Path(on_path) == script and not os.environ.get("VIRTUAL_ENV")):
        return "lightning-tracker"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _write_report(
    store: Store, runs: Any, output: str, out: Console, project: str | None, output_options: dict[str, Any] | None
) -> str:
    from rich.progress import Progress

    from lightning_tracker.report import write_report

    with out.status(text(f"listing runs in {store.storage.url} …")):
        runs = runs if runs is not None else store.runs(project)
    if not runs:
        where = f" (project {project})" if project else ""
        problem = diagnose(store, project)
        if problem and "no runs in" not in problem:  # the store or project was misnamed
            raise InvalidArgumentError(f"{problem}; no report written")
        raise NothingMatchedError(f"{problem or f'no runs in {store.storage.url}{where}'}; no report written")
    with Progress(console=out, transient=True, disable=not out.is_terminal) as progress:
        task = progress.add_task("reading runs", total=len(runs))
        return write_report(
            store, output, runs, on_run=lambda _run: progress.advance(task), storage_options=output_options
        )


def _output_options(store: Store, output: str, options_text: str | None) -> dict[str, Any] | None:
    """The credentials for the report's URL: ``--storage-options`` when the store is local or on the same service."""
    target = Storage(output)
    if target.is_local or not (store.storage.is_local or target.protocol == store.storage.protocol):
        return None
    return storage_options(options_text)


def cmd_report(args: argparse.Namespace, out: Console) -> int:
    rest, positional = split_store(args.runs)
    store = store_of(args, positional)
    runs = [store.run(run_id, args.project) for run_id in rest] if rest else None
    if args.share is not None and not 0 < args.share <= 7:
        raise InvalidArgumentError(
            f"--share={args.share:g} days: a signed link lasts more than 0 and at most 7 days "
            "(S3's limit); pass --share 7 or less"
        )
    options = _output_options(store, args.output, args.storage_options)
    path = _write_report(store, runs, args.output, out, args.project, options)
    # write_report returns a local file's absolute path, or the URL it wrote to (without the
    # credentials -o carried: they go back into the options, or the link cannot be signed)
    folder, name = path.rsplit("/", 1) if "://" in path else os.path.split(os.path.abspath(path))
    credentials = parse_url(args.output).credentials
    target = Storage(folder, {**credentials, **(options or {})} if credentials else options)
    size = os.path.getsize(path) if target.is_local else None
    out.print(text(f"report written to {path}" + (f" ({fmt_bytes(size)}); open it in a browser" if size else "")))
    if args.share is None:
        return 0
    link = target.sign(name, int(args.share * 86400))
    days = f"{args.share:g} day" + ("" if args.share == 1 else "s")
    out.print(Text.assemble(f"share this link (valid {days}): ", (link, "bold")), soft_wrap=True)
    return 0


def cmd_serve(args: argparse.Namespace, out: Console) -> int:
    from lightning_tracker._settings import SERVE_TOKEN
    from lightning_tracker.report import Dashboard

    store = store_of(args, args.store_arg)
    token = args.token if args.token is not None else SERVE_TOKEN.get()
    try:
        dashboard = Dashboard(
            store,
            project=args.project,
            host=args.host,
            port=args.port,
            refresh=args.refresh,
            token=token,
            base_path=args.base_path,
            secure_cookie=args.secure_cookie,
        )
    except OSError as err:
        fix = (
            "pass another --port, or --port 0 for any free one"
            if err.errno == errno.EADDRINUSE
            else "pass an address this machine has, such as --host 127.0.0.1 or --host ::1"
        )
        raise InvalidArgumentError(f"cannot listen on {args.host}:{args.port} ({err.strerror or err}); {fix}") from None
    out.print(
        Text.assemble(
            "serving ", visible(store.storage.url), " at ", (dashboard.url, "bold"), " (read-only; Ctrl+C to stop)"
        )
    )
    if dashboard.needs_token:  # the token itself is never printed: the terminal may be shared or recorded
        out.print(text("every request needs the token: open the address with ?token=<token> once, or send it as a"))
        out.print(text("header Authorization: Bearer <token>"))
    try:
        dashboard.serve_forever()
    finally:
        dashboard.stop()
    return 0


def _sync_failure(path: str, error: BaseException | None) -> str:
    """Why a run was not uploaded, and the fix (as the other commands say it); sync again when nothing else helps."""
    from lightning_tracker.exceptions import TransientStoreError
    from lightning_tracker.storage.failures import as_tracker_error
    from lightning_tracker.writers.spool import read_spool

    if error is None:
        return "run sync again"
    if isinstance(error, TrackerError):  # ours already says what to do (a damaged spool.json)
        return str(error)
    spool = read_spool(path)
    store = Storage(spool.url) if spool else None
    url, scheme = (store.url, store.protocol) if store else ("the store", "")
    failure = as_tracker_error(error, url, scheme, unknown_fix="run sync again")
    return f"{failure}; then run sync again" if isinstance(failure, TransientStoreError) else str(failure)


def _sync_label(path: str) -> str:
    """Where a spooled run goes (``s3://bucket/exp/project/run_id``), read before the sync removes its
    folder; the folder itself when its ``spool.json`` cannot say."""
    from lightning_tracker.writers.spool import read_spool

    try:
        spool = read_spool(path)
    except TrackerError:
        return path
    return f"{spool.url.rstrip('/')}/{spool.prefix}" if spool else path


def cmd_sync(args: argparse.Namespace, out: Console) -> int:
    from rich.progress import Progress

    from lightning_tracker.writers.sync import spooled_runs, sync

    if args.list:
        for path in spooled_runs(None, args.spool_dir):
            out.print(text(path))
        return 0
    dirs = spooled_runs(args.paths or None, args.spool_dir)
    labels = {path: _sync_label(path) for path in dirs}
    failed = 0
    with Progress(console=out, transient=True, disable=not out.is_terminal) as progress:
        task = progress.add_task("syncing runs", total=len(dirs))

        def on_run(path: str, report: Any) -> None:
            nonlocal failed
            progress.advance(task)
            if report.complete and report.uploaded:
                progress.console.print(
                    Text.assemble(
                        ("✓ ", "green"),
                        text(labels.get(path, path)),
                        f": {plural(len(report.uploaded), 'file')} uploaded",
                    )
                )
            elif not report.complete:  # a run already whole in its store is not news: sync stays quiet
                failed += 1
                progress.console.print(
                    Text.assemble(
                        ("✗ ", "red"),
                        text(path),
                        f": {plural(len(report.pending), 'file')} not uploaded: ",
                        text(_sync_failure(path, report.error)),
                    )
                )

        sync(dirs, storage_options=storage_options(args.storage_options), on_run=on_run)
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace, out: Console) -> int:
    from lightning_tracker.cli.demo import DEFAULT_CONFIGS, run_demo

    args.save_dir = pick_store(args.save_dir, None)

    out.print(text(f"training {len(DEFAULT_CONFIGS)} configurations of a digit classifier into {args.save_dir} …"))
    run_demo(args.save_dir, args.project, storage_options=storage_options(args.storage_options))
    runs_args = argparse.Namespace(
        store=args.save_dir,
        store_arg=None,
        project=args.project,
        tag=None,
        status=None,
        where=None,
        sort="-val/acc",
        columns=None,
        all=False,
        archived=False,
        include_archived=False,
        json=False,
        group_by=None,
        storage_options=args.storage_options,
    )
    cmd_runs(runs_args, out)
    store = store_of(runs_args)
    path = _write_report(store, None, args.report, out, args.project, None)
    out.print(Text.assemble("report written to ", (visible(path), "bold")))
    out.print(text(f"watch runs live with: {command_name()} serve {args.save_dir}"))
    return 0
