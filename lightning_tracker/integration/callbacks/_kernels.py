"""The histogram kernels of ``GradientMonitor``: per-tensor statistics computed on the tensors' device.

* CPU: one ``torch._foreach_norm`` for all tensors, then NumPy on one thread per tensor:
  min, max, sum, zeros and the bins (scaled values truncated to integers, then
  ``bincount``), block by block over reused buffers; NaN and ±inf are looked for only in
  tensors whose norm is not finite. Reading small results on the host costs nothing here.
* Other devices (CUDA, XPU, MPS, ...): a fixed number of kernels whatever the number of tensors, and no
  host synchronisation: the tensors are concatenated, ranges come from
  ``scatter_reduce`` and the bins of every tensor (plus NaN, +inf and -inf) from one
  ``scatter_add``.
* Sharded tensors: each rank computes on its shard; ``_Reducer`` agrees on the ranges
  (all-reduce MAX of ``-min`` and ``max``) before binning.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["one_thread", "tensor_histograms"]

_BLOCK = 1 << 16  # elements binned at a time on the CPU (work buffers of ~0.75 MB)
_UP = 2.0**600  # rescales a float64 range narrower than the smallest normal float64 (its values are < 1e-290)
_LANES = 32  # copies of each scatter target on an accelerator (spreads same-address atomics)
_LANE_SLOTS = 1 << 22  # at most this many int64 counters (32 MB) for the lanes of the bins
_CHUNK = 1 << 22  # elements per pass on an accelerator: bounds the transient memory to ~340 MB
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

    def __init__(self, sharded: bool, device: torch.device | None = None) -> None:
        self.active = sharded and torch.distributed.is_available() and torch.distributed.is_initialized()
        self.device = device  # where collectives run when not on the tensors' device (NCCL: CUDA only)

    def _all_reduce(self, t: torch.Tensor, op: Any) -> torch.Tensor:
        if self.device is not None and t.device != self.device:  # a CPU part under NCCL (CPU offload)
            moved = t.to(self.device)
            torch.distributed.all_reduce(moved, op=op)
            return moved.to(t.device)
        torch.distributed.all_reduce(t, op=op)
        return t

    def range(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.active:
            return lo, hi
        both = self._all_reduce(torch.cat([-lo, hi]), torch.distributed.ReduceOp.MAX)
        return -both[: len(lo)], both[len(lo) :]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        return self._all_reduce(t, torch.distributed.ReduceOp.SUM) if self.active else t


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


def _rescale(span: float) -> float:
    """A power of two that brings a float64 range's width and its scale into finite, normal
    float64 numbers (multiplying by it is exact): 1 for every range of float32 values."""
    return 0.5 if math.isinf(span) else _UP if span < sys.float_info.min else 1.0


def _fits(dtype: Any, lo: float, hi: float, scale: float) -> bool:
    """Whether the shifted values and the scale of a range are finite, normal numbers in ``dtype``."""
    with np.errstate(over="ignore"):
        span = dtype.type(hi) - dtype.type(lo)
        scale_in = dtype.type(scale)
    return bool(np.isfinite(span) and np.isfinite(scale_in) and scale_in >= np.finfo(dtype).tiny)


def _bin(a: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts of the finite values of ``a`` (all within ``[lo, hi]``) in ``bins`` equal bins, numpy's rule:
    the last bin is closed.

    Block by block, so the work buffers stay in the CPU cache: the values are shifted, then
    scaled to ``[0, bins]`` and truncated into small integers (``uint8`` up to 254 bins) and
    counted by ``torch.bincount``, which counts small integers about 5x faster than
    ``torch.histc`` bins floats and 1.6x faster than ``numpy.bincount`` (which widens to int64).

    A range whose width or scale is not a finite, normal number in the array's dtype (a
    float32 range narrower than ``bins / FLT_MAX``, as of a vanishing gradient, or wider than
    ``FLT_MAX``, as of a diverging run) is binned in float64; a float64 range wider than
    ``DBL_MAX`` or narrower than the smallest normal float64 in exactly rescaled values
    (:func:`_rescale`). Those rare paths clip the scaled values into
    ``[0, bins]`` before truncating them, so an index can never leave the counts.
    """
    factor = _rescale(hi - lo)
    scale = bins / (hi * factor - lo * factor)
    exact = factor == 1.0 and _fits(a.dtype, lo, hi, scale)
    work = a.dtype if exact else np.dtype(np.float64)
    start, scale_in = work.type(lo * factor), work.type(scale)
    small = np.uint8 if bins < 255 else np.int32
    counts = torch.zeros(bins + 1, dtype=torch.int64)
    for first in range(0, a.size, _BLOCK):
        block = a[first : first + _BLOCK]
        shifted = _SCRATCH.get(work, block.size)
        if exact:
            np.subtract(block, start, out=shifted)
            # scaled and truncated (floor, for values >= 0) into small integers in one pass
            index = np.multiply(shifted, scale_in, out=_SCRATCH.get(small, block.size), casting="unsafe")
        else:
            np.multiply(block, factor, out=shifted)
            np.subtract(shifted, start, out=shifted)
            np.clip(np.multiply(shifted, scale_in, out=shifted), 0, bins, out=shifted)
            index = _SCRATCH.get(small, block.size)
            index[...] = shifted
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


