"""A storage failure as one line: which store, what went wrong, and the fix.

Backends fail in their own words (botocore's ``NoCredentialsError``, google-auth's
``DefaultCredentialsError``, azure-core's ``ClientAuthenticationError``, a plain
``ConnectionRefusedError``), wrapped at different depths. The chain of causes is read by
class name, so no backend has to be imported to recognise its errors.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["describe"]

_FIX_CREDENTIALS = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass "
          "--storage-options '{\"key\": \"...\", \"secret\": \"...\"}'",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or pass "
          "--storage-options '{\"token\": \"/path/key.json\"}'",
    "az": "set AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY), "
          "or pass --storage-options '{\"account_name\": \"...\", \"account_key\": \"...\"}'",
}  # fmt: skip
_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfs": "az", "abfss": "az"}

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


def describe(exc: BaseException, store: str, scheme: str) -> str:
    """One line on a failure while reading ``store``: the cause and how to fix it.

    Example:
        >>> describe(ConnectionRefusedError(111, "Connection refused"), "s3://b/runs", "s3")  # doctest: +ELLIPSIS
        'cannot reach the server of s3://b/runs (ConnectionRefusedError: ...); check endpoint_url ...'
        >>> describe(PermissionError(13, "Permission denied"), "/data/runs", "file")  # doctest: +ELLIPSIS
        'access to /data/runs denied (PermissionError: ...); check the permissions of the folder'
    """
    kind = _SCHEMES.get(scheme, scheme)
    errors = list(_chain(exc))
    cause = next((e for e in reversed(errors) if str(e)), exc)
    said = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}".rstrip(": ")
    if any(_said(e, _NO_CREDENTIALS) for e in errors):
        fix = _FIX_CREDENTIALS.get(kind, "pass credentials in --storage-options or $LIGHTNING_TRACKER_STORAGE_OPTIONS")
        return f"no credentials for {store} ({said}); {fix}"
    if any(_said(e, _NO_BUCKET) for e in errors):
        return f"the bucket or container of {store} does not exist ({said}); check the URL, or create it"
    if any(_said(e, _DENIED) for e in errors) or isinstance(exc, PermissionError):
        where = "the folder" if kind == "file" else "the credentials"
        return f"access to {store} denied ({said}); check the permissions of {where}"
    if any(_said(e, _UNREACHABLE) for e in errors):
        return (
            f"cannot reach the server of {store} ({said}); check endpoint_url in --storage-options "
            "(or $AWS_ENDPOINT_URL), the network, and that the server is running"
        )
    return f"cannot read {store} ({said}); rerun with --debug for the traceback"
