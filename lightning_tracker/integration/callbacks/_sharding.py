"""Where the elements of each recorded tensor live across ranks, for ``GradientMonitor``.

* Sharded parameters: FSDP2's ``DTensor`` (replicated along some mesh dimensions under
  HSDP), FSDP1's views of a rank's flat shard (``use_orig_params=True``) and FSDP1's
  flat parameters themselves (``use_orig_params=False``), cut here into the original
  parameters' slices of this rank's shard, padding left out.
* Replicas: on how many ranks each element of a rank's local part also lives (FSDP1
  ``NO_SHARD`` keeps a whole copy on every rank of its group, ``HYBRID_SHARD`` one per
  replica group); sums over ranks divide by it.
* Owners: under DDP every rank holds the same reduced gradients and the same weights, so
  each tensor is computed by one rank (:func:`owners`, balanced by size) and the small
  results are summed across ranks, instead of rank 0 doing all the work while the others
  wait at the next all-reduce.
* One layout for every rank: the all-reduces of a capture pair up only if every rank
  groups the same tensors by the same dtype and device, which :func:`layouts_agree` checks
  once, at train start.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import torch
from torch import nn

__all__ = ["collective_device", "flat_slices", "is_sharded", "layouts_agree", "owners", "replicas"]

_NO_SHARD = "NO_SHARD"
_HYBRID = ("HYBRID_SHARD", "_HYBRID_SHARD_ZERO2")


def _fsdp1_units(module: nn.Module) -> list[Any]:
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # a torch without distributed support
        return []
    return [m for m in module.modules() if isinstance(m, FullyShardedDataParallel)]


def is_sharded(strategy: Any, module: nn.Module) -> bool:
    """Whether the parameters of ``module`` are split across ranks (each rank computes on its part)."""
    name = type(strategy).__name__
    if "FSDP" in name or "ModelParallel" in name:
        return True
    return bool(_fsdp1_units(module)) or any(hasattr(p, "to_local") for p in module.parameters())


def _unit_replicas(unit: Any, world: int) -> int:
    strategy = getattr(getattr(unit, "sharding_strategy", None), "name", "FULL_SHARD")
    group = getattr(unit, "process_group", None)  # the ranks this unit shards over
    size = group.size() if group is not None else world
    in_group = size if strategy == _NO_SHARD else 1  # NO_SHARD: a whole copy on every rank of the group
    # hybrid: one copy per replica group (FSDP turns a hybrid unit of one-rank shard groups into NO_SHARD)
    inter = getattr(unit, "_inter_node_pg", None)
    across = inter.size() if inter is not None else world // size if strategy in _HYBRID else 1
    return in_group * across


def replicas(module: nn.Module, named: list[tuple[str, nn.Parameter]], world: int) -> dict[str, int]:
    """Per recorded name, on how many ranks each element of this rank's part also lives."""
    fsdp1: dict[int, int] = {}
    for unit in _fsdp1_units(module):
        flat = getattr(unit, "_flat_param", None)
        if flat is None:
            continue
        count = _unit_replicas(unit, world)
        fsdp1[id(flat)] = count
        for p in getattr(flat, "_params", None) or ():  # use_orig_params=True: views of the flat shard
            fsdp1[id(p)] = count
    out = {}
    for name, p in named:
        placements, mesh = getattr(p, "placements", None), getattr(p, "device_mesh", None)
        if placements is not None and mesh is not None:  # a DTensor: replicated along some mesh dimensions
            out[name] = math.prod(mesh.size(i) for i, pl in enumerate(placements) if pl.is_replicate())
        elif id(p) in fsdp1:
            out[name] = fsdp1[id(p)]
        else:  # left whole on every rank by a model-parallel strategy
            out[name] = world
    return out


def flat_slices(name: str, p: nn.Parameter) -> list[tuple[str, tuple[int, int]]] | None:
    """An FSDP1 flat parameter (``use_orig_params=False``) as the original parameters' slices of
    this rank's shard: ``[(name, (start, stop))]`` (empty slices for parameters outside the
    shard, padding left out); None for any other parameter.

    ``name`` is the flat parameter's name (``<unit>._flat_param``, wrappers already cut).
    """
    infos, fqns = getattr(p, "_shard_param_infos", None), getattr(p, "_fqns", None)
    if infos is None or fqns is None:
        return None
    prefix = name.rsplit(".", 1)[0] + "." if "." in name else ""
    out = []
    for fqn, info in zip(fqns, infos, strict=True):
        start = info.offset_in_shard if info.in_shard else 0
        stop = start + info.numel_in_shard if info.in_shard else 0
        out.append((prefix + fqn, (start, stop)))
    return out


def layouts_agree(keys: list[tuple[str, str, str]], device: torch.device) -> bool:
    """Whether every rank has the same ``(name, device type, dtype)`` list: one all-reduce, at train start.

    The captures' all-reduces pair up group by group; ranks that group differently (low
    precision gradients on some, offloaded or ignored modules, pipeline stages) would pair
    mismatched collectives and hang or sum garbage.
    """
    digest = zlib.crc32(repr(keys).encode())
    both = torch.tensor([digest, -digest], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX)
    return both.tolist() == [digest, -digest]


def collective_device() -> torch.device | None:
    """The device collectives need when it is not the tensors' own: NCCL reduces CUDA tensors only
    (a CPU part, as under FSDP's CPU offload, is reduced through the current CUDA device)."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return None


def owners(sizes: list[tuple[str, int]], world: int) -> dict[str, int]:
    """Which rank computes each tensor of a replicated model: the largest first, each to the
    least loaded rank (the same answer on every rank, which holds the same list).

    Example:
        >>> owners([("w", 32), ("b", 8), ("v", 8), ("c", 1)], world=2)
        {'w': 0, 'b': 1, 'v': 1, 'c': 1}
    """
    loads = [0] * world
    out = {}
    for name, size in sorted(sizes, key=lambda pair: (-pair[1], pair[0])):
        rank = min(range(world), key=lambda r: (loads[r], r))
        out[name] = rank
        loads[rank] += size
    return {name: out[name] for name, _ in sizes}
