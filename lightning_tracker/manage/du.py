"""Accounting: the bytes a store holds, per project, per run and per kind of file.

:func:`disk_usage` lists the store (or one project) once, recursively, with every
object's size (:meth:`~lightning_tracker.storage.base.Storage.find`): an object store
answers a page of objects per request, never a request per file, and no file is read.
The numbers are the objects' own sizes, so they add up to what the store bills.

What kind a file of a run is (:func:`kind_of`) follows the layout
(:mod:`lightning_tracker.format.layout`): metric and histogram chunks are ``metrics``, the
media index and its objects ``media``, stored checkpoints (and Lightning's own
``checkpoints/`` folder, which a local run folder holds) ``checkpoints``, event files
``tensorboard``; documents and anything else ``other``.

``lightning-tracker du --json`` prints :meth:`StoreUsage.to_json`, whose keys are stable::

    {"store": URL, "bytes": N, "files": N, "kinds": {KIND: N, ...},
     "outside_projects": {"bytes": N, "files": N},
     "projects": [{"project": NAME, "bytes": N, "files": N, "kinds": {...},
                   "runs": [{"run": ID, "bytes": N, "files": N, "kinds": {...}}, ...]}, ...]}

``kinds`` always holds every key of :data:`KINDS`; lists are largest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lightning_tracker.exceptions import ProjectNotFoundError
from lightning_tracker.format.layout import (
    EVENTS_PREFIX,
    HISTOGRAMS_DIR,
    MEDIA_DIR,
    MEDIA_FILES_DIR,
    METRICS_DIR,
    MODELS_DIR,
    is_private,
)
from lightning_tracker.format.rollups import ROLLUPS_DIR
from lightning_tracker.read.store import Store

__all__ = ["KINDS", "ProjectUsage", "RunUsage", "StoreUsage", "disk_usage", "kind_of"]

KINDS = ("metrics", "media", "checkpoints", "tensorboard", "other")
"""The kinds of a run's files, in the order the JSON and the table give them."""

_LIGHTNING_CHECKPOINTS = "checkpoints"  # ModelCheckpoint's folder inside a local run folder
_KIND_OF_FOLDER = {
    METRICS_DIR: "metrics",
    HISTOGRAMS_DIR: "metrics",
    ROLLUPS_DIR: "metrics",  # the metrics' level-of-detail summaries
    MEDIA_DIR: "media",
    MEDIA_FILES_DIR: "media",
    MODELS_DIR: "checkpoints",
    _LIGHTNING_CHECKPOINTS: "checkpoints",
}


def kind_of(rel: str) -> str:
    """The kind of a file of a run, from its path inside the run folder.

    Example:
        >>> [kind_of(p) for p in ("metrics/000-00000000-00000003.parquet", "media-files/ab.png",
        ...                       "models/last.ckpt", "events.out.tfevents.1.host", "run.json")]
        ['metrics', 'media', 'checkpoints', 'tensorboard', 'other']
        >>> kind_of("rollups/000-00000000-00000003.parquet")
        'metrics'
    """
    folder, _, name = rel.partition("/")
    if name and folder in _KIND_OF_FOLDER:
        return _KIND_OF_FOLDER[folder]
    if rel.rpartition("/")[2].startswith(EVENTS_PREFIX):
        return "tensorboard"
    return "other"


def _no_kinds() -> dict[str, int]:
    return dict.fromkeys(KINDS, 0)


@dataclass
class RunUsage:
    """The bytes of one run folder: its files, in all and per kind."""

    run: str
    bytes: int = 0
    files: int = 0
    kinds: dict[str, int] = field(default_factory=_no_kinds)

    def add(self, kind: str, size: int) -> None:
        self.bytes += size
        self.files += 1
        self.kinds[kind] += size

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "bytes": self.bytes, "files": self.files, "kinds": dict(self.kinds)}


