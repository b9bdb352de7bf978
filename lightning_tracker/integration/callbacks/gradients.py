"""``GradientMonitor``: histograms and norms of gradients and weights, cheap enough to leave on.

At each captured optimizer step the callback computes, for every selected parameter
tensor, on the tensor's own device: a histogram over ``bins`` equal bins between the
finite minimum and maximum, the L2 norm, the number of exact zeros, the finite sum and
the counts of NaN, +inf and -inf (never in the bins). Weights also get the norm of the
optimizer's update, for the update-to-weight ratio.

How it stays cheap:

* CPU: on the training thread alone (torch's other threads would only spin through the
  many small steps): ``torch._foreach_norm`` over all tensors, then per tensor NumPy's
  min, max and sum, a zero count, and the bins: values scaled in place into small
  integers, block by block, counted by ``torch.bincount`` (about half the CPU time of
  one ``torch.histc`` per tensor); NaN and ±inf are looked for only in tensors whose
  norm is not finite.
* CUDA: a fixed number of kernels per chunk of at most ``_CHUNK`` elements (4 M: about
  340 MB of transient memory), whatever the number of tensors. The tensors are
  concatenated chunk by chunk, per-tensor ranges come from ``scatter_reduce`` and the bins
  of all tensors (plus three bins for NaN, +inf, -inf) from one ``scatter_add``, with the
  index arithmetic in float64; zeros are counted in int64 and sums kept in float64. Nothing
  is read back on the training thread: the few small result tensors are copied into
  pinned host memory with ``non_blocking=True`` and a blocking CUDA event is recorded;
  the run writer's flusher thread sleeps on that event before it reads them.
* Other accelerators (XPU, MPS, ...): the same kernels, and the same copies behind a
  ``torch.Event`` on the tensors' device and current stream; the flusher polls it with a
  short sleep (``torch.Event`` ignores ``blocking=True``), never spinning a core.
* Update norms need the weights from before the optimizer's step bit for bit: an exact
  copy, taken on an accelerator within 1 GiB of device memory per capture, the rest in
  pinned host memory brought back chunk by chunk after the step (:mod:`._snapshot`).
* AMP with a fused optimizer (which unscales inside its step): the loss scale is divided
  out on the device, so the numbers are those of the unscaled gradients.
* Sharded parameters (FSDP2's ``DTensor``, FSDP1's views or flat parameters, cut into
  the original parameters): every rank computes on its part; the ranges are agreed with
  one all-reduce (MAX of ``-min`` and ``max``) and counts, zeros, sums and squared norms
  summed with another, so a histogram always describes the whole tensor; a tensor
  replicated on several ranks (FSDP1 ``NO_SHARD``/``HYBRID_SHARD``, HSDP, or left whole by
  a model-parallel strategy) counts each element once. At train start the ranks check
  that they lay out their parameters alike (else a warning, and nothing is recorded).
  Under DDP every rank holds the same reduced gradients and weights: each tensor is
  computed (and its weights snapshotted) by one rank, balanced by size, and the small
  results are summed across ranks with one all-reduce per capture, so no rank waits at
  the next all-reduce while another computes everything.
* ``logger.flush()`` and ``finalize()`` resolve the captures still queued on the calling
  thread, and so wait for the GPU to finish the work queued before them (the training
  loop's own calls come between steps, where that costs nothing).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.amp.grad_scaler import OptState

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.integration._compat import Callback, override
from lightning_tracker.integration.callbacks._capture import Capture, Part
from lightning_tracker.integration.callbacks._kernels import (
    _NORM2,
    _NSTATS,
    SEGMENT_IDS,
    _Reducer,
    _stats_loop,
    _stats_segmented,
    _to_device,
    tensor_histograms,
)
from lightning_tracker.integration.callbacks._logger import find_logger
from lightning_tracker.integration.callbacks._sharding import (
    collective_device,
    flat_slices,
    is_sharded,
    layouts_agree,
    owners,
    replicas,
)
from lightning_tracker.integration.callbacks._snapshot import Snapshot, Snapshots

if TYPE_CHECKING:
    from lightning_tracker.integration._compat import LightningModule, Trainer

__all__ = ["GradientMonitor", "tensor_histograms"]

log = logging.getLogger(__name__)

_LOG_KINDS = {"gradients": ("gradient",), "parameters": ("parameter",), "all": ("gradient", "parameter")}
# components that wrappers inside a LightningModule add to parameter names (FSDP1, activation
# checkpointing, torch.compile); DDP's "module." never appears: the callback walks the
# LightningModule, which the strategy's wrapper holds, not the reverse
_WRAPPERS = frozenset({"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"})


def _clean_name(name: str) -> str:
    """``name`` without the components wrappers add; a user's own name is never cut.

    Example:
        >>> _clean_name("_orig_mod.encoder._fsdp_wrapped_module.submodule.weight")
        'encoder.submodule.weight'
    """
    return ".".join(part for part in name.split(".") if part not in _WRAPPERS)


def _loss_scale(trainer: Trainer, optimizer: Any) -> torch.Tensor | None:
    """AMP's loss scale still in the gradients at this hook, as a float64 tensor on its device, or None.

    Lightning's ``MixedPrecision`` unscales an optimizer's gradients before
    ``on_before_optimizer_step``, except for optimizers that unscale inside ``step()``
    (``fused=True`` Adam, AdamW and SGD: ``_step_supports_amp_scaling``), whose gradients
    the hook sees multiplied by the scale. Read on the device: no synchronisation.
    """
    scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)
    if scaler is None or not scaler.is_enabled() or getattr(scaler, "_scale", None) is None:
        return None
    state = scaler._per_optimizer_states.get(id(getattr(optimizer, "_optimizer", optimizer)))
    if state is not None and state["stage"] is OptState.UNSCALED:
        return None
    return scaler._scale.double()  # a copy taken now: update() changes the scale after the step


def _is_deepspeed(trainer: Trainer, pl_module: nn.Module) -> bool:
    # by name: deepspeed need not be installed to tell; ZeRO-3 also tags every parameter with ds_id
    if any(cls.__name__ == "DeepSpeedStrategy" for cls in type(getattr(trainer, "strategy", None)).__mro__):
        return True
    return any(hasattr(p, "ds_id") for p in pl_module.parameters())


_Update = tuple[Part, Snapshot]  # a part of weights, and their copy from before the optimizer's step


def _local(t: torch.Tensor) -> torch.Tensor:
    to_local = getattr(t, "to_local", None)  # a DTensor: this rank's shard
    return to_local() if to_local is not None else t


class GradientMonitor(Callback):
    """Records histograms and norms of gradients and weights at optimizer steps.

    Histograms go to the run's ``histograms/`` folder (read them with
    ``Run.histograms()`` or ``lightning-tracker hist``) and to TensorBoard; the L2 norms
    per module and in total (``gradients/norm/<module>``, ``gradients/norm_total``,
    ``parameters/norm_total``) and ``parameters/update_ratio_total`` go to the metrics.
    Gradients are seen after AMP unscaling (a fused optimizer, which unscales inside its
    step, has the loss scale divided out on the device) and before clipping and the optimizer step;
    steps are optimizer steps (``trainer.global_step``), not micro-batches.

    Args:
        every_n_steps: capture every this many optimizer steps.
        log: ``"gradients"``, ``"parameters"`` (weights, with the update-to-weight ratio)
            or ``"all"``.
        bins: equal-width bins between each tensor's finite minimum and maximum.
        modules: which modules' parameters to record: a name pattern (``"encoder.*"``,
            fnmatch syntax), a module type (``nn.Linear``) or a list of them; None for
            every parameter. A matching module contributes all of its parameters.

    Raises:
        InvalidArgumentError: an argument has a value that cannot be used, or (at
            ``fit``) the Trainer has no ``TrackerLogger``.

    Example:
        >>> import tempfile, torch
        >>> from lightning_tracker import Store, TrackerLogger
        >>> from lightning_tracker.integration._compat import LightningModule, Trainer
        >>> class Model(LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.layer = torch.nn.Linear(4, 2)
        ...     def training_step(self, batch, _):
        ...         return self.layer(batch[0]).pow(2).mean()
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=0.1)
        ...     def train_dataloader(self):
        ...         data = torch.utils.data.TensorDataset(torch.randn(8, 4))
        ...         return torch.utils.data.DataLoader(data, batch_size=4)
        >>> save_dir = tempfile.mkdtemp()
        >>> logger = TrackerLogger(save_dir, name="doc")
        >>> trainer = Trainer(logger=logger, max_epochs=1, enable_progress_bar=False, enable_model_summary=False,
        ...                   enable_checkpointing=False, callbacks=[GradientMonitor(log="all", bins=8)])
        >>> trainer.fit(Model())
        >>> hist = Store(save_dir).run(logger.version).histograms()
        >>> sorted(set(hist["tensor"])), sorted(set(hist["step"])), len(hist["counts"][0])
        (['layer.bias', 'layer.weight'], [0, 1], 8)
    """

    def __init__(
        self,
        every_n_steps: int = 1,
        log: str = "gradients",
        bins: int = 64,
        modules: str | type[nn.Module] | Sequence[str | type[nn.Module]] | None = None,
    ) -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise InvalidArgumentError(
                f"every_n_steps={every_n_steps!r} must be an integer >= 1 (1 records every optimizer step)."
            )
        if log not in _LOG_KINDS:
            raise InvalidArgumentError(f"log={log!r} must be one of 'gradients', 'parameters' or 'all'.")
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 4096:
            raise InvalidArgumentError(f"bins={bins!r} must be an integer in [1, 4096]; 64 is a good default.")
        selectors = [] if modules is None else [modules] if isinstance(modules, (str, type)) else list(modules)
        for sel in selectors:
            if not (isinstance(sel, str) or (isinstance(sel, type) and issubclass(sel, nn.Module))):
                raise InvalidArgumentError(
                    f"modules={modules!r} must hold module name patterns (such as 'encoder.*') or "
                    f"nn.Module subclasses (such as nn.Linear); got {sel!r}."
                )
        self.every_n_steps = every_n_steps
        self.log = log
        self.bins = bins
        self.modules = modules
        self._selectors = selectors
        self._kinds = _LOG_KINDS[log]
        self._logger: Any = None
        self._named: list[tuple[str, nn.Parameter]] = []
        self._sharded = False
        self._snapshots = Snapshots()
        self._replicas: dict[str, int] = {}
        self._slices: dict[str, tuple[int, int]] = {}
        self._collectives: torch.device | None = None
        self._shares: dict[Any, torch.Tensor] = {}
        self._split = False  # DDP: each rank computes the tensors it owns
        self._owners: dict[str, int] = {}
        # (capture, updates still to measure, the rows every rank agrees on when the work is split)
        self._pending: list[tuple[Capture, list[_Update], list[str] | None]] = []

    def _matches(self, name: str, module: nn.Module) -> bool:
        if not self._selectors:
            return True
        clean = _clean_name(name)
        return any(
            fnmatch.fnmatchcase(clean, sel) if isinstance(sel, str) else isinstance(module, sel)
            for sel in self._selectors
        )

    def _select(self, pl_module: nn.Module) -> list[tuple[str, nn.Parameter]]:
        named, seen = [], set()
        self._slices = {}
        for mname, module in pl_module.named_modules():
            if not self._matches(mname, module):
                continue
            for pname, param in module.named_parameters(prefix=mname):
                if id(param) in seen:
                    continue
                seen.add(id(param))
                name = _clean_name(pname)
                pieces: list[tuple[str, tuple[int, int] | None]] = [(name, None)]
                slices = flat_slices(name, param)  # an FSDP1 flat parameter: one row per original parameter
                if slices is not None:
                    pieces = list(slices)
                for part, where in pieces:
                    named.append((part, param))
                    if where is not None:
                        self._slices[part] = where
        return named

    def _part(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """This rank's part of the tensor ``name`` (its slice of an FSDP1 flat parameter)."""
        t = _local(t)
        where = self._slices.get(name)
        return t.reshape(-1)[where[0] : where[1]] if where is not None else t

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Finds the ``TrackerLogger`` (rank 0) and the parameters to record."""
        if stage != "fit":
            return
        self._logger = None
        if trainer.global_rank == 0:
            self._logger = find_logger(trainer)
            if self._logger is None:
                raise InvalidArgumentError(
                    "GradientMonitor found no logger that stores histograms in Trainer(logger=...); "
                    "add one, for example Trainer(logger=TrackerLogger(...), callbacks=[GradientMonitor()])."
                )
        self._sharded = is_sharded(trainer.strategy, pl_module)
        self._named = []
        self._pending.clear()

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Selects the parameters once the strategy has wrapped (and sharded) the model, and checks
        that every rank lays them out alike (else warns and records nothing)."""
        self._sharded = is_sharded(trainer.strategy, pl_module)
        self._split = False
        self._named = []
        if _is_deepspeed(trainer, pl_module):
            if trainer.global_rank == 0:
                log.warning(
                    "GradientMonitor records nothing under DeepSpeed: ZeRO keeps gradients (and, at stage 3, "
                    "weights) in its own partitioned buffers, where p.grad is None; use another strategy "
                    "(DDP, FSDP) to record histograms"
                )
            return
        self._named = self._select(pl_module)
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self._split = distributed and not self._sharded and torch.distributed.get_world_size() > 1
        if self._split:
            sizes = [(n, self._part(n, p).numel()) for n, p in self._named]
            self._owners = owners(sizes, torch.distributed.get_world_size())
        if (self._sharded or self._split) and distributed:
            if self._sharded:
                self._replicas = replicas(pl_module, self._named, trainer.world_size)
            self._collectives = collective_device()
            device = self._collectives or torch.device("cpu")
            keys = [(n, _local(p).device.type, str(p.dtype)) for n, p in self._named]
            if not layouts_agree(keys, device):
                self._named = []
                log.warning(
                    "GradientMonitor records nothing: rank %d lays out its parameters (names, devices, dtypes) "
                    "unlike another rank, and mismatched all-reduces would hang; give every rank the same "
                    "parameters, devices and dtypes (offloading, ignored modules and pipeline stages differ)",
                    trainer.global_rank,
                )

    def _share(self, kind: str, names: list[str], device: torch.device) -> torch.Tensor | None:
        """Per tensor, 1 / (ranks holding each element): sums over ranks then count every element once."""
        replicas = [self._replicas.get(n, 1) for n in names]
        if all(r == 1 for r in replicas):
            return None
        key = (kind, device, tuple(names))
        if key not in self._shares:
            self._shares[key] = _to_device([1.0 / r for r in replicas], torch.float64, device)
        return self._shares[key]

    def _compute(
        self, kind: str, names: list[str], xs: list[torch.Tensor], reduce: _Reducer, scale: torch.Tensor | None = None
    ) -> list[Part]:
        by_device: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, x in enumerate(xs):
            by_device.setdefault((x.device, x.dtype), []).append(i)
        parts = []
        for (device, _), idx in by_device.items():
            group = [xs[i] for i in idx]
            # the scale lives where the loss was computed; a part on another device (offloaded) reads it there
            own_scale = scale.to(device) if scale is not None and scale.device != device else scale
            if device.type == "cpu":
                stats, counts = _stats_loop(group, self.bins, reduce, own_scale)
            else:
                stats, counts = _stats_segmented(group, self.bins, reduce, own_scale)
            own = [names[i] for i in idx]
            share = self._share(kind, own, device) if reduce.active else None
            if reduce.active:
                both = torch.cat([stats[:, _NORM2:], counts], dim=1)
                both = reduce.sum(both * share[:, None] if share is not None else both)
                stats = torch.cat([stats[:, :_NORM2], both[:, : _NSTATS - _NORM2]], dim=1)
                counts = both[:, _NSTATS - _NORM2 :].round().long()
            parts.append(Part(kind, own, stats, counts, share))
        return parts

    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        """Captures gradients (already unscaled, not yet clipped) and weights before the update."""
        if trainer.global_step % self.every_n_steps or not self._named:
            return
        if not self._sharded and not self._split and trainer.global_rank != 0:
            return  # replicas without a process group to share the work: rank 0 records
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        named = [(n, p) for n, p in self._named if id(p) in in_optimizer]
        rows = [n for n, _ in named] if self._split else None
        if self._split:  # DDP: this rank's share; the rows of the others come with the all-reduce
            rank = torch.distributed.get_rank()
            named = [(n, p) for n, p in named if self._owners.get(n) == rank]
        reduce = _Reducer(self._sharded, self._collectives)
        capture = Capture(trainer.global_step, self.bins)
        updates: list[_Update] = []
        if "gradient" in self._kinds:
            # sharded: every rank must take part for every trained tensor, even without a local shard
            pairs = [
                (n, self._part(n, p.grad) if p.grad is not None else _local(p).new_zeros(0))
                for n, p in named
                if p.grad is not None or (self._sharded and p.requires_grad)
            ]
            grads = [g.detach() for _, g in pairs]
            scale = _loss_scale(trainer, optimizer)
            capture.parts += self._compute("gradient", [n for n, _ in pairs], grads, reduce, scale)
        if "parameter" in self._kinds:
            names = [n for n, _ in named]
            xs = [self._part(n, p).detach() for n, p in named]
            parts = self._compute("parameter", names, xs, reduce)
            position = {n: i for i, n in enumerate(names)}
            self._snapshots.start()
            for part in parts:
                updates.append((part, self._snapshots.take([xs[position[n]] for n in part.names])))
            capture.parts += parts
        if updates or rows is not None:
            self._pending.append((capture, updates, rows))
        else:
            self._submit(capture)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Measures the optimizer's update of the captured weights, then hands the capture over."""
        pending, self._pending = self._pending, []
        reduce = _Reducer(self._sharded, self._collectives)
        for capture, updates, rows in pending:
            for part, snapshot in updates:
                update2 = snapshot.update_norms2()
                part.update2 = reduce.sum(update2 * part.share if part.share is not None else update2)
            self._submit(self._gather(capture, rows) if rows is not None else capture)

    def _gather(self, capture: Capture, rows: list[str]) -> Capture:
        """The whole capture from every rank's share (DDP): one all-reduce of every row's results.

        Each row is filled by the one rank that owns its tensor and is zero elsewhere, so the
        sum is that rank's numbers exactly; a last column says the row holds a tensor (a
        gradient may be missing). Asynchronous on the device, like the kernels.
        """
        bins, kinds = self.bins, list(self._kinds)
        width = _NSTATS + bins + 3 + 2  # stats, counts, squared update norm, present
        device = self._collectives or (
            capture.parts[0].stats.device if capture.parts else _local(self._named[0][1]).device
        )
        table = torch.zeros(len(kinds) * len(rows), width, dtype=torch.float64, device=device)
        position = {n: i for i, n in enumerate(rows)}
        for part in capture.parts:
            base = kinds.index(part.kind) * len(rows)
            where = _to_device([base + position[n] for n in part.names], torch.int64, device)
            update2 = part.update2 if part.update2 is not None else part.stats.new_zeros(len(part.names))
            present = part.stats.new_ones(len(part.names), 1)
            own = torch.cat([part.stats, part.counts.double(), update2[:, None], present], dim=1)
            table.index_copy_(0, where, own.to(device, non_blocking=True))
        torch.distributed.all_reduce(table)
        whole = Capture(capture.step, bins)
        whole.time = capture.time
        for k, kind in enumerate(kinds):
            block = table[k * len(rows) : (k + 1) * len(rows)]
            part = Part(kind, list(rows), block[:, :_NSTATS], block[:, _NSTATS:-2].round().long(), None)
            part.update2 = block[:, -2] if kind == "parameter" else None
            part.present = block[:, -1] > 0.5
            whole.parts.append(part)
        return whole

    def _submit(self, capture: Capture) -> None:
        if self._logger is None:
            return  # a rank > 0 that only took part in the reductions
        capture.to_host()
        self._logger.log_histograms(capture)

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Drops references to the model and the logger."""
        self._pending.clear()
        self._named = []
        self._shares.clear()
        self._snapshots.clear()
        SEGMENT_IDS.clear()
        self._logger = None
