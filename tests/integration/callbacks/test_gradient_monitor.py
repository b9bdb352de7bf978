"""GradientMonitor: histograms checked against numpy.histogram, through a real Trainer, TensorBoard's
reader, the CLI, DDP with two CPU processes and FSDP2 sharding (fully_shard) on CPU with gloo."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_tracker import GradientMonitor, Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.integration.callbacks.gradients import tensor_histograms
from tests.helpers import REPO, lightning, tiny_model, trainer


def _reference(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    finite = x[np.isfinite(x)]
    return np.histogram(finite, bins=edges)[0]


def _range(x: np.ndarray) -> tuple[float, float]:
    # numpy.histogram's default range: the finite extremes, or [v - 0.5, v + 0.5] for one value
    lo, hi = float(x.min()), float(x.max())
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


@pytest.mark.parametrize("segmented", [False, True], ids=["per-tensor", "segmented"])
def test_histograms_match_numpy_and_count_nonfinite_apart(segmented: bool) -> None:
    g = torch.Generator().manual_seed(0)
    special = torch.randn(500, generator=g)
    special[[3, 10, 20]] = torch.tensor([math.nan, math.inf, -math.inf])
    special[[30, 31]] = 0.0
    tensors = [
        torch.randn(64, 33, generator=g) * 3 + 1,
        torch.rand(1000, generator=g).double(),
        special,
        torch.full((7,), 2.5),  # one value: numpy's [v - 0.5, v + 0.5]
        torch.tensor([math.nan, math.inf]),  # no finite value at all
        torch.randn(16, generator=g).to(torch.bfloat16),
    ]
    stats, counts = tensor_histograms(tensors, bins=32, segmented=segmented)
    for i, t in enumerate(tensors):
        x = t.float().numpy().astype(np.float64).reshape(-1)
        lo, hi, vmin, vmax, norm2, zeros, total, numel = stats[i].tolist()
        edges = np.linspace(lo, hi, 33)
        finite = x[np.isfinite(x)]
        if finite.size:
            assert (lo, hi) == (
                (finite.min(), finite.max())
                if finite.min() < finite.max()
                else (finite.min() - 0.5, finite.max() + 0.5)
            )
            assert (vmin, vmax) == (finite.min(), finite.max())
            assert np.array_equal(counts[i, :32].numpy(), _reference(x, edges)), f"tensor {i}"
        assert counts[i, :32].sum() == finite.size
        assert counts[i, 32:].tolist() == [np.isnan(x).sum(), np.isposinf(x).sum(), np.isneginf(x).sum()]
        assert zeros == (x == 0).sum() and numel == x.size
        assert total == pytest.approx(finite.sum(), rel=1e-5, abs=1e-5)
        if np.isfinite(x).all():
            assert math.sqrt(norm2) == pytest.approx(np.linalg.norm(x), rel=1e-5)
        else:
            assert math.isnan(norm2) or math.isinf(norm2)


def test_the_cpu_kernel_runs_on_one_thread_and_restores_the_thread_count() -> None:
    from lightning_tracker.integration.callbacks._kernels import one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread():
            inside = torch.get_num_threads()
        x = torch.randn(200_000, generator=torch.Generator().manual_seed(2))
        stats, counts = tensor_histograms([x], bins=64)
        assert torch.get_num_threads() == 2
        assert inside == (1 if "OpenMP" in torch.__config__.parallel_info() else 2)
        edges = np.linspace(stats[0, 0].item(), stats[0, 1].item(), 65)
        # float32 arithmetic may move a value lying on a bin edge: allow a couple in 200,000
        assert np.abs(counts[0, :64].numpy() - _reference(x.numpy().astype(np.float64), edges)).sum() <= 2
    finally:
        torch.set_num_threads(before)


def test_the_two_kernels_agree_on_large_tensors() -> None:
    x = torch.randn(300_000, generator=torch.Generator().manual_seed(1))
    a = tensor_histograms([x, x * 2], bins=64, segmented=False)
    b = tensor_histograms([x, x * 2], bins=64, segmented=True)
    assert torch.equal(a[0][:, :4], b[0][:, :4])
    # float32 rounding may move a value lying on a bin edge: allow a handful in 300,000
    assert (a[1] - b[1]).abs().sum() <= 4


class _Recorder:
    """Keeps what the optimizer saw, to compare with what the monitor stored."""

    def __init__(self) -> None:
        self.grads: dict[int, dict[str, np.ndarray]] = {}
        self.before: dict[int, dict[str, np.ndarray]] = {}
        self.after: dict[int, dict[str, np.ndarray]] = {}

    def callback(self, package: str) -> Any:
        rec = self

        class Recorder(lightning(package).Callback):
            def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
                step = trainer.global_step
                rec.grads[step] = {n: p.grad.double().cpu().numpy().copy() for n, p in pl_module.named_parameters()}
                rec.before[step] = {
                    n: p.detach().double().cpu().numpy().copy() for n, p in pl_module.named_parameters()
                }

            def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
                step = trainer.global_step - 1
                rec.after[step] = {n: p.detach().double().cpu().numpy().copy() for n, p in pl_module.named_parameters()}

        return Recorder()


def _assert_matches(hist: Any, rec: _Recorder, moved: int = 0, dtype: Any = np.float32) -> None:
    names = ["net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight"]
    assert sorted(set(hist["tensor"])) == names
    assert len(hist) == 2 * 4 * 8  # two kinds, four tensors, eight optimizer steps
    for row in hist.itertuples():
        source = rec.grads if row.kind == "gradient" else rec.before
        x = source[row.step][row.tensor].astype(dtype).astype(np.float64)
        assert len(row.edges) == 17 and (row.edges[0], row.edges[-1]) == _range(x)
        assert np.abs(row.counts - _reference(x, row.edges)).sum() <= 2 * moved
        assert row.norm == pytest.approx(np.linalg.norm(x), rel=1e-5)
        assert row.numel == x.size and row.nan == row.posinf == row.neginf == 0
        if row.kind == "parameter":
            update = rec.after[row.step][row.tensor] - rec.before[row.step][row.tensor]
            assert row.update_ratio == pytest.approx(np.linalg.norm(update) / np.linalg.norm(x), rel=1e-4)
        else:
            assert math.isnan(row.update_ratio)


def test_trainer_records_gradients_and_weights(pl_package: str, tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    rec = _Recorder()
    t = trainer(
        logger, pl_package, max_epochs=1, callbacks=[rec.callback(pl_package), GradientMonitor(log="all", bins=16)]
    )
    t.fit(tiny_model(pl_package))
    run = Store(tmp_path).run(logger.version)
    hist = run.histograms()
    _assert_matches(hist, rec)
    metrics = run.metrics()
    expected = [math.sqrt(sum(np.sum(g**2) for g in rec.grads[s].values())) for s in range(8)]
    assert list(metrics["gradients/norm_total"].dropna()) == pytest.approx(expected, rel=1e-5)
    assert {"gradients/norm/net.0", "parameters/norm/net.2", "parameters/update_ratio_total"} <= set(metrics)
    assert len(os.listdir(os.path.join(logger.log_dir, "histograms"))) == 1, "compacted at the end"

    acc = EventAccumulator(logger.log_dir, size_guidance={"histograms": 0})
    acc.Reload()
    events = acc.Histograms("gradients/net.0.weight")
    stored = hist[(hist["tensor"] == "net.0.weight") & (hist["kind"] == "gradient")]
    assert [e.step for e in events] == list(stored["step"])
    for event, row in zip(events, stored.itertuples(), strict=True):
        h = event.histogram_value
        assert list(h.bucket) == list(row.counts) and list(h.bucket_limit) == pytest.approx(list(row.edges[1:]))
        assert h.min == row.edges[0] and h.num == row.counts.sum()
    assert "parameters/net.2.bias" in acc.Tags()["histograms"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA capture path needs a CUDA GPU")
def test_cuda_capture_never_synchronises_the_host(pl_package: str, tmp_path: Any) -> None:
    class SyncDebug(lightning(pl_package).Callback):
        def __init__(self, mode: str | int) -> None:
            self.mode = mode

        def on_before_optimizer_step(self, *args: Any) -> None:
            torch.cuda.set_sync_debug_mode(self.mode)

        def on_train_batch_end(self, *args: Any) -> None:
            torch.cuda.set_sync_debug_mode(self.mode)

    logger = TrackerLogger(tmp_path, name="p")
    rec = _Recorder()  # reads tensors back itself, so it runs outside the strict window
    strict = [SyncDebug("error"), GradientMonitor(log="all", bins=16), SyncDebug(0)]
    t = trainer(logger, pl_package, accelerator="cuda", max_epochs=1, callbacks=[rec.callback(pl_package), *strict])
    try:
        t.fit(tiny_model(pl_package))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    # fused multiply-adds on the GPU may move a value lying within an ulp of a bin edge
    _assert_matches(Store(tmp_path).run(logger.version).histograms(), rec, moved=1)


def test_optimizer_steps_not_micro_batches_and_selection_by_module(pl_package: str, tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    monitor = GradientMonitor(every_n_steps=3, modules=["net.2"], bins=4)
    t = trainer(logger, pl_package, max_epochs=1, accumulate_grad_batches=2, callbacks=[monitor])
    t.fit(tiny_model(pl_package))  # 8 batches, 4 optimizer steps
    hist = Store(tmp_path).run(logger.version).histograms()
    assert sorted(set(hist["step"])) == [0, 3]
    assert sorted(set(hist["tensor"])) == ["net.2.bias", "net.2.weight"]
    assert set(hist["kind"]) == {"gradient"}
    by_type = TrackerLogger(tmp_path, name="q")
    t = trainer(by_type, pl_package, max_steps=1, callbacks=[GradientMonitor(modules=torch.nn.Linear)])
    t.fit(tiny_model(pl_package))
    assert Store(tmp_path).run(by_type.version).histograms("net.*.weight")["tensor"].tolist() == [
        "net.0.weight",
        "net.2.weight",
    ]


def test_nan_and_inf_gradients_are_counted_never_a_crash(pl_package: str, tmp_path: Any) -> None:
    class Poison(lightning(pl_package).Callback):
        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            if trainer.global_step == 1:
                grad = pl_module.net[0].weight.grad
                grad[0, :3] = torch.tensor([math.nan, math.inf, -math.inf])

    logger = TrackerLogger(tmp_path, name="p")
    t = trainer(logger, pl_package, max_steps=2, callbacks=[Poison(), GradientMonitor(bins=8)])
    t.fit(tiny_model(pl_package))
    hist = Store(tmp_path).run(logger.version).histograms("net.0.weight").set_index("step")
    assert (hist.loc[0, "nan"], hist.loc[1, "nan"], hist.loc[1, "posinf"], hist.loc[1, "neginf"]) == (0, 1, 1, 1)
    assert hist.loc[1, "counts"].sum() == 32 - 3 and np.isfinite(hist.loc[1, "edges"]).all()
    assert math.isnan(hist.loc[1, "norm"])


def test_arguments_are_checked_at_construction() -> None:
    with pytest.raises(InvalidArgumentError, match=r"every_n_steps=0 must be an integer >= 1"):
        GradientMonitor(every_n_steps=0)
    with pytest.raises(InvalidArgumentError, match=r"log='grads' must be one of 'gradients', 'parameters'"):
        GradientMonitor(log="grads")
    with pytest.raises(InvalidArgumentError, match=r"bins=0 must be an integer in \[1, 4096\]"):
        GradientMonitor(bins=0)
    with pytest.raises(InvalidArgumentError, match=r"modules=\[3\] must hold module name patterns"):
        GradientMonitor(modules=[3])


def test_a_trainer_without_tracker_logger_is_told_what_to_add(pl_package: str) -> None:
    t = trainer(False, pl_package, max_steps=1, callbacks=[GradientMonitor()])
    with pytest.raises(InvalidArgumentError, match="GradientMonitor found no logger that stores histograms"):
        t.fit(tiny_model(pl_package))


def test_hist_command_renders_one_png_heatmap_per_tensor(tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    import matplotlib.image

    logger = TrackerLogger(tmp_path / "runs", name="p")
    trainer(logger, max_epochs=1, callbacks=[GradientMonitor(log="all", bins=8)]).fit(tiny_model())
    out = tmp_path / "png"
    assert main(["hist", logger.version, "net.0.*", str(tmp_path / "runs"), "--out", str(out)]) == 0
    files = sorted(os.listdir(out))
    assert files == [
        "gradient-net.0.bias.png",
        "gradient-net.0.weight.png",
        "parameter-net.0.bias.png",
        "parameter-net.0.weight.png",
    ]
    image = matplotlib.image.imread(out / files[1])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert str(out / files[1]) in capsys.readouterr().out
    # a pattern is a query: matching nothing is status 1, said plainly with the tensors there are
    assert main(["hist", logger.version, "nothing*", str(tmp_path / "runs"), "--out", str(out)]) == 1
    assert "PATTERN='nothing*' matches no tensor" in capsys.readouterr().out


_DIST_SCRIPT = r"""
import json, os, sys, warnings
sys.path.insert(0, os.environ["REPO"])
warnings.filterwarnings("ignore")
import importlib
import torch
package, strategy, save_dir, out_dir = sys.argv[1:5]
pl = importlib.import_module(package)
from lightning_tracker import GradientMonitor, TrackerLogger
from tests.helpers import loader, tiny_model_class
from lightning_tracker.integration.callbacks import gradients

