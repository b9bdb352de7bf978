"""Storage URLs as text: which backend, where, and the credentials kept out of print.

Pure string handling (no fsspec), so modules that only need to print or redact a URL
(hyperparameters, the environment record) import nothing heavy.

Credentials never leave memory: user info embedded in a URL (``s3://key:secret@bucket``)
is moved into the storage options under the name the protocol's fsspec backend expects,
and only the redacted form is ever printed or written to disk.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple
from urllib.parse import unquote

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.secrets import redact_text
from lightning_tracker.storage.registry import LOCAL_PROTOCOLS, SCHEME, is_registered, protocol_family

__all__ = ["ParsedUrl", "parse_url", "redact_url"]

_URL_RE = re.compile(rf"^(?P<scheme>{SCHEME})://(?P<rest>.*)$", re.DOTALL)
_SCHEME_RE = re.compile(SCHEME)
_CHAIN_RE = re.compile(rf"^{SCHEME}::|::{SCHEME}://")  # fsspec's chained URLs: simplecache::s3://…


class ParsedUrl(NamedTuple):
    """A storage location taken apart by :func:`parse_url`."""

    protocol: str
    """``"file"`` for a local folder, else the URL scheme (``"s3"``, ``"memory"`` …)."""
    root: str
    """The absolute folder for local; ``bucket/path`` (no protocol, no trailing ``/``) otherwise."""
    url: str
    """The printable form: credentials removed; the absolute folder for local."""
    credentials: dict[str, str]
    """Storage options taken from the URL's ``user:password@`` part (empty when none)."""

    @property
    def is_local(self) -> bool:
        """Whether the location is a folder on this machine."""
        return self.protocol == "file"


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """Splits ``scheme://userinfo@host/path`` into (scheme, userinfo, host/path).

    Secrets often hold an unencoded ``/`` (AWS keys do), so the user info runs to the
    last ``@`` before the path when the text before that ``@`` has a ``user:`` part.
    """
    match = _URL_RE.match(url)
    if match is None:
        return None
    scheme, rest = match["scheme"], match["rest"]
    host = rest.split("/", 1)[0]
    if "@" in host:
        info, _, tail = host.rpartition("@")
        return scheme, info, tail + rest[len(host) :]
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        info, _, tail = rest.rpartition("@")
        if ":" in info.split("/", 1)[0]:
            return scheme, info, tail
    return None


def redact_url(url: str) -> str:
    """Returns ``url`` without credentials, safe to print and store.

    Every form fsspec takes is covered: the ``user:password@`` part of each link of a
    chained URL (``simplecache::s3://…``), a URL with white space around it, and the
    secret-shaped parts anywhere else (a signed URL's ``sig=``, a webhook's path:
    :func:`~lightning_tracker.format.secrets.redact_text`).

    Example:
        >>> redact_url("s3://AKIA:hunter2@bucket/exp")
        's3://bucket/exp'
        >>> redact_url("s3://AKIA:abc/def+ghi@bucket/exp")
        's3://bucket/exp'
        >>> redact_url("simplecache::s3://KEY:SECRET@bucket/exp")
        'simplecache::s3://bucket/exp'
        >>> redact_url(" s3://KEY:SECRET@bucket/exp")
        ' s3://bucket/exp'
        >>> redact_url("./runs")
        './runs'
    """
    return redact_text("::".join(_redact_link(link) for link in url.split("::")))


def _redact_link(link: str) -> str:
    body = link.lstrip()
    parts = _userinfo(body)
    return link if parts is None else f"{link[: len(link) - len(body)]}{parts[0]}://{parts[2]}"


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    parts = _userinfo(url)
    if parts is None:
        return url, {}
    scheme, info, tail = parts
    user, _, password = info.partition(":")
    family = protocol_family(scheme)
    names = family.url_credentials if family else ("username", "password")
    creds = {names[0]: unquote(user)}
    if password:
        creds[names[1]] = unquote(password)
    return f"{scheme}://{tail}", creds


def parse_url(url: str | os.PathLike[str]) -> ParsedUrl:
    """Takes a ``save_dir`` (a local path or any fsspec URL) apart.

    Args:
        url: a local folder (``"./runs"``, ``"file:///data/runs"``, ``"local://runs"``) or
            a URL such as ``"s3://bucket/exp"``, optionally with ``user:password@``.

    Returns:
        The protocol, root, printable URL and the credentials found in the URL.

    Raises:
        InvalidArgumentError: ``url`` is empty or neither a string nor a path.

    Example:
        >>> parsed = parse_url("s3://AKIA:abc%2Bd/ef@bucket/exp/")
        >>> parsed.protocol, parsed.root, parsed.url
        ('s3', 'bucket/exp', 's3://bucket/exp')
        >>> parsed.credentials
        {'key': 'AKIA', 'secret': 'abc+d/ef'}
        >>> parse_url("az://acct:k3y@container/runs").credentials
        {'account_name': 'acct', 'account_key': 'k3y'}
        >>> parse_url("https://me:pw@example.com/runs").credentials
        {'username': 'me', 'password': 'pw'}
        >>> parsed = parse_url("file:///data/runs")
        >>> parsed.protocol, parsed.root, parsed.is_local
        ('file', '/data/runs', True)
        >>> parse_url("")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: save_dir='' is not a folder or URL; pass a path such as ...
    """
    text = os.fspath(url) if isinstance(url, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text:
        raise InvalidArgumentError(
            f"save_dir={url!r} is not a folder or URL; pass a path such as './runs' "
            "or a URL such as 's3://bucket/experiments'."
        )
    _check_url(text)
    text, creds = _split_credentials(text)
    protocol, sep, rest = text.partition("://")
    if not sep or protocol in LOCAL_PROTOCOLS:
        root = os.path.abspath(rest if sep else text)
        return ParsedUrl("file", root, root, creds)
    root = rest.rstrip("/")
    return ParsedUrl(protocol, root, f"{protocol}://{root}", creds)


def _check_url(text: str) -> None:
    """Refuses, at construction, a URL that would otherwise read as a store that is down.

    White space around a URL, a chained URL (``simplecache::s3://…``), a scheme that is not
    one (``" s3"``) or one in capitals (``S3://``, which no backend opens) are each named
    with the fix; the message shows the URL redacted.
    """
    if "://" not in text:
        return
    shown = redact_url(text)
    if text != text.strip():
        raise InvalidArgumentError(
            f"save_dir={shown!r} starts or ends with white space; pass {redact_url(text.strip())!r}"
        )
    if _CHAIN_RE.search(text):
        raise InvalidArgumentError(
            f"save_dir={shown!r} is a chained URL; a store is one location (runs are written to a local "
            f"spool first, so no cache is needed): pass {redact_url(text.rsplit('::', 1)[-1])!r}"
        )
    scheme, _, rest = text.partition("://")
    if not _SCHEME_RE.fullmatch(scheme):
        raise InvalidArgumentError(
            f"save_dir={shown!r} has {scheme!r} where a URL scheme goes (letters, digits, '+', '-', '.'); "
            "pass a local folder or a URL such as 's3://bucket/experiments'"
        )
    if scheme != scheme.lower() and not is_registered(scheme):
        raise InvalidArgumentError(
            f"save_dir={shown!r} has the scheme {scheme!r}; URL schemes are lower case: "
            f"pass {redact_url(f'{scheme.lower()}://{rest}')!r}"
        )