@dataclass
class ProjectUsage:
    """The bytes of one project folder: its runs (largest first), and all of it per kind.

    ``bytes`` counts the whole folder: the runs, and the project's own files (its
    ``.index/``, counted as ``other``).
    """

    project: str
    runs: list[RunUsage] = field(default_factory=list)
    bytes: int = 0
    files: int = 0
    kinds: dict[str, int] = field(default_factory=_no_kinds)

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "bytes": self.bytes,
            "files": self.files,
            "kinds": dict(self.kinds),
            "runs": [run.to_json() for run in self.runs],
        }


@dataclass
class StoreUsage:
    """What :func:`disk_usage` found: the projects, largest first, and the totals.

    ``outside_bytes`` and ``outside_files`` count what the store holds outside any
    project (files at its top, folders starting with ``.``); zero when one project was asked.
    """

    url: str
    projects: list[ProjectUsage] = field(default_factory=list)
    outside_bytes: int = 0
    outside_files: int = 0

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.projects) + self.outside_bytes

    @property
    def files(self) -> int:
        return sum(p.files for p in self.projects) + self.outside_files

    @property
    def kinds(self) -> dict[str, int]:
        """Bytes per kind over the projects (what is outside the projects is not in any)."""
        return {kind: sum(p.kinds[kind] for p in self.projects) for kind in KINDS}

    def to_json(self) -> dict[str, Any]:
        """The document ``lightning-tracker du --json`` prints; its keys are stable (see the module docstring)."""
        return {
            "store": self.url,
            "bytes": self.bytes,
            "files": self.files,
            "kinds": self.kinds,
            "outside_projects": {"bytes": self.outside_bytes, "files": self.outside_files},
            "projects": [p.to_json() for p in self.projects],
        }


def _project_usage(name: str, listing: dict[str, int]) -> ProjectUsage:
    """Sorts one project's listing (paths relative to the project) into its runs and kinds."""
    usage = ProjectUsage(name)
    runs: dict[str, RunUsage] = {}
    for path, size in listing.items():
        usage.bytes += size
        usage.files += 1
        folder, _, rest = path.partition("/")
        if not rest or is_private(folder):  # the project's own files: its index, a stray file
            usage.kinds["other"] += size
            continue
        kind = kind_of(rest)
        usage.kinds[kind] += size
        runs.setdefault(folder, RunUsage(folder)).add(kind, size)
    usage.runs = sorted(runs.values(), key=lambda r: (-r.bytes, r.run))
    return usage


def disk_usage(store: Store, project: str | None = None) -> StoreUsage:
    """The bytes ``store`` holds, per project, per run and per kind; largest first.

    One recursive listing with sizes: of the whole store, or of ``project``. No file is read.

    Args:
        store: the store to account for.
        project: only this project.

    Raises:
        ProjectNotFoundError: ``project`` is not in the store (the message lists its projects).

    Example:
        >>> from lightning_tracker import TrackerLogger
        >>> logger = TrackerLogger("memory://doc-du", name="p", version="r1", tensorboard=False)
        >>> logger.log_metrics({"loss": 1.0}, step=0)
        >>> logger.finalize("success")
        >>> usage = disk_usage(Store("memory://doc-du"))
        >>> [p.project for p in usage.projects], [r.run for r in usage.projects[0].runs]
        (['p'], ['r1'])
        >>> usage.kinds["metrics"] > 0 and usage.bytes == sum(usage.projects[0].kinds.values())
        True
    """
    storage = store.storage
    usage = StoreUsage(storage.url)
    if project is not None:
        listing = storage.find(project)
        if not listing:
            names = ", ".join(store.projects()) or "none"
            raise ProjectNotFoundError(
                f"no project {project!r} in {storage.url}; its projects: {names} (or leave out -p for all of them)"
            )
        usage.projects = [_project_usage(project, listing)]
        return usage
    per_project: dict[str, dict[str, int]] = {}
    for path, size in storage.find().items():
        folder, _, rest = path.partition("/")
        if not rest or is_private(folder):
            usage.outside_bytes += size
            usage.outside_files += 1
        else:
            per_project.setdefault(folder, {})[rest] = size
    usage.projects = sorted(
        (_project_usage(name, listing) for name, listing in per_project.items()), key=lambda p: (-p.bytes, p.project)
    )
    return usage
