"""The errors lightning_tracker raises: one meaning per type.

Every error derives from :class:`TrackerError`; each also derives from the matching
built-in (``ValueError``, ``LookupError``, ``FileNotFoundError``, ``OSError``,
``ModuleNotFoundError``) so callers can catch either::

    TrackerError
    ├── InvalidArgumentError (ValueError)          a value we cannot accept
    │   ├── NothingMatchedError                    a valid query matched nothing
    │   └── AmbiguousRunError (LookupError)        an id prefix or name names several runs
    ├── NotFoundError (LookupError)                what was asked for is not in the store
    │   ├── RunNotFoundError (FileNotFoundError)   no run has that id, id prefix or name
    │   ├── ProjectNotFoundError                   no project of that name
    │   ├── CheckpointNotFoundError                no checkpoint of that alias or name
    │   └── MediaNotFoundError                     nothing logged for that key, step and index
    ├── RunExistsError (FileExistsError)           a run that must be new exists
    ├── StorageError (OSError)                     the store failed; trying again will not help
    │   ├── ObjectMissingError (FileNotFoundError) an object the run's index names is gone
    │   └── CheckpointIntegrityError               a checkpoint's bytes differ from its manifest
    ├── TransientStoreError (OSError)              the store failed; trying again may help
    │   ├── StoreChangedError                      the store kept changing while being read
    │   └── StoreUnreachableError (ConnectionError) the store's server did not answer
    └── MissingDependencyError (ModuleNotFoundError)

A question about what is in the store (a run, a project, a checkpoint, a media item)
that has no answer is a :class:`NotFoundError`, one subclass per thing asked for; an object
that the store's own index names but that is gone is the store's failure
(:class:`ObjectMissingError`, a :class:`StorageError`), not the caller's.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRunError",
    "CheckpointIntegrityError",
    "CheckpointNotFoundError",
    "InvalidArgumentError",
    "MediaNotFoundError",
    "MissingDependencyError",
    "NotFoundError",
    "NothingMatchedError",
    "ObjectMissingError",
    "ProjectNotFoundError",
    "RunExistsError",
    "RunNotFoundError",
    "StorageError",
    "StoreChangedError",
    "StoreUnreachableError",
    "TrackerError",
    "TransientStoreError",
]


class TrackerError(Exception):
    """Base class of every error raised by lightning_tracker."""


class InvalidArgumentError(TrackerError, ValueError):
    """An argument has a value we cannot accept; the message names it and the fix."""


class NothingMatchedError(InvalidArgumentError):
    """A valid query (a pattern, a filter) matched nothing; the message says what there is."""


class AmbiguousRunError(InvalidArgumentError, LookupError):
    """An id prefix or a name matches several runs; the message names them (give more of the id)."""


class NotFoundError(TrackerError, LookupError):
    """What was asked for (a run, a project, a checkpoint, a media item) is not in the store."""


class RunNotFoundError(NotFoundError, FileNotFoundError):
    """No run in the store has the id, id prefix or name asked for."""


class ProjectNotFoundError(NotFoundError):
    """The project asked for is not in the store; the message lists the projects there are."""


class CheckpointNotFoundError(NotFoundError):
    """A run has no checkpoint with the alias, name or file name asked for."""


class MediaNotFoundError(NotFoundError):
    """A run logged nothing for the media key, step and index asked for."""


class RunExistsError(TrackerError, FileExistsError):
    """A run that must be new (``TrackerLogger(resume="never")``) already exists in the store."""


class StorageError(TrackerError, OSError):
    """The storage backend failed in a way that trying again will not mend (damaged data, a refusal)."""


class ObjectMissingError(StorageError, FileNotFoundError):
    """An object that a run's manifest or media index names is missing from the store (deleted since)."""


class CheckpointIntegrityError(StorageError):
    """A stored checkpoint's size or sha256 differs from its manifest entry: it was not loaded."""


class TransientStoreError(TrackerError, OSError):
    """The store failed in a way that may pass: the same call, made again later, can succeed."""


class StoreChangedError(TransientStoreError):
    """A folder kept changing between listing and reading (compactions racing the read); read again."""


class StoreUnreachableError(TransientStoreError, ConnectionError):
    """The store's server could not be reached or did not answer in time."""


class MissingDependencyError(TrackerError, ModuleNotFoundError):
    """An optional package needed for the requested feature is not installed."""
