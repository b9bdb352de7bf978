"""Metric points: what a logged value may be, and how it becomes a stored ``float``.

:class:`PointBuffer` stores Python floats and ints directly; everything else comes
through :func:`coerce_value` (booleans, NumPy and torch scalars, device tensors copied
without a host sync) or is skipped with a rate-limited warning, never raised into
training. Text is never parsed as a number, a complex number never loses its imaginary
part, and a finite number never becomes infinity; a step outside int64 is replaced by the
automatic step, which therefore never leaves int64 either.
"""

from __future__ import annotations

import logging
import math
import numbers
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lightning_tracker.writers.device_copies import HostCopy

__all__ = ["STEP_MAX", "STEP_MIN", "PointBuffer", "Warner", "coerce_step", "coerce_value", "storable", "to_float"]

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


_EXACT_INT = 2**1023  # ints this small convert to float without OverflowError (the fast path)
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1  # the int64 step column


def coerce_step(step: Any, next_step: int, warn: Warn) -> int:
    """An integer step from NumPy or torch integers or integral floats; else ``next_step``, with a warning.

    A step outside int64 ``[STEP_MIN, STEP_MAX]`` is replaced by ``next_step`` too: kept,
    it would push every later automatic step out of the range the format can hold.

    Example:
        >>> import numpy as np
        >>> coerce_step(np.int64(7), 3, print), coerce_step(4.0, 3, print)
        (7, 4)
        >>> coerce_step(2**64, 3, lambda *args: None), coerce_step(1e300, 3, lambda *args: None)
        (3, 3)
    """
    value: int | None
    try:
        value = operator.index(step)  # numpy and torch integers
    except Exception:  # noqa: BLE001 - not an integer type (a float, a tensor of several elements)
        try:
            value = int(step) if float(step).is_integer() else None
        except Exception:  # noqa: BLE001 - whatever cannot be read as a number is not a step
            value = None
    if value is None:
        warn(
            f"step:{type(step).__name__}", "step=%r is not an integer; using the next step %d instead", step, next_step
        )
        return next_step
    if not STEP_MIN <= value <= STEP_MAX:
        warn(
            "step:range",
            "step=%r is outside the steps the format can hold (%d to %d); using the next step %d instead",
            step,
            STEP_MIN,
            STEP_MAX,
            next_step,
        )
        return next_step
    return value


def _is_complex(value: Any) -> bool:
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return True  # complex, numpy complex scalars
    dtype = getattr(value, "dtype", None)  # numpy arrays (kind "c") and torch tensors (is_complex)
    return dtype is not None and (getattr(dtype, "kind", None) == "c" or getattr(dtype, "is_complex", False) is True)


def _to_float(value: Any) -> float:
    """``float(value)``, or ValueError when it would not be the value (a complex, a finite
    number beyond float64's range such as ``10**400`` or ``Decimal("1e400")``)."""
    if _is_complex(value):
        raise ValueError("a complex number has no single float value")
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError("text is not a number")  # "inf" or "1e3" would parse: never guess
    result = float(value)  # OverflowError for huge ints and Fractions
    if math.isinf(result) and value != result:  # a finite Decimal or longdouble overflowed
        raise OverflowError("beyond the range of float64")
    return result


def coerce_value(key: Any, value: Any, warn: Warn) -> Any:
    """A float for a loggable value, a queued device scalar (converted later by :func:`to_float`), or None.

    Never raises: a value that cannot be stored as the float it is (text, a complex number,
    a number beyond float64's range, a tensor of several elements) is skipped with one
    warning per key.

    Example:
        >>> coerce_value("acc", True, print), coerce_value("loss", "0.5", lambda *a: None)
        (1.0, None)
        >>> coerce_value("z", 1 + 2j, lambda *a: None), coerce_value("big", 10**400, lambda *a: None)
        (None, None)
    """
    try:
        if isinstance(value, bool):
            return float(value)
        if getattr(value, "numel", None) is not None and hasattr(value, "detach"):  # a torch tensor
            if value.numel() != 1:
                warn(
                    f"value:{key}",
                    "metric %r is a tensor of shape %s; log a scalar (for example .mean()). Value skipped.",
                    key,
                    tuple(value.shape),
                )
                return None
            if value.is_complex():
                raise ValueError("a complex tensor has no single float value")
            if value.device.type == "cpu":
                return _to_float(value.item())
            return _DeviceScalar(value)  # an accelerator: copied to the host behind an event
        return _to_float(value)
    except Exception as err:  # noqa: BLE001 - a metric value must never stop training
        try:
            shown = repr(value)[:200]
        except Exception:  # noqa: BLE001 - a broken __repr__
            shown = f"<{type(value).__name__}>"
        warn(
            f"value:{key}",
            "metric %r has value %s of type %s, which cannot be stored as a number (%s); "
            "log real numbers only (log text as a hyperparameter). Value skipped.",
            key,
            shown,
            type(value).__name__,
            err,
        )
        return None


class _DeviceScalar:
    """An accelerator scalar copied into pinned host memory after the work queued on the caller's
    stream (the training thread's, whichever it is); ``float()`` on the writer thread waits for it."""

    __slots__ = ("copy",)

    def __init__(self, value: Any) -> None:
        self.copy = HostCopy(value.reshape(()))

    def __float__(self) -> float:
        return float(self.copy.wait())


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
    return type(step) is int and STEP_MIN <= step <= STEP_MAX and type(value) is float and type(t) is float


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
        """Appends one point per metric at ``step`` (None: the automatic step).

        Never raises into training: a step that is not an integer the format can hold is
        replaced by the automatic step, a value that cannot be stored is skipped (each
        with a rate-limited warning).
        """
        now = time.time()
        if step is None:
            step = self.next_step
        elif type(step) is not int or not STEP_MIN <= step <= STEP_MAX:
            step = coerce_step(step, self.next_step, self._warn)
        if step >= self.next_step:
            self.next_step = step + 1 if step < STEP_MAX else STEP_MAX  # at the top it stays there
        append = self._points.append
        for key, value in metrics.items():
            kind = type(value)
            if kind is float:
                append((key if type(key) is str else str(key), step, now, value))
            elif kind is int and -_EXACT_INT <= value <= _EXACT_INT:
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
            self._warn(
                "write",
                "could not write metrics to %s (%s); %d points kept in memory and retried at the next flush",
                where,
                err,
                len(self._retry),
            )
            return []
        except Exception:  # a point the columnar format cannot hold (re-raised if none is at fault)
            good = [p for p in batch if storable(p)]
            for key, step, _, value in (p for p in batch if not storable(p)):
                self._warn(
                    f"bad:{key!r}", "metric %r at step %r with value %r cannot be stored; skipped", key, step, value
                )
            if len(good) == len(batch):
                raise
            return self.write(good, write, where) if good else []
