"""Which store a command reads, with what credentials, and why it holds no runs.

Every command names its store the same way: ``-s/--store``, else
``$LIGHTNING_TRACKER_STORE``, else ``./runs``. The positional form that existed before
(``runs ./runs``, ``show RUN ./runs``) still works, in any position: run ids and names
never contain ``/``, so an argument that looks like a path or URL is the store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lightning_tracker._settings import STORAGE_OPTIONS, STORE, json_object
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.read.store import Store

__all__ = ["OPTIONS_ENV", "STORE_ENV", "diagnose", "looks_like_store", "open_store", "pick_store", "split_store"]

STORE_ENV = STORE.name
OPTIONS_ENV = STORAGE_OPTIONS.name
DEFAULT_STORE = STORE.default


def looks_like_store(arg: str) -> bool:
    """Whether a positional argument is a store rather than a run id or name.

    Example:
        >>> [looks_like_store(a) for a in ("./runs", "s3://b/x", "runs/", ".", "20261129-0812", "run-1")]
        [True, True, True, True, False, False]
    """
    return "://" in arg or "/" in arg or os.sep in arg or arg in (".", "..") or arg.startswith("~")


def split_store(args: Sequence[str]) -> tuple[list[str], str | None]:
    """Separates the store from the other positional arguments.

    Raises:
        InvalidArgumentError: two arguments look like stores.

    Example:
        >>> split_store(["run-1", "./runs"]), split_store(["./runs", "run-1"]), split_store(["a", "b"])
        ((['run-1'], './runs'), (['run-1'], './runs'), (['a', 'b'], None))
    """
    stores = [a for a in args if looks_like_store(a)]
    if len(stores) > 1:
        raise InvalidArgumentError(
            f"{stores[0]!r} and {stores[1]!r} both look like stores; name one store with -s/--store"
        )
    return [a for a in args if a not in stores], (stores[0] if stores else None)


def pick_store(option: str | None, positional: str | None) -> str:
    """The store named by ``-s``, by position, by ``$LIGHTNING_TRACKER_STORE``, or ``./runs``."""
    if option and positional and option != positional:
        raise InvalidArgumentError(
            f"two stores given: -s {option!r} and {positional!r}; give one (-s/--store is the usual form)"
        )
    return option or positional or STORE.get()


def storage_options(text: str | None) -> dict[str, Any] | None:
    """``--storage-options`` (or ``$LIGHTNING_TRACKER_STORAGE_OPTIONS``) as a dict; None without either."""
    if not text:
        return STORAGE_OPTIONS.get()
    try:
        return json_object(text)
    except ValueError as err:  # the same rule as the variable's, with the flag's fix
        raise InvalidArgumentError(
            f"--storage-options={text!r} {err}; pass an object such as "
            '\'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}\''
        ) from None


def open_store(url: str, options_text: str | None) -> Store:
    """The store at ``url``; a local folder is checked first (missing, a file, a project or run folder).

    Raises:
        InvalidArgumentError: the local folder cannot be a store; the message says what to pass.
    """
    store = Store(url, storage_options(options_text))
    if store.storage.is_local:
        problem = _misnamed(store)
        if problem:
            raise InvalidArgumentError(problem)
    return store


def _misnamed(store: Store) -> str | None:
    """What ``store`` is instead of a store, if it is something else."""
    url = store.storage.url
    if store.storage.is_local and not os.path.exists(url):
        return (
            f"the store {url} does not exist; pass the folder the runs were written to with -s PATH "
            f"(default ${STORE_ENV} or {DEFAULT_STORE}), or run `lightning-tracker demo` to make one"
        )
    if store.storage.is_local and not os.path.isdir(url):
        return f"the store {url} is a file, not a folder of runs; pass the folder with -s PATH"
    names = [n for n in store.projects() if n != "run.json"]
    parent, base = os.path.split(url.rstrip("/"))
    if store.storage.exists("run.json"):
        grand, project = os.path.split(parent)
        return f"{url} is a run folder, not a store; try -s {grand or '.'} -p {project}"
    if any(store.storage.exists(f"{name}/run.json") for name in names[:5]):
        return f"{url} looks like a project folder; try -s {parent or '.'} -p {base}"
    return None


def diagnose(store: Store, project: str | None = None) -> str | None:
    """Why ``store`` (or its ``project``) has no runs to list, as advice; None when it has some."""
    problem = _misnamed(store)
    if problem:
        return problem
    names = store.projects()
    if not names:
        return f"no runs in {store.storage.url}: it is empty or does not exist"
    if project is not None and project not in names:
        import difflib

        close = difflib.get_close_matches(project, names, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        return f"no project {project!r} in {store.storage.url}; {hint}projects: {', '.join(names)}"
    return None


def project_counts(store: Store) -> dict[str, int]:
    """Each project of ``store`` and how many runs it holds (one listing per project)."""
    return {p: len(store.run_ids(p)) for p in store.projects()}
