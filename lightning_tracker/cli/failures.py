"""What a failure means to the command line: its exit status, and one line for a store's failure.

:data:`EXIT_STATUSES` maps each error type to the status the command exits with
(:func:`exit_status`). A store's own failure becomes one of our types with
:func:`as_tracker_error`, and one line with :func:`describe`: which store, what went wrong,
and the fix.

Backends fail in their own words (botocore's ``NoCredentialsError``, google-auth's
``DefaultCredentialsError``, azure-core's ``ClientAuthenticationError``, a plain
``ConnectionRefusedError``), wrapped at different depths. The chain of causes is read by
class name, so no backend has to be imported to recognise its errors.
"""

from __future__ import annotations

from collections.abc import Iterator

from lightning_tracker.exceptions import (
    InvalidArgumentError,
    MissingDependencyError,
    NotFoundError,
    NothingMatchedError,
    ObjectMissingError,
    StorageError,
    StoreUnreachableError,
    TrackerError,
    TransientStoreError,
)
from lightning_tracker.storage import protocol_family

__all__ = ["EXIT_STATUSES", "EXIT_STATUS_HELP", "as_tracker_error", "describe", "exit_status"]

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

_NO_CREDENTIALS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "DefaultCredentialsError",
    "ClientAuthenticationError",
    "CredentialRetrievalError",
)
_DENIED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "AuthorizationFailure")
_UNREACHABLE = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionRefusedError",
    "ConnectionError",
    "ClientConnectorError",
    "ServiceRequestError",
    "ReadTimeoutError",
    "TimeoutError",
    "gaierror",
    "NewConnectionError",
    "ServerTimeoutError",
)
_NO_BUCKET = ("NoSuchBucket", "ContainerNotFound", "BucketNotFound")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        err = stack.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        yield err
        stack += [e for e in (err.__cause__, err.__context__) if e is not None]
        stack += [e for e in getattr(err, "exceptions", ()) if isinstance(e, BaseException)]


def _said(err: BaseException, names: tuple[str, ...]) -> bool:
    text = f"{type(err).__name__} {err}"
    return type(err).__name__ in names or any(n in text for n in names)


def exit_status(exc: BaseException) -> int:
    """The status the command exits with after ``exc`` (see :data:`EXIT_STATUSES`).

    Example:
        >>> from lightning_tracker.exceptions import AmbiguousRunError, ProjectNotFoundError, StoreChangedError
        >>> [exit_status(e("")) for e in (NothingMatchedError, AmbiguousRunError, ProjectNotFoundError)]
        [1, 2, 2]
        >>> [exit_status(e("")) for e in (StoreChangedError, StoreUnreachableError, StorageError)]
        [3, 3, 1]
    """
    return next((status for kind, status in EXIT_STATUSES if isinstance(exc, kind)), 1)


def as_tracker_error(exc: BaseException, store: str, scheme: str, *, unknown_fix: str | None = None) -> TrackerError:
    """``exc``, a backend's own failure while reading ``store``, as one of our types with one line.

    A server that cannot be reached is :class:`StoreUnreachableError` (transient: run the
    command again); every other failure (no credentials, access denied, no bucket) is a
    :class:`StorageError`. Our own errors are returned as they are. ``unknown_fix`` is
    what :func:`describe` advises for a failure it does not recognise.

    Example:
        >>> err = as_tracker_error(ConnectionRefusedError(111, "Connection refused"), "s3://b/runs", "s3")
        >>> type(err).__name__, exit_status(err)
        ('StoreUnreachableError', 3)
    """
    if isinstance(exc, TrackerError):
        return exc
    errors = list(_chain(exc))
    # describe() names the first that applies: credentials, bucket, access, then reachability
    refused = any(_said(e, _NO_CREDENTIALS + _NO_BUCKET + _DENIED) for e in errors) or isinstance(exc, PermissionError)
    unreachable = not refused and any(_said(e, _UNREACHABLE) for e in errors)
    message = describe(exc, store, scheme, **({"unknown_fix": unknown_fix} if unknown_fix else {}))
    return (StoreUnreachableError if unreachable else StorageError)(message)


def describe(
    exc: BaseException, store: str, scheme: str, unknown_fix: str = "rerun with --debug for the traceback"
) -> str:
    """One line on a failure while reading ``store``: the cause and how to fix it (``unknown_fix`` when not known).

    Example:
        >>> describe(ConnectionRefusedError(111, "Connection refused"), "s3://b/runs", "s3")  # doctest: +ELLIPSIS
        'cannot reach the server of s3://b/runs (ConnectionRefusedError: ...); check endpoint_url ...'
        >>> describe(PermissionError(13, "Permission denied"), "/data/runs", "file")  # doctest: +ELLIPSIS
        'access to /data/runs denied (PermissionError: ...); check the permissions of the folder'
    """
    family = protocol_family(scheme)
    errors = list(_chain(exc))
    cause = next((e for e in reversed(errors) if str(e)), exc)
    said = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}".rstrip(": ")
    if any(_said(e, _NO_CREDENTIALS) for e in errors):
        fix = (
            f"{family.credentials_env}, or pass --storage-options '{family.credentials_options}'"
            if family
            else "pass credentials in --storage-options or $LIGHTNING_TRACKER_STORAGE_OPTIONS"
        )
        return f"no credentials for {store} ({said}); {fix}"
    if any(_said(e, _NO_BUCKET) for e in errors):
        return f"the bucket or container of {store} does not exist ({said}); create the bucket, or check the URL"
    if any(_said(e, _DENIED) for e in errors) or isinstance(exc, PermissionError):
        where = "the folder" if scheme == "file" else "the credentials"
        return f"access to {store} denied ({said}); check the permissions of {where}"
    if any(_said(e, _UNREACHABLE) for e in errors):
        return (
            f"cannot reach the server of {store} ({said}); check endpoint_url in --storage-options "
            "(or $AWS_ENDPOINT_URL), the network, and that the server is running"
        )
    return f"cannot read {store} ({said}); {unknown_fix}"
