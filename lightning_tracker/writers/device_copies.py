"""Copies of accelerator tensors to the host that never wait on the thread that queues them.

A metric scalar, the results of a gradient capture or an image on a GPU (CUDA, or any
other ``torch.accelerator``: XPU, MPS, ...) is copied into pinned host memory with
``non_blocking=True`` on the caller's current stream, so the copy is ordered after the
work that produced the tensor (on a non-default training stream too); an event recorded
behind it tells the thread that reads the copy (the run's flusher, the media encoder)
when the bytes are there. Only that thread waits:

* CUDA: a ``torch.cuda.Event(blocking=True)``, whose ``synchronize()`` sleeps;
* another accelerator: a ``torch.Event`` on the tensor's device and stream, whose
  ``blocking`` flag torch 2.13 ignores, so the reader polls ``query()`` with a growing
  sleep (at most 10 ms) instead of spinning a core in ``synchronize()``.

A device that cannot pin host memory falls back to a blocking copy on the caller's thread.
Torch is imported only when a tensor is copied: this module is part of the writers, which
read-only installs load without torch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["HostCopy"]

log = logging.getLogger(__name__)

_POLL_S = (1e-4, 1e-2)  # first and longest sleep between polls of a non-blocking event


def _record(device: Any) -> tuple[Any, bool]:
    """An event recorded on ``device``'s current stream, and whether its ``synchronize()`` sleeps."""
    import torch

    if device.type == "cuda":
        cuda_event = torch.cuda.Event(blocking=True)
        cuda_event.record(torch.cuda.current_stream(device))
        return cuda_event, True
    event = torch.Event(device=device)
    event.record(torch.accelerator.current_stream(device))
    return event, False


class HostCopy:
    """A device tensor's copy into pinned host memory, queued now; :meth:`wait` reads it on another thread.

    Args:
        tensor: a tensor on any device (a CPU tensor is only referenced: nothing to wait for).
    """

    __slots__ = ("_blocking", "_event", "host")

    def __init__(self, tensor: Any) -> None:
        import torch

        t = tensor.detach()
        self._event: Any = None
        self._blocking = True
        if t.device.type == "cpu":
            self.host = t
            return
        try:
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        except RuntimeError as err:  # a device without a pinned host allocator: a blocking copy
            log.debug("no pinned memory for %s (%s); a blocking copy", t.device, err)
            self.host = t.cpu()
            return
        host.copy_(t, non_blocking=True)  # asynchronous: ordered after the work on the current stream
        self.host = host
        self._event, self._blocking = _record(t.device)

    @property
    def asynchronous(self) -> bool:
        """Whether the copy was queued without waiting (False: it was made before the constructor returned)."""
        return self._event is not None

    def wait(self) -> Any:
        """Waits (this thread only, sleeping) until the copy has landed; returns the host tensor."""
        event = self._event
        if event is not None:
            if self._blocking:
                event.synchronize()
            else:
                delay = _POLL_S[0]
                while not event.query():
                    time.sleep(delay)
                    delay = min(2 * delay, _POLL_S[1])
                event.synchronize()  # complete: returns at once, and raises a device error if there was one
            self._event = None
        return self.host
