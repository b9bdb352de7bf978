"""``lightning-tracker export delta``: a project's runs and points as Delta Lake tables."""

from __future__ import annotations

import argparse

from rich.console import Console

from lightning_tracker._settings import json_object
from lightning_tracker.cli.stores import open_store, pick_store
from lightning_tracker.cli.terminal import plural, text
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.manage.delta import POINTS_TABLE, RUNS_TABLE, export_delta

__all__ = ["cmd_export"]


def cmd_export(args: argparse.Namespace, out: Console) -> int:
    """Exports ``-p PROJECT`` to ``-o URL``; says what was written."""
    if not args.project:
        raise InvalidArgumentError("export needs the project to export; pass -p PROJECT")
    store = open_store(pick_store(args.store, None), args.storage_options)
    try:
        options = json_object(args.delta_options) if args.delta_options else None
    except ValueError as err:
        raise InvalidArgumentError(
            f"--delta-options={args.delta_options!r} {err}; pass delta-rs options as a JSON object, "
            'e.g. \'{"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}\''
        ) from None
    done = export_delta(store, args.project, args.output, storage_options=options)
    url = args.output.rstrip("/")
    out.print(
        text(
            f"exported {plural(done.points, 'point')} of {plural(done.runs, 'run')} "
            f"({done.replaced} replaced, {done.unchanged} unchanged) to {url}/{POINTS_TABLE} "
            f"and {url}/{RUNS_TABLE} in {done.seconds:.1f} s"
        )
    )
    return 0
