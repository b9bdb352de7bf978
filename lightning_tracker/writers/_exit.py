"""Closing runs when the interpreter exits: ``finished``, or ``failed`` after an uncaught exception."""

from __future__ import annotations

import atexit
import logging
import sys
import weakref
from typing import Any, Protocol

__all__ = ["close_at_exit"]

log = logging.getLogger(__name__)

_uncaught: list[BaseException] = []


class _Closable(Protocol):
    @property
    def prefix(self) -> str: ...
    @property
    def is_open(self) -> bool: ...

    def close(self, status: str = ..., timeout: float = ...) -> Any: ...


def close_at_exit(writer: _Closable) -> None:
    """Closes ``writer`` at exit if it is still open (without keeping it alive until then)."""
    _install_excepthook()
    atexit.register(_close_at_exit, weakref.ref(writer))


def _install_excepthook() -> None:
    previous = sys.excepthook
    if getattr(previous, "_lightning_tracker", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        _uncaught.append(value)
        previous(kind, value, tb)

    hook._lightning_tracker = True  # type: ignore[attr-defined]  # a marker on a function object
    sys.excepthook = hook


def _close_at_exit(ref: weakref.ref[_Closable]) -> None:
    writer = ref()
    if writer is not None and writer.is_open:
        try:
            writer.close("failed" if _uncaught else "finished", timeout=30.0)
        except Exception:  # never raise during interpreter exit
            log.exception("lightning_tracker: closing run %s at exit failed", writer.prefix)
