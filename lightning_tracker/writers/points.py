"""Metric points: what a logged value may be, and how it becomes a stored ``float``.

:class:`PointBuffer` stores Python floats and ints directly; everything else comes
through :func:`coerce_value` (booleans, NumPy and torch scalars, device tensors copied
without a host sync) or is skipped with a rate-limited warning, never raised into
training. Text is never parsed as a number.
"""

from __future__ import annotations

import logging
import math
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["PointBuffer", "Warner", "coerce_step", "coerce_value", "storable", "to_float"]

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
    except Exception:  # noqa: BLE001 - any failure to read the value is recorded as NaN
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


class PointBuffer:
    """Metric points between the caller's thread, which appends to memory only, and the flusher.

    Args:
        warn: a :class:`Warner`, for values and steps that cannot be stored.

    Example:
        >>> import logging
        >>> points = PointBuffer(Warner(logging.getLogger("doc")))
        >>> points.add({"loss": 0.5, "acc": True}, step=None)
        >>> points.add({"loss": 0.4}, step=7)
        >>> [(key, step, value) for key, step, _, value in points.take()], points.next_step
        ([('loss', 0, 0.5), ('acc', 0, 1.0), ('loss', 7, 0.4)], 8)
    """

    def __init__(self, warn: Warner) -> None:
        self._points: list[tuple[Any, ...]] = []
        self._retry: list[tuple[Any, ...]] = []  # points a full disk could not take; retried first
        self._warn = warn
        self.next_step = 0  # the automatic step: one past the highest step so far

    def __len__(self) -> int:
        return len(self._points) + len(self._retry)

    def add(self, metrics: Mapping[str, Any], step: Any) -> None:
        """Appends one point per metric at ``step`` (None: the automatic step)."""
        now = time.time()
        if step is None:
            step = self.next_step
        elif type(step) is not int:
            step = coerce_step(step, self.next_step, self._warn)
        if step >= self.next_step:
            self.next_step = step + 1
        append = self._points.append
        for key, value in metrics.items():
            kind = type(value)
            if kind is float:
                append((key if type(key) is str else str(key), step, now, value))
            elif kind is int:
                append((key if type(key) is str else str(key), step, now, float(value)))
            else:
                value = coerce_value(key, value, self._warn)
                if value is not None:
                    append((str(key), step, now, value))

    def extend(self, points: Iterable[tuple[str, int, float, float]]) -> None:
        """Appends points that are already ``(key, step, time, float)``."""
        self._points.extend(points)

    def take(self) -> list[tuple[Any, ...]]:
        """Everything buffered (points kept for a retry first), device scalars read as floats."""
        n = len(self._points)
        batch = self._retry + self._points[:n]
        del self._points[:n]
        self._retry = []
        if any(type(p[3]) is not float for p in batch):
            batch = [p if type(p[3]) is float else (p[0], p[1], p[2], to_float(p[3])) for p in batch]
        return batch

    def write(
        self, batch: list[tuple[Any, ...]], write: Callable[[list[tuple[Any, ...]]], Any], where: str
    ) -> list[tuple[Any, ...]]:
        """Calls ``write(batch)``; returns the points written.

        A disk error keeps the batch for the next flush; points the columnar format cannot
        hold are skipped with a warning and the rest written.
        """
        try:
            write(batch)
            return batch
        except OSError as err:
            self._retry = batch + self._retry
            self._warn("write", "could not write metrics to %s (%s); %d points kept in memory "
                       "and retried at the next flush", where, err, len(self._retry))  # fmt: skip
            return []
        except Exception:  # a point the columnar format cannot hold (re-raised if none is at fault)
            good = [p for p in batch if storable(p)]
            for key, step, _, value in (p for p in batch if not storable(p)):
                self._warn(f"bad:{key!r}", "metric %r at step %r with value %r cannot be stored; skipped",
                           key, step, value)  # fmt: skip
            if len(good) == len(batch):
                raise
            return self.write(good, write, where) if good else []
