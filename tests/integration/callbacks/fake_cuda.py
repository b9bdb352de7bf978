"""A CPU stand-in for CUDA that records every operation that would synchronise the host.

No GPU has been lent to this project, so the CUDA branches of ``GradientMonitor`` are
driven here with CPU tensors that *say* they are on ``cuda:0``:

* :class:`_Devices` (a ``TorchFunctionMode``) answers ``tensor.device`` with ``cuda:0`` for
  every tensor that lives "on the device", rewrites ``device="cuda"`` arguments to the CPU,
  honours ``pin_memory`` by remembering the buffer as pinned host memory, and classifies
  every copy: host-to-device or device-to-host, blocking or not, pinned or pageable.
  Tensors made by a factory without a device, by ``.cpu()`` or from NumPy are host tensors;
  a result is a host tensor when all its tensor inputs are.
* :class:`_Syncs` (a ``TorchDispatchMode``) records the ops that wait for the GPU when
  their operand is on the device: ``_local_scalar_dense`` (``item()``, ``float()``,
  ``bool()``), ``nonzero``, ``masked_select``, ``unique``, ``bincount``, ``histc`` with
  ``min == max``, ``repeat_interleave`` without ``output_size`` and boolean-mask indexing.
* :class:`FakeEvent` and :class:`FakeStream` stand in for ``torch.cuda.Event``, ``torch.Event``
  and streams (``torch.cuda.current_stream``, ``torch.accelerator.current_stream``): a
  recorded event covers the device-to-host copies queued before it on its device; who
  waits on an event, and on which thread, is recorded, and so is a waiter that would spin
  a core (``synchronize()`` of an event made without ``blocking=True``, which
  ``torch.Event`` ignores on every accelerator).

``fake_cuda(device_type="xpu")`` plays another accelerator the same way (``tensor.device``
answers ``xpu:0``), for the code paths that serve every ``torch.accelerator``.

Both modes are thread-local: only the thread that enters :func:`fake_cuda` is traced, which
is the training thread of the tests; the writer's flusher sees plain CPU tensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

aten = torch.ops.aten
CUDA = torch.device("cuda", 0)
_ALWAYS_SYNC = {
    aten._local_scalar_dense,
    aten.nonzero,
    aten.masked_select,
    aten.unique_consecutive,
    aten._unique,
    aten._unique2,
    aten.unique_dim,
    aten.bincount,
}
_TO_HOST = {"tolist", "numpy", "item", "__float__", "__int__", "__bool__", "__index__", "__array__"}
_FACTORIES_KEEP_DEVICE = {"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor"}


@dataclasses.dataclass
class Copy:
    """One device-to-host copy queued on the traced thread."""

    what: str
    device: torch.device
    covered: bool = False


@dataclasses.dataclass
class Trace:
    """What the traced (training) thread did that concerns the host and the device."""

    thread: int
    syncs: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    copies: list[Copy] = dataclasses.field(default_factory=list)
    waits: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (thread id, what)
    device: torch.device = CUDA  # what the device tensors say they are on
    events: int = 0
    spinning: int = 0  # events made without blocking=True (CUDA), or waited on by synchronize() (others)
    host: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)  # storage address -> a tensor on it
    pinned: set[int] = dataclasses.field(default_factory=set)

    def is_host(self, t: torch.Tensor) -> bool:
        return _address(t) in self.host

    def mark_host(self, t: torch.Tensor, pinned: bool = False) -> None:
        address = _address(t)
        if address:  # a zero-size tensor has no storage to tell apart
            self.host[address] = t  # held: the address is never reused for a device tensor
            if pinned:
                self.pinned.add(address)

    def is_pinned(self, t: torch.Tensor) -> bool:
        return _address(t) in self.pinned

    def uncovered(self) -> list[Copy]:
        return [c for c in self.copies if not c.covered]

    def training_waits(self) -> list[str]:
        return [what for thread, what in self.waits if thread == self.thread]

    def assert_clean(self) -> None:
        """Nothing synchronised the traced thread, every copy to the host is covered by an event
        on its device, no event was waited on by the traced thread, and every event blocks its waiter."""
        assert self.errors == [], self.errors
        assert self.syncs == [], self.syncs
        assert self.uncovered() == [], self.uncovered()
        assert self.training_waits() == [], self.training_waits()
        assert self.spinning == 0, f"{self.spinning} events without blocking=True"


def _address(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except RuntimeError:  # a tensor without storage (a DTensor's wrapper)
        return 0


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor)]


def _device_arg(value: Any) -> torch.device | None:
    if isinstance(value, torch.device):
        return value
    if isinstance(value, str) and value.split(":")[0] in ("cuda", "cpu", "xpu", "mps"):
        return torch.device(value)
    return None


class FakeStream:
    """A stand-in for a stream of the traced device: only its device matters here."""

    def __init__(self, trace: Trace, device: Any = None) -> None:
        self.device = trace.device if device is None else torch.device(device)
        if self.device.index is None:
            self.device = torch.device(self.device.type, 0)


class FakeEvent:
    """A stand-in for ``torch.cuda.Event`` (``device=None``) and ``torch.Event``: recording covers the
    copies queued before it on its device.

    ``torch.Event`` ignores ``blocking`` (torch 2.13): its ``synchronize()`` before ``query()``
    says it is done would spin a core, which is counted."""

    def __init__(self, trace: Trace, device: Any = None, *, blocking: bool = False, **_: Any) -> None:
        self.trace, self.recorded, self.queried_done = trace, False, False
        self.sleeps = device is None and blocking  # only a CUDA event honours blocking=True
        if device is None and not blocking:
            trace.spinning += 1
        self.device = None if device is None else torch.device(device)

    def record(self, stream: FakeStream | None = None) -> None:
        device = stream.device if stream is not None else self.device or CUDA
        assert self.device is None or self.device.type == device.type, "an event recorded on another device"
        for copy in self.trace.copies:
            if copy.device == device:
                copy.covered = True
        self.recorded = True
        self.trace.events += 1

    def synchronize(self) -> None:
        assert self.recorded, "waited on an event never recorded"
        if not self.sleeps and self.device is not None and not self.queried_done:
            self.trace.spinning += 1
        self.trace.waits.append((threading.get_ident(), "Event.synchronize"))

    def query(self) -> bool:
        self.queried_done = self.recorded
        return self.recorded

    def wait(self, stream: Any = None) -> None:  # a device-side wait: no host synchronisation
        pass


class _Devices(TorchFunctionMode):
    def __init__(self, trace: Trace) -> None:
        super().__init__()
        self.trace = trace

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        trace, kwargs = self.trace, dict(kwargs or {})
        name = getattr(func, "__name__", "")
        owner = getattr(func, "__self__", None)
        if owner is torch._C.TensorBase.__dict__["device"]:
            return torch.device("cpu") if trace.is_host(args[0]) else trace.device
        if owner is torch._C.TensorBase.__dict__["is_cuda"]:
            return not trace.is_host(args[0]) and trace.device.type == "cuda"
        if name == "is_pinned":
            return trace.is_pinned(args[0])
        if name in _TO_HOST and isinstance(args[0], torch.Tensor) and not trace.is_host(args[0]):
            trace.syncs.append(f"Tensor.{name} of a device tensor")
        if name == "pin_memory":
            out = args[0].clone()
            trace.mark_host(out, pinned=True)
            return out
        if name == "copy_":
            self._copy(args[0], args[1], bool(kwargs.get("non_blocking", args[2] if len(args) > 2 else False)))
            return func(*args, **kwargs)
        pinned = bool(kwargs.pop("pin_memory", False))
        target = None
        if "device" in kwargs:
            target = _device_arg(kwargs["device"])
            kwargs["device"] = "cpu"
        if name in ("to", "cuda", "cpu"):
            devices = [d for d in map(_device_arg, args[1:]) if d is not None]
            if devices or name != "to":
                target = devices[0] if devices else torch.device("cpu") if name == "cpu" else trace.device
            args = (args[0], *("cpu" if _device_arg(a) else a for a in args[1:]))
            if name == "cuda":
                return self._transfer(
                    args[0], trace.device, bool(kwargs.get("non_blocking", False)), lambda: args[0].clone()
                )
            if target is not None:
                to = func
                return self._transfer(
                    args[0], target, bool(kwargs.get("non_blocking", False)), lambda: to(*args, **kwargs)
                )
        inputs = _tensors((args, kwargs))
        host_in = [t for t in inputs if trace.is_host(t)]
        if target is None and host_in and len(host_in) < len(inputs):
            if any(t.dim() for t in host_in) and name not in _FACTORIES_KEEP_DEVICE:
                trace.errors.append(f"{name}: a host tensor mixed with device tensors")
        out = func(*args, **kwargs)
        if target is not None:
            host = target.type == "cpu"
        elif name in _FACTORIES_KEEP_DEVICE:
            host = trace.is_host(args[0])
        else:
            host = (not inputs) or len(host_in) == len(inputs)
        if host:
            for t in _tensors(out):
                trace.mark_host(t, pinned=pinned)
        return out

    def _transfer(self, t: torch.Tensor, target: torch.device, non_blocking: bool, run: Any) -> Any:
        trace, src_host = self.trace, self.trace.is_host(t)
        out = run()
        if target.type == "cpu":
            if not src_host:
                if non_blocking:  # .to("cpu", non_blocking=True) lands in pinned memory
                    trace.copies.append(Copy("Tensor.to(cpu, non_blocking=True)", trace.device))
                else:
                    trace.syncs.append("a blocking copy to the host")
                if out.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
                    out = out.clone()
            trace.mark_host(out, pinned=non_blocking and not src_host)
        else:
            if src_host and not (non_blocking and trace.is_pinned(t)):
                trace.syncs.append("a blocking or pageable copy to the device")
            if trace.is_host(out):  # the same storage: give the device its own copy
                out = out.clone()
        return out

    def _copy(self, dst: torch.Tensor, src: torch.Tensor, non_blocking: bool) -> None:
        trace = self.trace
        dst_host, src_host = trace.is_host(dst), trace.is_host(src)
        if dst_host and not src_host:
            if not (non_blocking and trace.is_pinned(dst)):
                trace.syncs.append("a blocking or pageable copy to the host")
            trace.copies.append(Copy("copy_ to the host", trace.device))
        elif src_host and not dst_host and src.dim():
            if not (non_blocking and trace.is_pinned(src)):
                trace.syncs.append("a blocking or pageable copy to the device")


class _Syncs(TorchDispatchMode):
    def __init__(self, trace: Trace) -> None:
        super().__init__()
        self.trace = trace

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        packet = func.overloadpacket
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        on_device = first is not None and not self.trace.is_host(first)
        if on_device:
            why = None
            if packet in _ALWAYS_SYNC:
                why = str(packet)
            elif packet is aten.histc and _arg(args, kwargs, 2, "min", 0) == _arg(args, kwargs, 3, "max", 0):
                why = "histc with min == max"
            elif packet is aten.repeat_interleave and _arg(args, kwargs, 3, "output_size", None) is None:
                why = "repeat_interleave without output_size"
            elif packet in (aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_):
                indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
                if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
                    why = f"{packet} with a boolean mask"
            if why is not None:
                self.trace.syncs.append(why)
        return func(*args, **kwargs)


def _arg(args: Any, kwargs: Any, i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _accelerator_event(trace: Trace) -> type[FakeEvent]:
    """A class standing in for ``torch.Event`` (a class: code imported meanwhile may subclass it)."""

    class Event(FakeEvent):
        def __init__(self, device: Any = None, **kwargs: Any) -> None:
            super().__init__(trace, device or trace.device, **kwargs)

    return Event


@contextlib.contextmanager
def fake_cuda(trace: Trace | None = None, device_type: str = "cuda") -> Iterator[Trace]:
    """Traces the calling thread: its tensors are on ``cuda:0`` (or ``<device_type>:0``), its syncs
    recorded (see the module).

    ``torch.cuda``'s events, streams and ``is_available``, ``torch.Event`` and
    ``torch.accelerator.current_stream`` are replaced within the block only. Pass the ``trace``
    of an earlier block to go on filling it (host tensors stay host tensors)."""
    trace = Trace(threading.get_ident(), device=torch.device(device_type, 0)) if trace is None else trace
    with pytest.MonkeyPatch.context() as patch, _Devices(trace), _Syncs(trace):
        patch.setattr(torch.cuda, "Event", lambda **k: FakeEvent(trace, **k))
        patch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream(trace, device))
        patch.setattr(torch.cuda, "is_available", lambda: trace.device.type == "cuda")
        patch.setattr(torch, "Event", _accelerator_event(trace))
        patch.setattr(torch.accelerator, "current_stream", lambda device=None: FakeStream(trace, device))
        yield trace


def detached(tree: Any) -> Any:
    """``tree`` with its tensors copied, for reading on the host outside the trace."""
    return tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, tree)
