"""``lightning-tracker index``: rebuild the project index from the run folders.

For stores written before the index existed and runs copied in by hand (``aws s3 sync``):
such runs added no change object, so the index does not know them until it is rebuilt.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape

from lightning_tracker.cli.stores import diagnose, open_store, pick_store
from lightning_tracker.cli.terminal import plural, visible
from lightning_tracker.exceptions import NothingMatchedError, ProjectNotFoundError

__all__ = ["cmd_index"]


def cmd_index(args: argparse.Namespace, out: Console) -> int:
    """Rebuilds the index of ``--project`` (default: every project) and says how many runs each holds."""
    store = open_store(pick_store(args.store, None), args.storage_options)
    projects = store.projects()
    if args.project is not None and args.project not in projects:
        raise ProjectNotFoundError(diagnose(store, args.project) or f"no project {args.project!r}")
    if not projects:
        raise NothingMatchedError(diagnose(store) or f"no runs in {store.storage.url}")
    for project in [args.project] if args.project is not None else projects:
        count = store.reindex(project)
        out.print(f"{escape(visible(project))}: {plural(count, 'run')} indexed")
    return 0
