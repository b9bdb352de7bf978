"""What a failure means to the command line: its exit status.

:data:`EXIT_STATUSES` maps each error type to the status the command exits with
(:func:`exit_status`). A store's own failure becomes one of our types, with one line
naming the store, the cause and the fix, in :mod:`lightning_tracker.storage.failures`
(:func:`as_tracker_error`, :func:`describe`), which the read API asks too.
"""

from __future__ import annotations

from lightning_tracker.exceptions import (
    InvalidArgumentError,
    MissingDependencyError,
    NotFoundError,
    NothingMatchedError,
    ObjectMissingError,
    TrackerError,
    TransientStoreError,
)

__all__ = ["EXIT_STATUSES", "EXIT_STATUS_HELP", "exit_status"]

# the first type the error is an instance of decides: a subclass comes before its base
EXIT_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (NothingMatchedError, 1),  # a valid query that matched nothing
    (TransientStoreError, 3),  # the store changed while read, or did not answer: run the command again
    (ObjectMissingError, 1),  # the store lost an object its index names
    (InvalidArgumentError, 2),  # a bad argument, an id prefix naming several runs
    (NotFoundError, 2),  # no such run, project, checkpoint or media key
    (MissingDependencyError, 2),  # the command needs an extra: the message says which
    (TrackerError, 1),  # the store failed: damaged data, no credentials, access denied
)
EXIT_STATUS_HELP = (
    "exit statuses: 0 done; 1 nothing matched, or the store failed (damaged data, no credentials, "
    "access denied); 2 usage error (a bad argument, no such run or project); 3 the store changed while "
    "being read or could not be reached: run the command again; 130 interrupted"
)


def exit_status(exc: BaseException) -> int:
    """The status the command exits with after ``exc`` (see :data:`EXIT_STATUSES`).

    Example:
        >>> from lightning_tracker.exceptions import AmbiguousRunError, ProjectNotFoundError, StoreChangedError
        >>> from lightning_tracker.exceptions import StorageError, StoreUnreachableError
        >>> [exit_status(e("")) for e in (NothingMatchedError, AmbiguousRunError, ProjectNotFoundError)]
        [1, 2, 2]
        >>> [exit_status(e("")) for e in (StoreChangedError, StoreUnreachableError, StorageError)]
        [3, 3, 1]
    """
    return next((status for kind, status in EXIT_STATUSES if isinstance(exc, kind)), 1)