work = []  # elements this rank's kernels computed on, per call (the share of the capture work)
for kernel in ("_stats_loop", "_stats_segmented"):
    def counted(xs, *args, _kernel=getattr(gradients, kernel), **kwargs):
        work.append(sum(x.numel() for x in xs))
        return _kernel(xs, *args, **kwargs)
    setattr(gradients, kernel, counted)

class Model(tiny_model_class(package)):
    def configure_model(self):
        if strategy == "fsdp2":
            from torch.distributed.fsdp import fully_shard
            for layer in self.net:
                if isinstance(layer, torch.nn.Linear):
                    fully_shard(layer)
            fully_shard(self)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)
    def train_dataloader(self):
        return loader(48, 8)

class Reference(pl.Callback):  # the whole gradients (and weights, before and after), gathered from every rank
    def _dump(self, trainer, pl_module, what, step):
        full = {}
        for n, p in pl_module.named_parameters():
            t = p.grad if what == "grads" else p.detach()
            full[n] = (t.full_tensor() if hasattr(t, "full_tensor") else t).double().tolist()
        if trainer.global_rank == 0:
            with open(os.path.join(out_dir, f"{what}{step}.json"), "w") as f:
                json.dump(full, f)
    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self._dump(trainer, pl_module, "grads", trainer.global_step)
        self._dump(trainer, pl_module, "before", trainer.global_step)
    def on_train_batch_end(self, trainer, pl_module, *args):
        self._dump(trainer, pl_module, "after", trainer.global_step - 1)

