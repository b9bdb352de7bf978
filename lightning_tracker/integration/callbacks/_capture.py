"""One captured optimizer step of ``GradientMonitor``: small result tensors, resolved off the training thread.

The training thread only queues device-to-host copies (pinned memory and an event, on any
accelerator: :class:`~lightning_tracker.writers.device_copies.HostCopy`); the run's
flusher calls :meth:`Capture.resolve`, which waits for the events and returns the
histogram columns and the norm metrics, computed here from the norms themselves:

* ``<kind>s/norm/<module>``: the L2 norm of all tensors of a module together;
* ``<kind>s/norm_total``: of all recorded tensors;
* ``parameters/update_ratio_total``: ‖Δw‖ / ‖w‖ over all weights, from the update norms.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from lightning_tracker.integration.callbacks._kernels import _HI, _LO, _MAX, _MIN, _NORM2, _NSTATS, _NUMEL, _SUM, _ZEROS
from lightning_tracker.writers.device_copies import HostCopy

__all__ = ["Capture", "Part", "norm_points"]

Point = tuple[str, int, float, float]


class Part:
    """Results of one kind on one device: small tensors, on the host once copied."""

    def __init__(
        self, kind: str, names: list[str], stats: torch.Tensor, counts: torch.Tensor, share: torch.Tensor | None
    ) -> None:
        self.kind, self.names, self.stats, self.counts, self.share = kind, names, stats, counts, share
        self.update2: torch.Tensor | None = None  # squared norms of the optimizer's update
        # which rows hold a tensor (results gathered from the ranks that computed them, where a
        # gradient may be missing); None: every row
        self.present: torch.Tensor | None = None


def _to_host(t: torch.Tensor, copies: list[HostCopy]) -> torch.Tensor:
    copy = HostCopy(t)  # asynchronous on an accelerator: the flusher waits for it
    if copy.asynchronous:
        copies.append(copy)
    return copy.host


def _module_of(tensor: str) -> str:
    return tensor.rsplit(".", 1)[0] if "." in tensor else tensor


def norm_points(
    step: int, t: float, names: list[str], kinds: list[str], norm2: np.ndarray, update2: np.ndarray
) -> list[Point]:
    """Norm metrics of one capture from per-tensor squared norms (and squared update norms).

    Example:
        >>> norm2, update2 = np.array([9.0, 16.0]), np.array([0.09, 0.16])
        >>> for point in norm_points(4, 0.0, ["a.w", "a.b"], ["parameter"] * 2, norm2, update2):
        ...     print(point)
        ('parameters/norm/a', 4, 0.0, 5.0)
        ('parameters/norm_total', 4, 0.0, 5.0)
        ('parameters/update_ratio_total', 4, 0.0, 0.1)
    """
    points: list[Point] = []
    for kind in dict.fromkeys(kinds):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        modules: dict[str, float] = {}
        for i in rows:
            modules[_module_of(names[i])] = modules.get(_module_of(names[i]), 0.0) + float(norm2[i])
        points += [(f"{kind}s/norm/{m}", step, t, float(np.sqrt(sq))) for m, sq in modules.items()]
        total = float(norm2[rows].sum())
        points.append((f"{kind}s/norm_total", step, t, float(np.sqrt(total))))
        update = update2[rows]
        if kind == "parameter" and total > 0 and not np.isnan(update).any():
            points.append(("parameters/update_ratio_total", step, t, float(np.sqrt(update.sum() / total))))
    return points


class Capture:
    """One captured optimizer step; resolved into table columns and metrics on the flusher thread."""

    def __init__(self, step: int, bins: int) -> None:
        self.step, self.time, self.bins = step, time.time(), bins
        self.parts: list[Part] = []
        self.events: list[HostCopy] = []  # copies still on their way to the host

    def to_host(self) -> None:
        """Queues the copies of every result to the host (no synchronisation)."""
        for part in self.parts:
            part.stats = _to_host(part.stats, self.events)
            part.counts = _to_host(part.counts, self.events)
            if part.update2 is not None:
                part.update2 = _to_host(part.update2, self.events)
            if part.present is not None:
                part.present = _to_host(part.present, self.events)

    def resolve(self) -> tuple[dict[str, Any], list[Point]]:
        """Waits for the copies; returns the histogram columns and the norm metrics."""
        for copy in self.events:
            copy.wait()
        bins = self.bins
        names = [n for part in self.parts for n in part.names]
        kinds = [part.kind for part in self.parts for _ in part.names]
        stats = np.concatenate([part.stats.numpy() for part in self.parts] or [np.zeros((0, _NSTATS))])
        counts = np.concatenate(
            [part.counts.numpy().astype(np.int64) for part in self.parts] or [np.zeros((0, bins + 3), np.int64)]
        )
        update2 = np.concatenate(
            [
                part.update2.numpy() if part.update2 is not None else np.full(len(part.names), np.nan)
                for part in self.parts
            ]
            or [np.zeros(0)]
        )
        keep = np.concatenate(
            [
                part.present.numpy() if part.present is not None else np.ones(len(part.names), bool)
                for part in self.parts
            ]
            or [np.zeros(0, bool)]
        )
        if not keep.all():
            names = [n for n, k in zip(names, keep, strict=True) if k]
            kinds = [n for n, k in zip(kinds, keep, strict=True) if k]
            stats, counts, update2 = stats[keep], counts[keep], update2[keep]
        norm = np.sqrt(stats[:, _NORM2])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(norm > 0, np.sqrt(update2) / norm, np.nan)
        edges = stats[:, _LO, None] + (stats[:, _HI] - stats[:, _LO])[:, None] * np.linspace(0.0, 1.0, bins + 1)
        edges[:, -1] = stats[:, _HI]  # lo + (hi - lo) may miss hi by an ulp in float64
        n = len(names)
        columns = {
            "step": np.full(n, self.step, dtype=np.int64),
            "time": np.full(n, self.time),
            "tensor": names,
            "kind": kinds,
            "numel": stats[:, _NUMEL].astype(np.int64),
            "edges": edges,
            "counts": counts[:, :bins],
            "norm": norm,
            "min": np.where(np.isfinite(stats[:, _MIN]), stats[:, _MIN], np.nan),
            "max": np.where(np.isfinite(stats[:, _MAX]), stats[:, _MAX], np.nan),
            "sum": stats[:, _SUM],
            "zeros": stats[:, _ZEROS].astype(np.int64),
            "nan": counts[:, bins],
            "posinf": counts[:, bins + 1],
            "neginf": counts[:, bins + 2],
            "update_ratio": ratio,
        }
        return columns, norm_points(self.step, self.time, names, kinds, stats[:, _NORM2], update2)
