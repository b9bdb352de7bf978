"""GradientMonitor under torch's FSDP1 on gloo with two CPU processes: NO_SHARD and HYBRID_SHARD count
each element once, flat parameters (use_orig_params=False) become one row per original parameter
without padding, frozen parameters get no gradient rows, and ranks that lay out their parameters
differently get a warning instead of a hang.

Lightning's FSDPStrategy requires a GPU and its ModelParallelStrategy rejects FSDP1 modules, so the
script calls the monitor's hooks in the order Lightning's loop does, around a plain training loop.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from lightning_tracker import Store
from tests.helpers import REPO

_SCRIPT = r"""
import json, logging, os, sys, types, warnings
sys.path.insert(0, os.environ["REPO"])
warnings.filterwarnings("ignore")
import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, ShardingStrategy
from torch.distributed.device_mesh import init_device_mesh
from lightning_tracker import GradientMonitor, TrackerLogger
from tests.helpers import loader

mode, save_dir, out_dir = sys.argv[1:4]
torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
if mode == "no-shard":  # and a frozen parameter
    model[0].bias.requires_grad_(False)
if mode == "mismatch" and rank == 1:
    model[1].extra = torch.nn.Linear(2, 2)  # a parameter only this rank has (as with pipeline stages)
kw = dict(use_orig_params=mode != "full-flat", device_id=torch.device("cpu"))
if mode == "hybrid":  # two replica groups of one shard each
    kw.update(sharding_strategy=ShardingStrategy.HYBRID_SHARD, device_mesh=init_device_mesh("cpu", (2, 1)))
elif mode == "no-shard":
    kw.update(sharding_strategy=ShardingStrategy.NO_SHARD)
units = [FSDP(model[i], **kw) for i in (0, 2)]
model[0], model[2] = units
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)

def full_grads():  # the whole gradient of every original parameter, from every rank
    out = {}
    for prefix, unit in zip(("0", "2"), units):
        if kw["use_orig_params"]:  # NO_SHARD and HYBRID (2 x 1): every rank holds whole gradients
            for name, p in unit.named_parameters():
                if p.grad is not None:
                    out[prefix + "." + name.split(".")[-1]] = p.grad.double().tolist()
            continue
        flat = unit._flat_param
        parts = [torch.empty_like(flat.grad) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, flat.grad)
        whole = torch.cat(parts)[: sum(flat._numels)]
        for fqn, piece, shape in zip(flat._fqns, whole.split(list(flat._numels)), flat._shapes):
            out[prefix + "." + fqn] = piece.reshape(shape).double().tolist()
    return out

logger = TrackerLogger(save_dir, name="p", flush_interval=0.1) if rank == 0 else None
FSDPStrategy = type("FSDPStrategy", (), {})  # what Lightning's FSDP strategy looks like to the callback
trainer = types.SimpleNamespace(global_step=0, global_rank=rank, world_size=2, strategy=FSDPStrategy(),
                                loggers=[logger] if logger else [])
monitor = GradientMonitor(log="all", bins=8)
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
monitor.setup(trainer, model, "fit")
monitor.on_train_start(trainer, model)
# hybrid over a (2, 1) mesh: FSDP turns one-rank shard groups into NO_SHARD and then never reduces
# across the replica groups, so both ranks get the same data: the whole gradient is each rank's
data = list(loader(16, 4, seed=0 if mode == "hybrid" else rank))
for step, (x, y) in enumerate(data[:3]):
    trainer.global_step = step
    model(x).pow(2).mean().backward()
    grads = full_grads() if mode != "mismatch" else {}
    if rank == 0:
        with open(os.path.join(out_dir, f"grads{step}.json"), "w") as f:
            json.dump(grads, f)
    monitor.on_before_optimizer_step(trainer, model, optimizer)
    optimizer.step()
    monitor.on_train_batch_end(trainer, model, None, (x, y), step)
    optimizer.zero_grad()
if rank == 0:
    logger.log_metrics({"done": 1.0}, step=3)  # the run exists even where nothing was recorded
    logger.finalize("success")
    with open(os.path.join(out_dir, "run.json"), "w") as f:
        json.dump({"version": logger.version}, f)
dist.barrier()  # neither rank tears gloo down while the other still uses it
dist.destroy_process_group()
sys.stdout.flush(), sys.stderr.flush()
# everything is written and finalized: skip the interpreter's teardown, where a torch/gloo
# thread still joinable at exit aborts the process now and then ("terminate called without
# an active exception", SIGABRT) after the work is done
os._exit(0)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(mode: str, tmp_path: Any) -> tuple[Any, list[str]]:
    script, out = tmp_path / "fsdp1.py", tmp_path / "out"
    script.write_text(_SCRIPT)
    out.mkdir()
    port = str(_free_port())
    procs = []
    for rank in range(2):
        ranks = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
        env = {**os.environ, **ranks, "REPO": REPO, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), mode, str(tmp_path / "runs"), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 0, err[-3000:]
        errors.append(err)
    version = json.loads((out / "run.json").read_text())["version"]
    return Store(tmp_path / "runs").run(version).histograms(), errors


def _assert_whole(hist: Any, tmp_path: Any, names: list[str], weights: set[int]) -> None:
    grads = hist[hist["kind"] == "gradient"]
    assert sorted(set(grads["tensor"])) == names
    for row in grads.itertuples():
        full = np.asarray(json.loads((tmp_path / "out" / f"grads{row.step}.json").read_text())[row.tensor])
        x = full.astype(np.float32).astype(np.float64).reshape(-1)
        assert (row.numel, row.zeros) == (x.size, (x == 0).sum()), (row.tensor, row.numel, x.size)
        assert row.norm == pytest.approx(np.linalg.norm(x), rel=1e-5)
        assert row.sum == pytest.approx(x.sum(), rel=1e-4, abs=1e-6)
        assert row.counts.sum() == x.size
        edges = np.linspace(x.min(), x.max(), 9) if x.min() < x.max() else np.linspace(x.min() - 0.5, x.max() + 0.5, 9)
        assert np.array_equal(row.counts, np.histogram(x, bins=edges)[0]), row.tensor
    # each weight (those the optimizer updates) counted once, without padding
    assert set(hist[hist["kind"] == "parameter"]["numel"]) == weights


_ALL = ["0.bias", "0.weight", "2.bias", "2.weight"]


@pytest.mark.parametrize("mode", ["hybrid", "full-flat"])
def test_fsdp1_histograms_count_every_element_once(mode: str, tmp_path: Any) -> None:
    hist, _ = _run(mode, tmp_path)
    assert len(hist) == 3 * 2 * 4 and not hist.duplicated(["tensor", "kind", "step"]).any()
    _assert_whole(hist, tmp_path, _ALL, {8, 32, 3, 24})


def test_fsdp1_no_shard_counts_every_element_once_and_frozen_parameters_get_no_rows(tmp_path: Any) -> None:
    hist, _ = _run("no-shard", tmp_path)
    _assert_whole(hist, tmp_path, ["0.weight", "2.bias", "2.weight"], {32, 3, 24})


def test_ranks_laid_out_differently_are_warned_about_instead_of_hanging(tmp_path: Any) -> None:
    hist, errors = _run("mismatch", tmp_path)
    assert len(hist) == 0
    assert all("lays out its parameters" in err for err in errors), errors