torch.set_num_threads(1)
os.makedirs(out_dir, exist_ok=True)
logger = TrackerLogger(save_dir, name="p", flush_interval=0.2)
if strategy == "fsdp2":
    strat = pl.strategies.ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)
elif strategy == "replicated":  # a model-parallel strategy that leaves every tensor whole on each rank
    strat = pl.strategies.ModelParallelStrategy(data_parallel_size=1, tensor_parallel_size=2)
else:
    strat = "ddp"
log = "all" if strategy == "ddp-all" else "gradients"
strat = "ddp" if strategy == "ddp-all" else strat
t = pl.Trainer(logger=logger, max_epochs=1, accelerator="cpu", devices=2, strategy=strat, log_every_n_steps=1,
               enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
               callbacks=[Reference(), GradientMonitor(log=log, bins=8)])
pl.seed_everything(0)  # equal initial weights on every rank, also where nothing broadcasts them
t.fit(Model())
if t.global_rank == 0:
    with open(os.path.join(out_dir, "run.json"), "w") as f:
        json.dump({"version": logger.version, "sharded": t.callbacks[1]._sharded}, f)
with open(os.path.join(out_dir, f"work{t.global_rank}.json"), "w") as f:
    json.dump(work, f)
"""


def _train_distributed(strategy: str, tmp_path: Any) -> tuple[dict[str, Any], Any]:
    script = tmp_path / "train_dist.py"
    script.write_text(_DIST_SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "REPO": REPO}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run(
        [sys.executable, str(script), "pytorch_lightning", strategy, str(tmp_path / "runs"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    return info, Store(tmp_path / "runs").run(info["version"]).histograms()


def _full(tmp_path: Any, what: str, step: int, tensor: str) -> np.ndarray:
    full = np.asarray(json.loads((tmp_path / "out" / f"{what}{step}.json").read_text())[tensor])
    return full.astype(np.float32).astype(np.float64).reshape(-1)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_distributed_histograms_describe_the_whole_reduced_gradient(strategy: str, tmp_path: Any) -> None:
    info, hist = _train_distributed(strategy, tmp_path)
    assert info["sharded"] == (strategy == "fsdp2")
    assert [n for n in os.listdir(tmp_path / "runs" / "p") if not n.startswith(".")] == [info["version"]], (
        "one run, written by rank 0"
    )
    # 48 samples in batches of 8 over two ranks: 3 optimizer steps, one row per tensor and step
    assert len(hist) == 3 * 4 and not hist.duplicated(["tensor", "step"]).any()
    for row in hist.itertuples():
        x = _full(tmp_path, "grads", row.step, row.tensor)
        assert row.numel == x.size
        assert (row.edges[0], row.edges[-1]) == _range(x)
        assert np.array_equal(row.counts, _reference(x, row.edges)), (row.tensor, row.step)
        assert row.norm == pytest.approx(np.linalg.norm(x), rel=1e-5)


def test_ddp_ranks_share_the_capture_work_and_record_the_same_rows(tmp_path: Any) -> None:
    info, hist = _train_distributed("ddp-all", tmp_path)
    assert not info["sharded"]
    assert len(hist) == 3 * 2 * 4 and not hist.duplicated(["tensor", "kind", "step"]).any()
    for row in hist.itertuples():
        x = _full(tmp_path, "grads" if row.kind == "gradient" else "before", row.step, row.tensor)
        assert row.numel == x.size and row.zeros == (x == 0).sum()
        assert (row.edges[0], row.edges[-1]) == _range(x)
        assert np.array_equal(row.counts, _reference(x, row.edges)), (row.tensor, row.step)
        assert row.norm == pytest.approx(np.linalg.norm(x), rel=1e-5)
        if row.kind == "parameter":
            update = _full(tmp_path, "after", row.step, row.tensor) - x
            assert row.update_ratio == pytest.approx(np.linalg.norm(update) / np.linalg.norm(x), rel=1e-4)
    # the tiny model has 4 x 8 + 8 + 8 x 1 + 1 = 49 elements, weights and gradients alike: each rank
    # takes a share of every capture (rank 0 took all 98 elements per step before)
    work = [json.loads((tmp_path / "out" / f"work{rank}.json").read_text()) for rank in (0, 1)]
    per_step = [sum(w) / 3 for w in work]
    assert sum(per_step) == 2 * 49 and min(per_step) > 0, per_step
    assert max(per_step) <= 2 * 49 * 0.75, f"one rank does most of the work: {per_step}"
