"""Both histogram kernels of GradientMonitor against numpy.histogram where float32 arithmetic breaks:
ranges narrower than bins / FLT_MAX or wider than FLT_MAX, float64 values past FLT_MAX, more
than 2**24 zeros, and a float64 default dtype."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lightning_tracker.integration.callbacks.gradients import tensor_histograms

_KERNELS = pytest.mark.parametrize("segmented", [False, True], ids=["per-tensor", "segmented"])


def _numpy(x: torch.Tensor, lo: float, hi: float, bins: int) -> np.ndarray:
    a = x.double().numpy().reshape(-1)
    return np.histogram(a[np.isfinite(a)], bins=np.linspace(lo, hi, bins + 1))[0]


def _edge_cases() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return {
        # a vanishing gradient: the finite range is below bins / FLT_MAX (~1.9e-37 for 64 bins)
        "below bins/FLT_MAX": torch.rand(3000, generator=g) * 1e-38,
        "one subnormal step": torch.tensor([0.0, 1e-45, 1e-45, 0.0]),
        # a diverging run: the range is wider than FLT_MAX
        "above FLT_MAX": (torch.rand(3000, generator=g) * 2 - 1) * 3e38,
        "float64 past FLT_MAX": torch.randn(3000, generator=g, dtype=torch.float64) * 1e300,
        "float64 tiny": torch.rand(3000, generator=g, dtype=torch.float64) * 1e-310,
    }


@_KERNELS
@pytest.mark.parametrize("case", list(_edge_cases()))
def test_edge_ranges_bin_like_numpy_instead_of_crashing(case: str, segmented: bool) -> None:
    x = _edge_cases()[case]
    stats, counts = tensor_histograms([x], bins=64, segmented=segmented)
    lo, hi = stats[0, 0].item(), stats[0, 1].item()
    a = x.double().numpy()
    assert (stats[0, 2].item(), stats[0, 3].item()) == (a.min(), a.max())
    assert counts[0, 64:].tolist() == [0, 0, 0], "finite values counted as NaN or inf"
    assert counts[0, :64].sum().item() == x.numel()
    assert np.array_equal(counts[0, :64].numpy(), _numpy(x, lo, hi, 64)), case


@_KERNELS
def test_a_float64_range_wider_than_dbl_max_is_binned_like_numpy_in_halves(segmented: bool) -> None:
    x = torch.tensor([-1.5e308, -1e308, 0.0, 2e307, 1.7e308], dtype=torch.float64)
    stats, counts = tensor_histograms([x], bins=8, segmented=segmented)
    # numpy overflows on this range; halving every value and edge is exact and keeps the bins
    assert np.array_equal(counts[0, :8].numpy(), _numpy(x / 2, stats[0, 0].item() / 2, stats[0, 1].item() / 2, 8))
    assert counts[0, 8:].tolist() == [0, 0, 0]


@_KERNELS
def test_more_than_2_24_zeros_and_a_sum_past_2_24_are_exact(segmented: bool) -> None:
    n = 2**24 + 7  # float32 stops counting at 2**24: 2**24 + 1 == 2**24
    zeros, ones = torch.zeros(n), torch.ones(n)
    stats, counts = tensor_histograms([zeros, ones], bins=4, segmented=segmented)
    assert stats[0, 5].item() == n and stats[1, 5].item() == 0
    assert stats[1, 6].item() == n, "the finite sum"
    assert counts[0, 2].item() == n and counts.dtype == torch.int64
    assert stats[0, 7].item() == n


@_KERNELS
def test_a_float64_default_dtype_leaves_float32_tensors_binned(segmented: bool, float64_default: None) -> None:
    x = torch.randn(1000, generator=torch.Generator().manual_seed(3), dtype=torch.float32)
    stats, counts = tensor_histograms([x, x.half()], bins=16, segmented=segmented)
    assert np.array_equal(counts[0, :16].numpy(), _numpy(x, stats[0, 0].item(), stats[0, 1].item(), 16))
    assert counts[1, :16].sum().item() == 1000


def test_the_device_kernel_works_in_bounded_chunks_and_keeps_a_bounded_id_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lightning_tracker.integration.callbacks import _kernels

    g = torch.Generator().manual_seed(7)
    xs = [
        torch.randn(1000, generator=g),
        torch.randn(37, generator=g) * 5,
        torch.zeros(0),
        torch.randn(2500, generator=g),
    ]
    whole = tensor_histograms(xs, bins=16, segmented=True)
    monkeypatch.setattr(_kernels, "_CHUNK", 300)  # tensors cut across chunks of 300 elements
    monkeypatch.setattr(_kernels.SEGMENT_IDS, "budget", 600)
    _kernels.SEGMENT_IDS.clear()
    chunked = tensor_histograms(xs, bins=16, segmented=True)
    assert torch.equal(whole[1], chunked[1])
    assert torch.allclose(whole[0], chunked[0], rtol=1e-12, atol=0)
    assert _kernels.SEGMENT_IDS._held <= 600, "the id cache holds at most its budget"
    _kernels.SEGMENT_IDS.clear()


class _Contention(TorchDispatchMode):
    """The most scatters any one target address receives, per scatter op."""

    def __init__(self) -> None:
        super().__init__()
        self.worst: list[int] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.overloadpacket in (torch.ops.aten.scatter_add_, torch.ops.aten.scatter_reduce_):
            self.worst.append(int(torch.bincount(args[2].reshape(-1)).max()))
        return func(*args, **(kwargs or {}))


def test_device_scatters_spread_same_address_atomics_over_lanes() -> None:
    n = 1 << 16  # one tensor of equal values: every statistic and the one bin target a single address
    with _Contention() as seen:
        tensor_histograms([torch.zeros(n)], bins=8, segmented=True)
    assert seen.worst and max(seen.worst) <= n // 32, f"{max(seen.worst)} atomics on one address"
