"""The errors lightning_tracker raises.

Every error derives from :class:`TrackerError`; most also derive from the matching
built-in (``ValueError``, ``FileNotFoundError``, ``ModuleNotFoundError``) so callers can
catch either.
"""

from __future__ import annotations

__all__ = [
    "CheckpointIntegrityError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "NothingMatchedError",
    "RunExistsError",
    "RunNotFoundError",
    "StorageError",
    "TrackerError",
]


class TrackerError(Exception):
    """Base class of every error raised by lightning_tracker."""


class InvalidArgumentError(TrackerError, ValueError):
    """An argument has a value we cannot accept; the message names it and the fix."""


class NothingMatchedError(InvalidArgumentError):
    """A valid query (a pattern, a filter) matched nothing; the message says what there is."""


class RunNotFoundError(TrackerError, FileNotFoundError):
    """A run, project or file asked for does not exist in the store."""


class RunExistsError(TrackerError, FileExistsError):
    """A run that must be new (``TrackerLogger(resume="never")``) already exists in the store."""


class StorageError(TrackerError, OSError):
    """The storage backend failed in a way we cannot retry."""


class CheckpointIntegrityError(StorageError):
    """A stored checkpoint's size or sha256 differs from its manifest entry: it was not loaded."""


class MissingDependencyError(TrackerError, ModuleNotFoundError):
    """An optional package needed for the requested feature is not installed."""
