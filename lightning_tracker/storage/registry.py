"""Which backend opens each protocol, and what each protocol family needs.

Two tables, one owner:

- **Backends.** ``Storage(url)`` asks :func:`storage_class` for the class that opens the
  URL's protocol. A backend registers itself for its protocols with
  :func:`register_storage`, as a class or as a ``"module:Class"`` path imported on first
  use. The built-ins are named here by path (as fsspec's ``known_implementations`` does),
  so the base never imports its subclasses and importing the package never imports
  fsspec. A protocol no backend registered goes to the fsspec backend, which opens every
  protocol fsspec knows and refuses the others with the fix.
- **Families.** The names one service goes by (``s3``/``s3a``, ``gs``/``gcs``,
  ``az``/``abfs``/``abfss``), each with the extra to install, the package behind it, the
  options that ``user:password@`` in a URL stands for, and where credentials come from.
  The URL parser, the fsspec backend and the CLI's failure hints ask
  :func:`protocol_family`.

Pure tables and strings: no fsspec here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lightning_tracker.exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from lightning_tracker.storage.base import Storage

__all__ = [
    "LOCAL_PROTOCOLS",
    "ProtocolFamily",
    "install_hint",
    "is_registered",
    "protocol_families",
    "protocol_family",
    "register_storage",
    "storage_class",
]


@dataclass(frozen=True)
class ProtocolFamily:
    """The protocols one service goes by, and what using it needs."""

    name: str
    """The family's own name: its first protocol (``"s3"``)."""
    protocols: tuple[str, ...]
    """Every protocol of the family (``("s3", "s3a")``)."""
    extra: str
    """The pip extra of lightning-tracker that installs the package (``"s3"``)."""
    package: str
    """The fsspec implementation behind the protocols (``"s3fs"``)."""
    url_credentials: tuple[str, str]
    """The storage options that ``user`` and ``password`` in a URL's ``user:password@`` fill."""
    credentials_env: str
    """Where the package finds credentials by itself, as an instruction."""
    credentials_options: str
    """The storage options that give credentials explicitly, as JSON."""

    @property
    def install(self) -> str:
        """The command that installs the package (``pip install s3fs``, what the ``[s3]`` extra adds).

        The package itself, not the extra: it installs the same wherever lightning-tracker
        came from (a clone, a wheel), and lightning-tracker is not on PyPI.
        """
        return f"pip install {self.package}"


_FAMILIES = (
    ProtocolFamily("s3", ("s3", "s3a"), "s3", "s3fs", ("key", "secret"),
                   "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
                   '{"key": "...", "secret": "..."}'),
    ProtocolFamily("gs", ("gs", "gcs"), "gcs", "gcsfs", ("username", "password"),
                   "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file",
                   '{"token": "/path/key.json"}'),
    ProtocolFamily("az", ("az", "abfs", "abfss"), "azure", "adlfs", ("account_name", "account_key"),
                   "set AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY)",
                   '{"account_name": "...", "account_key": "..."}'),
)  # fmt: skip
_FAMILY_OF = {protocol: family for family in _FAMILIES for protocol in family.protocols}

# protocol -> the backend, or the "module:Class" path it is imported from on first use
_BACKENDS: dict[str, type[Storage] | str] = {"file": "lightning_tracker.storage.local:LocalStorage"}
# opens any protocol no backend registered, and refuses those fsspec does not know
_DEFAULT_BACKEND = "lightning_tracker.storage.remote:FsspecStorage"
SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*"  # a URL scheme (RFC 3986): what a protocol may be
_PROTOCOL_RE = re.compile(SCHEME)
# the protocols of a folder on this machine: parse_url gives every such location "file"
LOCAL_PROTOCOLS = ("file", "local")


def protocol_families() -> tuple[ProtocolFamily, ...]:
    """Every protocol family lightning-tracker knows, in the order the docs list them.

    Example:
        >>> [f.name for f in protocol_families()]
        ['s3', 'gs', 'az']
    """
    return _FAMILIES


def protocol_family(protocol: str) -> ProtocolFamily | None:
    """The family of ``protocol`` (``"s3a"`` is in ``"s3"``'s), or ``None`` for a lone protocol.

    Example:
        >>> protocol_family("abfss").name, protocol_family("gcs").install
        ('az', 'pip install gcsfs')
        >>> protocol_family("memory") is None
        True
    """
    return _FAMILY_OF.get(protocol)


