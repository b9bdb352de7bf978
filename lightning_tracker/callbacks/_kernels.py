"""The histogram kernels of ``GradientMonitor``: per-tensor statistics computed on the tensors' device.

* CPU: one ``aminmax``, ``histc`` (with that range), ``sum`` and ``count_nonzero`` per tensor
  plus one ``torch._foreach_norm`` for all; NaN and ±inf are looked for only in tensors
  whose norm is not finite. Reading small results on the host costs nothing here.
* Other devices (CUDA): a fixed number of kernels whatever the number of tensors, and no
  host synchronisation: the tensors are concatenated, ranges come from
  ``scatter_reduce`` and the bins of every tensor (plus NaN, +inf and -inf) from one
  ``scatter_add``.
* Sharded tensors: each rank computes on its shard; ``_Reducer`` agrees on the ranges
  (all-reduce MAX of ``-min`` and ``max``) before binning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["tensor_histograms"]

_HISTC_PART = 1 << 24  # histc counts in the input's float type: exact up to 2**24 per call
# columns of the per-tensor statistics tensor
_LO, _HI, _MIN, _MAX, _NORM2, _ZEROS, _SUM, _NUMEL = range(8)
_NSTATS = 8


def _float(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _norm_dtype(x: torch.Tensor) -> torch.dtype:
    # norms of bf16/fp16 tensors accumulate and return in float32, not in the tensor's precision
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _safe_range(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # no finite value: any range (the counts are zero); one value v: [v - 0.5, v + 0.5] like numpy,
    # and v, which lies on the middle edge, goes into bin bins // 2 as in numpy (returned mask)
    has = lo <= hi
    lo, hi = torch.where(has, lo, 0.0), torch.where(has, hi, 1.0)
    same = hi == lo
    return torch.where(same, lo - 0.5, lo), torch.where(same, hi + 0.5, hi), same


class _Reducer:
    """All-reduces per-tensor results across the ranks that hold shards; a no-op otherwise."""

    def __init__(self, sharded: bool) -> None:
        self.active = sharded and torch.distributed.is_available() and torch.distributed.is_initialized()

    def range(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.active:
            return lo, hi
        both = torch.cat([-lo, hi])
        torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX)
        return -both[: len(lo)], both[len(lo) :]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(t)
        return t


def _stats_loop(xs: list[torch.Tensor], bins: int, reduce: _Reducer) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU: a few kernels per tensor (per-op dispatch is the cost here, so results are stacked once)."""
    n = len(xs)
    stats = torch.zeros(n, _NSTATS, dtype=torch.float64)
    counts = torch.zeros(n, bins + 3, dtype=torch.float64)
    if not n:
        return stats, counts
    xs = [_float(x) for x in xs]
    stats[:, _NORM2] = torch.stack(torch._foreach_norm(xs)).double() ** 2
    bad = (~torch.isfinite(stats[:, _NORM2])).tolist()
    ranges, sums = [], []
    for i, x in enumerate(xs):
        if bad[i]:  # rare: NaN or ±inf somewhere (or a norm that overflowed)
            counts[i, bins] = torch.isnan(x).sum()
            counts[i, bins + 1] = (x == math.inf).sum()
            counts[i, bins + 2] = (x == -math.inf).sum()
            x = x[torch.isfinite(x)]
        if x.numel():
            ranges.append(torch.stack(torch.aminmax(x)))
        else:
            ranges.append(torch.tensor([math.inf, -math.inf], dtype=x.dtype))
        sums.append(x.sum())
    lohi = torch.stack(ranges).double()
    stats[:, _SUM] = torch.stack(sums).double()
    lo, hi = reduce.range(lohi[:, 0], lohi[:, 1])
    stats[:, _MIN], stats[:, _MAX] = lo, hi
    lo, hi, same = _safe_range(lo, hi)
    stats[:, _LO], stats[:, _HI] = lo, hi
    stats[:, _NUMEL] = torch.tensor([x.numel() for x in xs], dtype=torch.float64)
    hists, zeros = [], []
    for x, a, b, vmin, vmax, one in zip(xs, lo.tolist(), hi.tolist(), stats[:, _MIN].tolist(),
                                        stats[:, _MAX].tolist(), same.tolist()):  # fmt: skip
        # zero is finite: a tensor whose finite values are all of one sign has none
        zeros.append(x.numel() - torch.count_nonzero(x) if vmin <= 0.0 <= vmax else torch.tensor(0))
        if one:
            hists.append(torch.zeros(bins, dtype=x.dtype))
        elif x.numel() <= _HISTC_PART:  # histc ignores NaN and values out of range
            hists.append(torch.histc(x, bins, a, b))
        else:
            flat = x.reshape(-1)
            parts = [torch.histc(flat[s : s + _HISTC_PART], bins, a, b).double()
                     for s in range(0, flat.numel(), _HISTC_PART)]  # fmt: skip
            hists.append(torch.stack(parts).sum(0))  # float64: exact beyond 2**24
    counts[:, :bins] = torch.stack([h.double() for h in hists])
    stats[:, _ZEROS] = torch.stack(zeros).double()
    for i in (i for i, one in enumerate(same.tolist()) if one):
        counts[i, bins // 2] = stats[i, _NUMEL] - counts[i, bins:].sum()  # numpy's bin for one value
    return stats, counts


def _to_device(values: list[Any], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    host = torch.tensor(values, dtype=dtype)
    if device.type == "cuda":  # a pageable host-to-device copy would synchronise
        host = host.pin_memory()
    return host.to(device, non_blocking=True)


class _Segments:
    """Cached segment ids of concatenated tensors (one id per element)."""

    def __init__(self, sizes: list[int], device: torch.device) -> None:
        self.sizes = sizes
        lengths = _to_device(sizes, torch.int64, device)
        self.numel = lengths.double()
        self.ids = torch.repeat_interleave(torch.arange(len(sizes), device=device), lengths, output_size=sum(sizes))


def _stats_segmented(
    xs: list[torch.Tensor], bins: int, reduce: _Reducer, segments: _Segments
) -> tuple[torch.Tensor, torch.Tensor]:
    """Any device: a fixed number of kernels and no host synchronisation (``xs`` share one dtype)."""
    n, ids = len(xs), segments.ids
    device = ids.device
    flat = torch.cat([x.reshape(-1) for x in xs]).float() if n else torch.zeros(0, device=device)
    finite = torch.isfinite(flat)
    lo = torch.full((n,), math.inf, device=device).scatter_reduce_(0, ids, torch.where(finite, flat, math.inf), "amin")
    hi = torch.full((n,), -math.inf, device=device).scatter_reduce_(0, ids, torch.where(finite, flat, -math.inf), "amax")
    lo, hi = reduce.range(lo, hi)
    vmin, vmax = lo, hi
    lo, hi, same = _safe_range(lo, hi)
    scale = bins / (hi - lo)
    idx = ((flat - lo.index_select(0, ids)) * scale.index_select(0, ids)).floor_().clamp_(0, bins - 1).long()
    idx = torch.where(same.index_select(0, ids), bins // 2, idx)
    special = torch.where(torch.isnan(flat), bins, torch.where(flat > 0, bins + 1, bins + 2))
    code = ids * (bins + 3) + torch.where(finite, idx, special)
    counts = torch.zeros(n * (bins + 3), dtype=torch.float64, device=device)
    counts.scatter_add_(0, code, torch.ones((), dtype=torch.float64, device=device).expand(code.shape))
    stats = torch.zeros(n, _NSTATS, dtype=torch.float64, device=device)
    if n:
        stats[:, _NORM2] = torch.stack(torch._foreach_norm(xs, 2, dtype=_norm_dtype(xs[0]))).double() ** 2
    zeros = torch.zeros(n, device=device).scatter_add_(0, ids, (flat == 0).float())
    sums = torch.zeros(n, device=device).scatter_add_(0, ids, torch.where(finite, flat, 0.0))
    stats[:, _ZEROS], stats[:, _SUM], stats[:, _LO], stats[:, _HI] = zeros, sums, lo, hi
    stats[:, _MIN], stats[:, _MAX] = vmin, vmax
    stats[:, _NUMEL] = segments.numel
    return stats, counts.reshape(n, bins + 3)


def tensor_histograms(
    tensors: Sequence[torch.Tensor], bins: int = 64, *, segmented: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histograms and statistics of several tensors, computed on their device.

    Args:
        tensors: tensors on one device (any shapes and floating dtypes; a mix of dtypes
            is computed in float32).
        bins: equal bins between each tensor's finite minimum and maximum.
        segmented: force the concatenated, synchronisation-free path (the default for
            every device but the CPU) or the per-tensor path (the CPU default).

    Returns:
        ``(stats, counts)``: ``stats`` is ``[n, 8]`` float64 with columns ``lo, hi, min,
        max, norm², zeros, finite sum, numel`` (``lo``/``hi`` are the outer edges,
        ``min``/``max`` the finite extremes, ±inf when there is none), and
        ``counts`` is ``[n, bins + 3]`` float64: the bins, then NaN, +inf and -inf.

    Example:
        >>> x = torch.tensor([0.0, 1.0, 1.0, 2.0, float("nan"), float("inf")])
        >>> stats, counts = tensor_histograms([x], bins=2)
        >>> stats[0, :2].tolist(), counts[0].tolist()
        ([0.0, 2.0], [1.0, 3.0, 1.0, 1.0, 0.0])
        >>> torch.equal(tensor_histograms([x], bins=2, segmented=True)[1], counts)
        True
    """
    xs = [t.detach() for t in tensors]
    device = xs[0].device if xs else torch.device("cpu")
    if len({x.dtype for x in xs}) > 1:  # one concatenation needs one dtype
        xs = [x.float() for x in xs]
    if segmented is None:
        segmented = device.type != "cpu"
    if segmented:
        return _stats_segmented(xs, bins, _Reducer(False), _Segments([x.numel() for x in xs], device))
    return _stats_loop(xs, bins, _Reducer(False))
