"""The CPU stand-in for CUDA (``fake_cuda``) catches each kind of host synchronisation it claims to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from tests.integration.callbacks.fake_cuda import fake_cuda

_SYNCING: dict[str, Callable[[torch.Tensor], Any]] = {
    "item": lambda x: x.sum().item(),
    "float": lambda x: float(x[0]),
    "bool": lambda x: bool((x > 0).any()),
    "tolist": lambda x: x.tolist(),
    "nonzero": lambda x: torch.nonzero(x),
    "where one argument": lambda x: torch.where(x > 0),
    "masked_select": lambda x: torch.masked_select(x, x > 0),
    "boolean mask": lambda x: x[x > 0],
    "boolean mask assignment": lambda x: x.__setitem__(x > 0, 0.0),
    "unique": lambda x: torch.unique(x),
    "bincount": lambda x: torch.bincount((x > 0).long()),
    "histc min == max": lambda x: torch.histc(x, bins=4),
    "repeat_interleave": lambda x: torch.repeat_interleave(
        torch.arange(2, device=x.device), torch.ones(2, dtype=torch.long, device=x.device)
    ),
    "cpu": lambda x: x.cpu(),
    "pageable to device": lambda x: torch.tensor([1.0, 2.0]).to(x.device, non_blocking=True),
    "blocking pinned to device": lambda x: torch.tensor([1.0, 2.0]).pin_memory().to(x.device),
    "pageable copy_ to host": lambda x: torch.empty(3).copy_(x, non_blocking=True),
    "blocking copy_ to host": lambda x: torch.empty(3, pin_memory=True).copy_(x),
}


@pytest.mark.parametrize("case", list(_SYNCING))
def test_the_tracer_records_each_synchronising_op(case: str) -> None:
    x = torch.tensor([1.0, -2.0, 3.0])
    with fake_cuda() as trace:
        assert x.device == torch.device("cuda", 0)
        _SYNCING[case](x)
    assert trace.syncs, case


def test_the_tracer_passes_asynchronous_work_and_covers_copies_with_events() -> None:
    x = torch.tensor([1.0, -2.0, 3.0])
    with fake_cuda() as trace:
        y = torch.where(x > 0, x, 0.0).sum(0, keepdim=True)
        idx = torch.repeat_interleave(
            torch.arange(2, device=x.device), torch.ones(2, dtype=torch.long, device=x.device), output_size=2
        )
        z = torch.tensor([1.0, 2.0]).pin_memory().to(x.device, non_blocking=True) + idx
        host = torch.empty(1, pin_memory=True)
        host.copy_(y, non_blocking=True)
        assert z.device.type == "cuda" and host.device.type == "cpu" and host.is_pinned()
        assert len(trace.uncovered()) == 1, "a copy to the host before any event"
        torch.cuda.Event().record(torch.cuda.current_stream(x.device))
    assert trace.syncs == [] and trace.errors == [] and trace.uncovered() == []
    assert host.tolist() == [4.0]


def test_the_tracer_reports_a_host_tensor_mixed_into_device_work() -> None:
    x = torch.tensor([1.0, -2.0, 3.0])
    with fake_cuda() as trace:
        x + torch.ones(3)
    assert trace.errors