def install_hint(protocol: str) -> tuple[str, str]:
    """Returns the package behind ``protocol`` and the command that installs it.

    Example:
        >>> install_hint("s3a")
        ('s3fs', 'pip install s3fs')
        >>> install_hint("hf")
        ('hf', 'pip install hf')
    """
    family = protocol_family(protocol)
    return (family.package, family.install) if family else (protocol, f"pip install {protocol}")


def register_storage(protocols: str | Iterable[str], backend: type[Storage] | str, *, replace: bool = False) -> None:
    """Makes ``Storage(url)`` open URLs of ``protocols`` with ``backend``.

    A backend subclasses :class:`~lightning_tracker.storage.Storage` and implements its
    seven primitives (``read_bytes``, ``open``, ``write_bytes``, ``put_file``, ``rm``,
    ``listdir``, ``find``); ``Storage`` builds everything else the tracker needs, the
    logger and the readers included, on those. It is built as ``backend(url,
    storage_options)`` and finds the parsed URL in ``self.protocol``, ``self.root`` and
    ``self.url`` and the options in ``self.storage_options``.

    Args:
        protocols: the URL scheme, or several (``"s3"``, ``["s3", "s3a"]``).
        backend: the class, or ``"module:Class"`` to import it when a URL first needs it.
        replace: take a protocol that another backend has (a built-in one included).

    Raises:
        InvalidArgumentError: a protocol is not a URL scheme, or names a local folder, or
            another backend has it and ``replace`` is false.

    Example:
        >>> from lightning_tracker.storage import Storage, register_storage
        >>> class DictStorage(Storage):
        ...     files: dict[str, bytes] = {}
        ...
        ...     def write_bytes(self, rel, data):
        ...         self.files[f"{self.root}/{rel}"] = bytes(data)
        ...
        ...     def read_bytes(self, rel):
        ...         return self.files[f"{self.root}/{rel}"]
        >>> register_storage("dict", DictStorage)
        >>> store = Storage("dict://bucket/exp")
        >>> store.write_bytes("a.json", b"{}")
        >>> store, store.read_bytes("a.json"), DictStorage.files
        (DictStorage('dict://bucket/exp'), b'{}', {'bucket/exp/a.json': b'{}'})
    """
    names = list(protocols) if isinstance(protocols, Iterable) and not isinstance(protocols, str) else [protocols]
    for protocol in names:
        if not isinstance(protocol, str) or not _PROTOCOL_RE.fullmatch(protocol) or protocol in LOCAL_PROTOCOLS[1:]:
            raise InvalidArgumentError(
                f"protocols={protocol!r} is not a URL scheme a backend can take; pass the scheme of its URLs "
                "(letters, digits, '+', '-', '.'), such as 'dict' for 'dict://bucket/exp'"
            )
        taken = _BACKENDS.get(protocol)
        if taken is not None and _name(taken) != _name(backend) and not replace:
            raise InvalidArgumentError(
                f"protocols={protocol!r} is already opened by {_name(taken)}; pass replace=True to open it "
                f"with {_name(backend)} instead"
            )
    for protocol in names:
        _BACKENDS[protocol] = backend


def is_registered(protocol: str) -> bool:
    """Whether a backend registered ``protocol`` itself (fsspec's protocols are not listed here).

    Example:
        >>> is_registered("file"), is_registered("S3")
        (True, False)
    """
    return protocol in _BACKENDS


def storage_class(protocol: str) -> type[Storage]:
    """The backend that opens ``protocol`` (``"file"`` for a local folder), imported on first use.

    Example:
        >>> storage_class("file").__name__, storage_class("s3a").__name__
        ('LocalStorage', 'FsspecStorage')
    """
    entry = _BACKENDS.get(protocol, _DEFAULT_BACKEND)
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        loaded: type[Storage] = getattr(importlib.import_module(module), name)
        if protocol in _BACKENDS:
            _BACKENDS[protocol] = loaded
        return loaded
    return entry


def _name(backend: type[Storage] | str) -> str:
    return backend if isinstance(backend, str) else f"{backend.__module__}:{backend.__qualname__}"
