"""The weights before the optimizer's update, for ``GradientMonitor``'s update norms, bounded on the device.

The norm of an update, ‖w_after − w_before‖, needs the weights from before the step bit
for bit: a rounded copy (bfloat16, float16) errs by more than a typical update (an update
ratio of 1e-3 against bfloat16's 4e-3 relative rounding). So the snapshot is exact, and
what is bounded is where it lives:

* CPU: copies into buffers kept between captures (fresh pages each step cost more than
  the copy).
* An accelerator: copies on the device up to ``device_bytes`` (``DEVICE_BYTES``, 1 GiB:
  a 250 M-parameter float32 model, a fast device-to-device copy); the weights past it are
  copied into pinned host memory with ``non_blocking=True``. Both copies are queued on the
  current stream before the optimizer's step, so they hold the weights from before it.
  After the step the host part comes back one chunk of at most ``CHUNK`` elements at a
  time into one reused device buffer, is subtracted and measured there: the device holds
  at most ``device_bytes`` plus one chunk, whatever the model's size, at the price of two
  copies over the host link of the weights past the bound. No host synchronisation.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_tracker.integration.callbacks._kernels import _norm_dtype, _to_device, one_thread

__all__ = ["CHUNK", "DEVICE_BYTES", "Snapshot", "Snapshots"]

DEVICE_BYTES = 1 << 30  # snapshot bytes kept on an accelerator; the rest waits in pinned host memory
CHUNK = 1 << 22  # elements of host-held snapshot brought back to the device at a time


def _pinned_like(t: torch.Tensor) -> torch.Tensor | None:
    try:
        return torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    except RuntimeError:  # a device without a pinned host allocator: the copy stays on the device
        return None


class Snapshot:
    """Copies of some weights taken before the optimizer's step; :meth:`update_norms2` measures the step."""

    def __init__(self, now: list[torch.Tensor], before: list[torch.Tensor | None], host: dict[int, torch.Tensor]):
        self.now, self.before, self.host = now, before, host  # host: index -> pinned copy of that weight

    def update_norms2(self) -> torch.Tensor:
        """Per weight, the squared norm of the optimizer's update (float64, on the weights' device)."""
        if not self.now:
            return torch.zeros(0, dtype=torch.float64)
        device = self.now[0].device
        out = torch.zeros(len(self.now), dtype=torch.float64, device=device)
        on_device = [i for i, b in enumerate(self.before) if b is not None]
        if on_device:
            before = [b for b in self.before if b is not None]
            with one_thread():
                torch._foreach_sub_(before, [self.now[i] for i in on_device])
                norms = torch._foreach_norm(before, 2, dtype=_norm_dtype(before[0]))
            out.index_copy_(0, _to_device(on_device, torch.int64, device), torch.stack(norms).double() ** 2)
        if self.host:
            largest = max(h.numel() for h in self.host.values())
            work = torch.empty(min(CHUNK, largest), dtype=self.now[0].dtype, device=device)  # reused: one chunk
            for i, saved in self.host.items():
                flat, now = saved.reshape(-1), self.now[i].reshape(-1)
                for start in range(0, flat.numel(), CHUNK):
                    stop = min(start + CHUNK, flat.numel())
                    piece = work[: stop - start]
                    piece.copy_(flat[start:stop], non_blocking=True)  # queued after the previous piece's work
                    piece.sub_(now[start:stop])
                    norm = torch.linalg.vector_norm(piece, dtype=_norm_dtype(piece))
                    out[i : i + 1].add_(norm.double().square().reshape(1))
        return out


class Snapshots:
    """Takes :class:`Snapshot` s within ``device_bytes`` per accelerator and capture; keeps the CPU's buffers."""

    def __init__(self, device_bytes: int | None = None) -> None:
        self.device_bytes = DEVICE_BYTES if device_bytes is None else device_bytes
        self._buffers: dict[Any, list[torch.Tensor]] = {}
        self._room: dict[torch.device, int] = {}  # device bytes left to this capture

    def start(self) -> None:
        """Starts a capture: each device has ``device_bytes`` for all of its snapshots (every dtype)."""
        self._room = {}

    def take(self, tensors: list[torch.Tensor]) -> Snapshot:
        """Copies ``tensors`` (weights on one device) as they are now, before the optimizer's step."""
        if not tensors:
            return Snapshot([], [], {})
        if tensors[0].device.type == "cpu":
            key = tuple((t.shape, t.dtype) for t in tensors)
            buffers = self._buffers.get(key)
            if buffers is None:
                buffers = self._buffers[key] = [torch.empty_like(t) for t in tensors]
            with one_thread():
                torch._foreach_copy_(buffers, tensors)
            return Snapshot(tensors, list(buffers), {})
        device = tensors[0].device
        room, kept = self._room.get(device, self.device_bytes), []
        host: dict[int, torch.Tensor] = {}
        for i, t in enumerate(tensors):
            size = t.numel() * t.element_size()
            pinned = _pinned_like(t) if size > room else None
            if pinned is None:
                kept.append(i)
                room -= size
            else:
                pinned.copy_(t, non_blocking=True)  # queued before the optimizer's step on this stream
                host[i] = pinned
        self._room[device] = room
        copies = list(torch._foreach_mul([tensors[i] for i in kept], 1.0)) if kept else []
        before: list[torch.Tensor | None] = [None] * len(tensors)
        for i, c in zip(kept, copies, strict=True):
            before[i] = c
        return Snapshot(tensors, before, host)

    def clear(self) -> None:
        """Drops the CPU's buffers."""
        self._buffers.clear()