def _stats_loop(
    xs: list[torch.Tensor], bins: int, reduce: _Reducer, loss_scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU: one thread, a few passes per tensor (NumPy) over reused buffers, bins counted by ``torch.bincount``.

    ``loss_scale``: a loss scale still in the values (AMP with a fused optimizer), divided out first.
    """
    with one_thread():
        if loss_scale is not None and xs:
            xs = list(torch._foreach_div([_float(x) for x in xs], loss_scale))
        return _stats_loop_serial(xs, bins, reduce)


def _stats_loop_serial(xs: list[torch.Tensor], bins: int, reduce: _Reducer) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(xs)
    stats = torch.zeros(n, _NSTATS, dtype=torch.float64)
    counts = torch.zeros(n, bins + 3, dtype=torch.int64)
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
            table[i, _SUM] = t.sum(dtype=torch.float64).item()
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


def _to_device(values: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    host = torch.tensor(values, dtype=dtype)
    if device.type == "cpu":
        return host
    try:  # a pageable host-to-device copy would synchronise (CUDA, XPU, ...)
        host = host.pin_memory()
    except RuntimeError:  # a device without a pinned host allocator: the copy blocks, as it must then
        pass
    return host.to(device, non_blocking=True)


class _SegmentIds:
    """Segment ids of chunks (for each element, its tensor's index): one bounded cache for every capture.

    Entries are keyed by the chunk's layout alone, so gradients and weights of the same
    tensors share them; the least recently used go first once the cache holds more than
    ``budget`` ids (a new set of present gradients, as with MoE or freezing, only replaces
    old entries).
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._ids: collections.OrderedDict[Any, torch.Tensor] = collections.OrderedDict()
        self._held = 0

    def get(self, chunk: tuple[tuple[int, int, int], ...], device: torch.device) -> torch.Tensor:
        key = (device, tuple((i, stop - start) for i, start, stop in chunk))
        ids = self._ids.get(key)
        if ids is not None:
            self._ids.move_to_end(key)
            return ids
        pairs = _to_device([[i for i, _, _ in chunk], [stop - start for _, start, stop in chunk]], torch.int64, device)
        size = sum(stop - start for _, start, stop in chunk)
        ids = torch.repeat_interleave(pairs[0], pairs[1], output_size=size)
        self._ids[key] = ids
        self._held += size
        while self._held > self.budget and len(self._ids) > 1:
            _, old = self._ids.popitem(last=False)
            self._held -= old.numel()
        return ids

    def clear(self) -> None:
        self._ids.clear()
        self._held = 0


SEGMENT_IDS = _SegmentIds(2 * _CHUNK)


def _chunks(sizes: Sequence[int], chunk: int | None = None) -> list[tuple[tuple[int, int, int], ...]]:
    """Cuts the concatenation of tensors of ``sizes`` into chunks of at most ``chunk`` elements:
    per chunk, the ``(tensor, start, stop)`` slices it holds.

    Example:
        >>> _chunks([3, 0, 5], chunk=4)
        [((0, 0, 3), (2, 0, 1)), ((2, 1, 5),)]
    """
    chunk = chunk or _CHUNK
    chunks, current, room = [], [], chunk
    for i, size in enumerate(sizes):
        start = 0
        while start < size:
            take = min(room, size - start)
            current.append((i, start, start + take))
            start, room = start + take, room - take
            if not room:
                chunks.append(tuple(current))
                current, room = [], chunk
    if current:
        chunks.append(tuple(current))
    return chunks


def _spread(index: torch.Tensor, lanes: int) -> torch.Tensor:
    """``index`` to one of ``lanes`` copies of each target, by element position (no atomics on one address)."""
    if lanes == 1:
        return index
    lane = torch.arange(index.numel(), device=index.device).remainder_(lanes)
    return index.mul(lanes).add_(lane)


def _values(
    xs: list[torch.Tensor], chunk: tuple[tuple[int, int, int], ...], loss_scale: torch.Tensor | None
) -> torch.Tensor:
    # float64 for every dtype: the index arithmetic must hold ranges narrower than bins / FLT_MAX
    v = torch.cat([xs[i].reshape(-1)[start:stop] for i, start, stop in chunk]).double()
    return v if loss_scale is None else v.div_(loss_scale)


def _stats_segmented(
    xs: list[torch.Tensor], bins: int, reduce: _Reducer, loss_scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Any device: a fixed number of kernels per chunk and no host synchronisation (``xs`` share one dtype).

    ``loss_scale``: a loss scale still in the values (AMP with a fused optimizer), a float64
    tensor on the device, divided out of every value and norm.

    Two passes over chunks of at most ``_CHUNK`` elements bound the transient memory
    (about 80 bytes per element of a chunk): the first finds the finite ranges, the zeros
    (int64) and the finite sums (float64), the second the bins, with the index arithmetic
    in float64 and a clamp that keeps every index inside the counts.

    Every scatter goes to ``lanes`` copies of its targets (element ``j`` to lane ``j %
    lanes``), summed or reduced afterwards: one tensor's minimum, maximum, zeros and sum,
    and its few central bins, are otherwise the same few addresses for millions of atomics.
    """
    n = len(xs)
    device = xs[0].device if n else torch.device("cpu")
    f64: dict[str, Any] = {"dtype": torch.float64, "device": device}
    chunks = _chunks([x.numel() for x in xs])
    lanes = max(1, min(_LANES, _LANE_SLOTS // max(1, n * (bins + 3))))
    lo, hi = torch.full((n * lanes,), math.inf, **f64), torch.full((n * lanes,), -math.inf, **f64)
    zeros = torch.zeros(n * lanes, dtype=torch.int64, device=device)
    sums = torch.zeros(n * lanes, **f64)
    kept: torch.Tensor | None = None  # the values of a single chunk, for the second pass
    for chunk in chunks:
        ids, v = SEGMENT_IDS.get(chunk, device), _values(xs, chunk, loss_scale)
        spread = _spread(ids, lanes)
        finite = torch.isfinite(v)
        lo.scatter_reduce_(0, spread, torch.where(finite, v, math.inf), "amin")
        hi.scatter_reduce_(0, spread, torch.where(finite, v, -math.inf), "amax")
        zeros.scatter_add_(0, spread, (v == 0).long())
        sums.scatter_add_(0, spread, torch.where(finite, v, 0.0))
        kept = v if len(chunks) == 1 else None
    lo, hi = lo.view(n, lanes).amin(1), hi.view(n, lanes).amax(1)
    zeros, sums = zeros.view(n, lanes).sum(1), sums.view(n, lanes).sum(1)
    lo, hi = reduce.range(lo, hi)
    vmin, vmax = lo, hi
    lo, hi, same = _safe_range(lo, hi)
    # float64 ranges wider than DBL_MAX or narrower than its smallest normal: rescaled values (_rescale)
    span = hi - lo
    factor = torch.ones_like(span).masked_fill_(span < sys.float_info.min, _UP).masked_fill_(torch.isinf(span), 0.5)
    start = lo * factor
    per_unit = bins / (hi * factor - start)  # bins per unit of (rescaled) value
    rescaled = n and xs[0].dtype == torch.float64
    counts = torch.zeros(n * (bins + 3) * lanes, dtype=torch.int64, device=device)
    one = torch.ones((), dtype=torch.int64, device=device)
    for chunk in chunks:
        ids = SEGMENT_IDS.get(chunk, device)
        v = kept if kept is not None else _values(xs, chunk, loss_scale)
        w = v * factor.index_select(0, ids) if rescaled else v
        idx = (w - start.index_select(0, ids)).mul_(per_unit.index_select(0, ids)).floor_()
        # a backstop: NaN (of non-finite values, replaced below) and rounding never index out of bounds
        idx = idx.nan_to_num_(nan=0.0, posinf=bins - 1, neginf=0.0).clamp_(0, bins - 1).long()
        idx = torch.where(same.index_select(0, ids), bins // 2, idx)
        special = torch.where(torch.isnan(v), bins, torch.where(v > 0, bins + 1, bins + 2))
        code = ids * (bins + 3) + torch.where(torch.isfinite(v), idx, special)
        code = _spread(code, lanes)
        counts.scatter_add_(0, code, one.expand(code.shape))
    stats = torch.zeros(n, _NSTATS, **f64)
    if n:
        norm2 = torch.stack(torch._foreach_norm(xs, 2, dtype=_norm_dtype(xs[0]))).double() ** 2
        stats[:, _NORM2] = norm2 if loss_scale is None else norm2 / loss_scale**2
    stats[:, _ZEROS], stats[:, _SUM], stats[:, _LO], stats[:, _HI] = zeros.double(), sums, lo, hi
    stats[:, _MIN], stats[:, _MAX] = vmin, vmax
    stats[:, _NUMEL] = _to_device([x.numel() for x in xs], torch.float64, device)
    return stats, counts.view(n * (bins + 3), lanes).sum(1).reshape(n, bins + 3)


def tensor_histograms(
    tensors: Sequence[torch.Tensor], bins: int = 64, *, segmented: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histograms and statistics of several tensors, computed on their device.

    Args:
        tensors: tensors on one device (any shapes and floating dtypes; a mix of dtypes
            is computed in float64 if one is float64, else in float32).
        bins: equal bins between each tensor's finite minimum and maximum.
        segmented: force the concatenated, synchronisation-free path (the default for
            every device but the CPU) or the per-tensor path (the CPU default).

    Returns:
        ``(stats, counts)``: ``stats`` is ``[n, 8]`` float64 with columns ``lo, hi, min,
        max, norm², zeros, finite sum, numel`` (``lo``/``hi`` are the outer edges,
        ``min``/``max`` the finite extremes, ±inf when there is none), and
        ``counts`` is ``[n, bins + 3]`` int64: the bins, then NaN, +inf and -inf.

    Example:
        >>> x = torch.tensor([0.0, 1.0, 1.0, 2.0, float("nan"), float("inf")])
        >>> stats, counts = tensor_histograms([x], bins=2)
        >>> stats[0, :2].tolist(), counts[0].tolist()
        ([0.0, 2.0], [1, 3, 1, 1, 0])
        >>> torch.equal(tensor_histograms([x], bins=2, segmented=True)[1], counts)
        True
    """
    xs = [t.detach() for t in tensors]
    device = xs[0].device if xs else torch.device("cpu")
    if len({x.dtype for x in xs}) > 1:  # one concatenation needs one dtype
        wide = any(x.dtype == torch.float64 for x in xs)
        xs = [x.double() if wide else x.float() for x in xs]
    if segmented is None:
        segmented = device.type != "cpu"
    if segmented:
        return _stats_segmented(xs, bins, _Reducer(False))
    return _stats_loop(xs, bins, _Reducer(False))
