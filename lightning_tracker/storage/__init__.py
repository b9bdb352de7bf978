"""Where runs are stored: a local folder or any fsspec URL, behind a few primitives.

``Storage(url, storage_options)`` is the entry point; :mod:`.base` defines the
primitives, :mod:`.local` and :mod:`.remote` implement them, :mod:`.registry` says which
backend opens each protocol (:func:`register_storage` adds one) and what each protocol
family needs, :mod:`.urls` parses and redacts URLs, :mod:`.failures` says what a
backend's own failure means in one line. Importing this package does not
import fsspec: only building a storage for a URL does.
"""

from __future__ import annotations

from lightning_tracker.storage.base import Storage
from lightning_tracker.storage.local import atomic_create, atomic_write, remove_file
from lightning_tracker.storage.registry import protocol_families, protocol_family, register_storage
from lightning_tracker.storage.urls import redact_url

__all__ = [
    "Storage",
    "atomic_create",
    "atomic_write",
    "protocol_families",
    "protocol_family",
    "redact_url",
    "register_storage",
    "remove_file",
]
