"""Metric points: what a logged value may be, and how it becomes a stored ``float``.

``RunWriter.log_metrics`` stores Python floats and ints directly; everything else comes
through :func:`coerce_value` (booleans, NumPy and torch scalars, device tensors copied
without a host sync) or is skipped with a rate-limited warning, never raised into
training. Text is never parsed as a number.
"""

from __future__ import annotations

import logging
import math
import operator
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Warner", "coerce_step", "coerce_value", "storable", "to_float"]

Warn = Callable[..., None]  # Warner: (key, message, *args)


class Warner:
    """Logs a warning once per key, then at most once a minute.

    Example:
        >>> import logging
        >>> warn = Warner(logging.getLogger("doc"))
        >>> warn("k", "first %s", 1)  # logged
        >>> warn("k", "again %s", 2)  # within a minute of the first: dropped
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._last: dict[str, float] = {}

    def __call__(self, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= 60.0:
            self._last[key] = now
            self._log.warning(msg, *args)


def coerce_step(step: Any, next_step: int, warn: Warn) -> int:
    """An integer step from NumPy or torch integers or integral floats; else ``next_step``, with a warning.

    Example:
        >>> import numpy as np
        >>> coerce_step(np.int64(7), 3, print), coerce_step(4.0, 3, print)
        (7, 4)
    """
    try:
        return operator.index(step)  # numpy and torch integers
    except TypeError:
        pass
    try:
        if float(step).is_integer():
            return int(step)
    except (TypeError, ValueError, OverflowError):
        pass
    warn(f"step:{type(step).__name__}", "step=%r is not an integer; using the next step %d instead", step, next_step)
    return next_step


def coerce_value(key: Any, value: Any, warn: Warn) -> Any:
    """A float for a loggable value, a queued device scalar (converted later by :func:`to_float`), or None.

    Example:
        >>> coerce_value("acc", True, print), coerce_value("loss", "0.5", lambda *a: None)
        (1.0, None)
    """
    if isinstance(value, bool):
        return float(value)
    numel = getattr(value, "numel", None)
    if numel is not None and hasattr(value, "detach"):  # a torch tensor
        if value.numel() != 1:
            warn(f"shape:{key}", "metric %r is a tensor of shape %s; log a scalar (for example .mean()). "
                 "Value skipped.", key, tuple(value.shape))  # fmt: skip
            return None
        if value.device.type == "cpu":
            return float(value.item())
        # an asynchronous device copy (no host sync here); the writer thread converts it
        return value.detach().reshape(()).clone()
    try:
        if isinstance(value, (str, bytes, bytearray)):
            raise TypeError("text is not a number")  # "inf" or "1e3" would parse: never guess
        return float(value)
    except (TypeError, ValueError):
        warn(f"type:{key}", "metric %r has value %r of type %s, which is not a number; log numbers only "
             "(log text as a hyperparameter). Value skipped.", key, value, type(value).__name__)  # fmt: skip
        return None


def to_float(value: Any) -> float:
    """A device scalar's value, read on the writer thread (NaN if it cannot be read)."""
    try:
        return float(value)  # a device scalar: the copy was queued on the training thread
    except Exception:  # noqa: BLE001
        return math.nan


def storable(point: tuple[Any, ...]) -> bool:
    """Whether a ``(key, step, time, value)`` point fits the Parquet schema.

    Example:
        >>> storable(("loss", 3, 0.0, 1.5)), storable(("\\ud800", 3, 0.0, 1.5)), storable(("x", 2**64, 0.0, 1.0))
        (True, False, False)
    """
    key, step, t, value = point
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return type(step) is int and -(2**63) <= step < 2**63 and type(value) is float and type(t) is float
