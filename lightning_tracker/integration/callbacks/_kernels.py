"""The histogram kernels of ``GradientMonitor``: per-tensor statistics computed on the tensors' device.

* CPU: one ``torch._foreach_norm`` for all tensors, then NumPy on one thread per tensor:
  min, max, sum, zeros and the bins (scaled values truncated to integers, then
  ``bincount``), block by block over reused buffers; NaN and ±inf are looked for only in
  tensors whose norm is not finite. Reading small results on the host costs nothing here.
* Other devices (CUDA): a fixed number of kernels whatever the number of tensors, and no
  host synchronisation: the tensors are concatenated, ranges come from
  ``scatter_reduce`` and the bins of every tensor (plus NaN, +inf and -inf) from one
  ``scatter_add``.
* Sharded tensors: each rank computes on its shard; ``_Reducer`` agrees on the ranges
  (all-reduce MAX of ``-min`` and ``max``) before binning.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["one_thread", "tensor_histograms"]

_BLOCK = 1 << 16  # elements binned at a time on the CPU (work buffers of ~0.75 MB)
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


class _Scratch(threading.local):
    """Reused work buffers of the CPU kernel (fresh pages each step cost more than the work)."""

    def __init__(self) -> None:
        self.buffers: dict[Any, np.ndarray] = {}

    def get(self, dtype: Any, n: int) -> np.ndarray:
        buf = self.buffers.get(dtype)
        if buf is None or buf.size < n:
            buf = self.buffers[dtype] = np.empty(max(n, _BLOCK), dtype)
        return buf[:n]


_SCRATCH = _Scratch()


def _bin(a: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts of the finite values of ``a`` (all within ``[lo, hi]``) in ``bins`` equal bins, numpy's rule:
    the last bin is closed.

    Block by block, so the work buffers stay in the CPU cache: the values are shifted, then
    scaled to ``[0, bins]`` and truncated into small integers (``uint8`` up to 254 bins) and
    counted by ``torch.bincount``, which counts small integers about 5x faster than
    ``torch.histc`` bins floats and 1.6x faster than ``numpy.bincount`` (which widens to int64).
    """
    counts = torch.zeros(bins + 1, dtype=torch.int64)
    scale = a.dtype.type(bins / (hi - lo))
    start = a.dtype.type(lo)
    small = np.uint8 if bins < 255 else np.int32
    for first in range(0, a.size, _BLOCK):
        block = a[first : first + _BLOCK]
        shifted = np.subtract(block, start, out=_SCRATCH.get(a.dtype, block.size))
        # scaled and truncated (floor, for values >= 0) into small integers in one pass
        index = np.multiply(shifted, scale, out=_SCRATCH.get(small, block.size), casting="unsafe")
        found = torch.bincount(torch.from_numpy(index), minlength=bins + 1)
        counts += found[: bins + 1]
        if len(found) > bins + 1:  # float rounding just above hi
            counts[bins] += found[bins + 1 :].sum()
    out = counts.numpy()
    out[bins - 1] += out[bins]  # the maximum itself
    return out[:bins]


def _zeros(a: np.ndarray) -> int:
    """Exact zeros (+0 and -0), block by block."""
    zeros = 0
    for first in range(0, a.size, _BLOCK):
        block = a[first : first + _BLOCK]
        zeros += int(np.count_nonzero(np.equal(block, 0, out=_SCRATCH.get(np.bool_, block.size))))
    return zeros


@functools.cache
def _openmp() -> bool:
    # torch's native thread pool refuses set_num_threads once it has run parallel work
    return "OpenMP" in torch.__config__.parallel_info()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Runs torch's CPU ops of the block on the calling thread only.

    A capture is many small ops with Python between them; torch's other OpenMP workers
    would only spin-wait through it, doubling the CPU time on two cores for no gain in
    wall time. Switching costs about half a microsecond; ops on other devices are
    unaffected. A no-op with torch's native (non-OpenMP) thread pool, which cannot
    change its size once used.
    """
    threads = torch.get_num_threads()
    if threads == 1 or not _openmp():
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _stats_loop(xs: list[torch.Tensor], bins: int, reduce: _Reducer) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU: one thread, a few passes per tensor (NumPy) over reused buffers, bins counted by ``torch.bincount``."""
    with one_thread():
        return _stats_loop_serial(xs, bins, reduce)


def _stats_loop_serial(xs: list[torch.Tensor], bins: int, reduce: _Reducer) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(xs)
    stats = torch.zeros(n, _NSTATS, dtype=torch.float64)
    counts = torch.zeros(n, bins + 3, dtype=torch.float64)
    if not n:
        return stats, counts
    xs = [_float(x) for x in xs]
    stats[:, _NORM2] = torch.stack(torch._foreach_norm(xs)).double() ** 2
    bad = (~torch.isfinite(stats[:, _NORM2])).tolist()
    arrays, lohi = [], np.empty((n, 2))
    table = stats.numpy()  # a view: writes land in ``stats``
    special = counts.numpy()
    for i, x in enumerate(xs):
        a = x.contiguous().numpy().reshape(-1)
        if bad[i]:  # rare: NaN or ±inf somewhere (or a norm that overflowed)
            special[i, bins] = np.isnan(a).sum()
            special[i, bins + 1] = np.isposinf(a).sum()
            special[i, bins + 2] = np.isneginf(a).sum()
            a = a[np.isfinite(a)]
        if a.size:
            t = torch.from_numpy(a)
            lohi[i] = torch.stack(torch.aminmax(t)).tolist()
            table[i, _SUM] = t.sum().item()
        else:
            lohi[i] = (math.inf, -math.inf)
        table[i, _NUMEL] = x.numel()
        arrays.append(a)
    lo, hi = reduce.range(torch.from_numpy(lohi[:, 0]), torch.from_numpy(lohi[:, 1]))
    stats[:, _MIN], stats[:, _MAX] = lo, hi
    lo, hi, same = _safe_range(lo, hi)
    stats[:, _LO], stats[:, _HI] = lo, hi
    for i, (a, a_lo, a_hi, one) in enumerate(zip(arrays, lo.tolist(), hi.tolist(), same.tolist(), strict=True)):
        # zero is finite: a tensor whose finite values are all of one sign has none
        table[i, _ZEROS] = _zeros(a) if a.size and table[i, _MIN] <= 0.0 <= table[i, _MAX] else 0
        if one:
            special[i, bins // 2] = table[i, _NUMEL] - special[i, bins:].sum()  # numpy's bin for one value
        elif a.size:
            special[i, :bins] = _bin(a, a_lo, a_hi, bins)
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
    lo = torch.full((n,), math.inf, device=device)
    lo = lo.scatter_reduce_(0, ids, torch.where(finite, flat, math.inf), "amin")
    hi = torch.full((n,), -math.inf, device=device)
    hi = hi.scatter_reduce_(0, ids, torch.where(finite, flat, -math.inf), "amax")
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
