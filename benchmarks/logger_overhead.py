"""How much does logging cost? Our logger beside Lightning's own loggers, in one run.

(a) microseconds per ``log_metrics`` + ``save`` of 8 scalars (median over many calls),
    plus the CPU our background writer spends per call (it shares the cores);
(b) training-time overhead against ``logger=False`` for an MLP 784-256-256-10, batch 64,
    2,000 steps, ``log_every_n_steps=1``, CPU: each round runs every configuration once in
    a shuffled order and each run is compared with the ``logger=False`` run of the same
    round (this machine's speed drifts by 20 % between minutes, far more than the effect);
    the table gives the median over rounds of the wall-time ratio and of the CPU-time
    ratio (CPU time of the whole process, so the background writer's CPU is counted).

Usage: python benchmarks/logger_overhead.py [--steps 2000] [--repeats 5] [--calls 20000] [--threads N]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from lightning_tracker import TrackerLogger  # noqa: E402
from lightning_tracker.integration._compat import Callback, LightningModule, Logger, Trainer  # noqa: E402


class NullLogger(Logger):
    """A logger whose methods do nothing: Lightning's own cost once any logger is attached (the floor)."""

    @property
    def name(self) -> str:
        return "null"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: Any, step: Any = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def _loggers(root: str) -> dict[str, Callable[[], Any]]:
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    makers: dict[str, Callable[[], Any]] = {
        "null logger (Lightning's floor)": NullLogger,
        "TrackerLogger (ours)": lambda: TrackerLogger(os.path.join(root, "tracker"), name="bench"),
        "CSVLogger": lambda: CSVLogger(os.path.join(root, "csv"), name="bench"),
        "TensorBoardLogger": lambda: TensorBoardLogger(os.path.join(root, "tb"), name="bench"),
    }
    try:
        import wandb  # noqa: F401
        from pytorch_lightning.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        makers["WandbLogger (offline)"] = lambda: WandbLogger(save_dir=os.path.join(root, "wandb"), offline=True)
    except ImportError:
        pass
    return makers


# -- (a) per call -----------------------------------------------------------------------
def per_call(make: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median µs per log_metrics + save on the caller's thread, and CPU µs per call on all threads."""
    logger = make()
    metrics = {f"metric_{i}": 0.5 + i for i in range(8)}
    logger.log_metrics(metrics, step=0)  # open files outside the timing
    logger.save()
    samples = []
    gc.disable()
    cpu0 = time.process_time()
    for step in range(1, calls + 1):
        t0 = time.perf_counter_ns()
        logger.log_metrics(metrics, step=step)
        logger.save()
        samples.append(time.perf_counter_ns() - t0)
    flush = getattr(logger, "flush", None)
    if flush is not None:
        flush()  # count the writer's work for these calls
    cpu1 = time.process_time()
    gc.enable()
    logger.finalize("success")
    return statistics.median(samples) / 1000.0, (cpu1 - cpu0) / calls * 1e6


# -- (b) training overhead ----------------------------------------------------------------
class MLP(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Timer(Callback):
    def on_train_start(self, *_: Any) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def on_train_end(self, trainer: Any, *_: Any) -> None:
        self.elapsed = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0


def fit_time(make: Callable[[], Any] | None, data: DataLoader, steps: int) -> tuple[float, float]:
    """Wall and process CPU seconds of the training loop."""
    timer = Timer()
    trainer = Trainer(
        logger=make() if make else False,
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[timer],
    )
    torch.manual_seed(0)
    trainer.fit(MLP(), data)
    return timer.elapsed, timer.cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.steps * 64, 784, generator=g), torch.randint(0, 10, (args.steps * 64,), generator=g)
    data = DataLoader(TensorDataset(x, y), batch_size=64)
    with tempfile.TemporaryDirectory() as root:
        makers = _loggers(root)
        calls = {name: per_call(make, args.calls) for name, make in makers.items()}
        fit_time(None, data, 200)  # warm up
        configs: list[tuple[str, Callable[[], Any] | None]] = [("logger=False", None), *makers.items()]
        rounds: list[dict[str, tuple[float, float]]] = []
        rng = random.Random(0)
        for _ in range(args.repeats):
            rng.shuffle(configs)
            rounds.append({name: fit_time(make, data, args.steps) for name, make in configs})

    def ratio(name: str, i: int) -> float:
        return statistics.median(r[name][i] / r["logger=False"][i] - 1 for r in rounds) * 100

    base = statistics.median(r["logger=False"][0] for r in rounds)
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, python {platform.python_version()}"
    )
    print(
        f"(a) log_metrics + save of 8 scalars, median of {args.calls} calls; "
        f"(b) MLP 784-256-256-10, batch 64, {args.steps} steps, median over {args.repeats} shuffled rounds "
        "of the ratio to logger=False in the same round\n"
    )
    print("| logger | (a) µs/call | (a) CPU µs/call, all threads | (b) wall overhead | (b) CPU overhead |")
    print("|---|---:|---:|---:|---:|")
    print(f"| logger=False | — | — | {base:.2f} s | — |")
    for name in makers:
        us, cpu = calls[name]
        print(f"| {name} | {us:.1f} | {cpu:.1f} | {ratio(name, 0):+.1f} % | {ratio(name, 1):+.1f} % |")


if __name__ == "__main__":
    main()
