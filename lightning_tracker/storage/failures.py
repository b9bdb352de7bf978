"""What a backend's own failure means: one of our error types, and one line naming the store, the cause and the fix.

Backends fail in their own words (botocore's ``NoCredentialsError``, google-auth's
``DefaultCredentialsError``, azure-core's ``ClientAuthenticationError``, a plain
``ConnectionRefusedError``), wrapped at different depths. The chain of causes is read by
class name, so no backend has to be imported to recognise its errors. The command line
and the read API (:class:`~lightning_tracker.read.store.Store`) both ask here, so a store
without credentials reads the same one line in a terminal and in a notebook.
"""

from __future__ import annotations

from collections.abc import Iterator

from lightning_tracker.exceptions import StorageError, StoreUnreachableError, TrackerError
from lightning_tracker.storage.registry import protocol_family

__all__ = ["OPTIONS", "as_tracker_error", "describe", "recognised"]

# where fsspec's options go, said once for the command line and for Python alike
OPTIONS = "the storage options (--storage-options, or storage_options= in Python)"

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


def recognised(exc: BaseException) -> bool:
    """Whether ``exc`` is a store's failure :func:`describe` knows (credentials, bucket, access, reachability).

    Example:
        >>> recognised(ConnectionRefusedError(111, "Connection refused")), recognised(KeyError("lr"))
        (True, False)
    """
    names = _NO_CREDENTIALS + _NO_BUCKET + _DENIED + _UNREACHABLE
    return isinstance(exc, PermissionError) or any(_said(e, names) for e in _chain(exc))


def as_tracker_error(exc: BaseException, store: str, scheme: str, *, unknown_fix: str | None = None) -> TrackerError:
    """``exc``, a backend's own failure while reading ``store``, as one of our types with one line.

    A server that cannot be reached is :class:`StoreUnreachableError` (transient: run the
    command again); every other failure (no credentials, access denied, no bucket) is a
    :class:`StorageError`. Our own errors are returned as they are. ``unknown_fix`` is
    what :func:`describe` advises for a failure it does not recognise.

    Example:
        >>> err = as_tracker_error(ConnectionRefusedError(111, "Connection refused"), "s3://b/runs", "s3")
        >>> type(err).__name__
        'StoreUnreachableError'
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
    exc: BaseException,
    store: str,
    scheme: str,
    unknown_fix: str = "rerun with --debug for the traceback",
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
            f"{family.credentials_env}, or pass '{family.credentials_options}' in {OPTIONS}"
            if family
            else f"pass credentials in {OPTIONS} or $LIGHTNING_TRACKER_STORAGE_OPTIONS"
        )
        return f"no credentials for {store} ({said}); {fix}"
    if any(_said(e, _NO_BUCKET) for e in errors):
        return f"the bucket or container of {store} does not exist ({said}); create the bucket, or check the URL"
    if any(_said(e, _DENIED) for e in errors) or isinstance(exc, PermissionError):
        where = "the folder" if scheme == "file" else "the credentials"
        return f"access to {store} denied ({said}); check the permissions of {where}"
    if any(_said(e, _UNREACHABLE) for e in errors):
        return (
            f"cannot reach the server of {store} ({said}); check endpoint_url in {OPTIONS} "
            "(or $AWS_ENDPOINT_URL), the network, and that the server is running"
        )
    return f"cannot read {store} ({said}); {unknown_fix}"
