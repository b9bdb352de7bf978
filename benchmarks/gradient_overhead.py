"""What does watching gradients and weights cost? ``GradientMonitor`` beside the usual ways, in one run.

Model: a transformer encoder LM (default: 6 layers, d=256, 4 heads, ff 1024, vocabulary
1000: 5.25 M parameters in 75 tensors), batch 16 x 64 tokens, Adam, trained in a Lightning
Trainer. Configurations, each capturing gradients and weights at every optimizer step:

* no capture (``logger=False``): the reference step time;
* ``GradientMonitor(log="all")`` with ``TrackerLogger`` (ours: run store + TensorBoard);
* ``wandb.watch(log="all", log_freq=1)`` through ``WandbLogger(offline=True)`` (if installed);
* tensorboardX ``add_histogram`` per tensor;
* bare ``torch.histc`` per tensor (the floor: histograms and nothing else).

Each round runs every configuration once, in a shuffled order, for ``--steps`` measured
steps after ``--warmup`` steps; the overhead of a configuration is its median CPU time
per step (this process and its children, background threads included) minus that of the
no-capture run of the same round (a shared machine drifts between minutes far more than
within one; CPU time drifts less than wall time). The table gives the median over
rounds, plus the wall-time overhead and the CPU spent inside the capture callbacks. On
CUDA it also counts host synchronisations per step (``torch.cuda.set_sync_debug_mode("warn")``).

Usage: python benchmarks/gradient_overhead.py [--rounds 3] [--steps 10] [--device cpu]
GPU setup of issue 6: --device cuda --d-model 1024 --layers 8 --heads 16 --ff 4096 --vocab 16000
--batch 8 --seq 512 --precision bf16-mixed
"""

from __future__ import annotations

import argparse
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
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")

import psutil  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from lightning_tracker import GradientMonitor, TrackerLogger  # noqa: E402
from lightning_tracker.integration._compat import Callback, LightningModule, Trainer  # noqa: E402

_SYNC_MESSAGE = "synchronizing CUDA operation"


class LM(LightningModule):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.args = args
        self.embed = nn.Embedding(args.vocab, args.d_model)
        layer = nn.TransformerEncoderLayer(args.d_model, args.heads, args.ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, args.layers, enable_nested_tensor=False)
        self.head = nn.Linear(args.d_model, args.vocab)

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        (tokens,) = batch
        logits = self.head(self.encoder(self.embed(tokens[:, :-1])))
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=1e-4)

    def train_dataloader(self) -> DataLoader:
        a, g = self.args, torch.Generator().manual_seed(0)
        n = a.batch * (a.warmup + a.steps)
        return DataLoader(TensorDataset(torch.randint(0, a.vocab, (n, a.seq + 1), generator=g)), batch_size=a.batch)


def _cpu_seconds() -> float:
    # this process (all threads, background writers included) plus its children (wandb's service)
    total = time.process_time()
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class Timer(Callback):
    """Wall and CPU time of each training batch, optimizer step and every other callback included."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.times: list[tuple[float, float]] = []
        self._start = (0.0, 0.0)

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, *args: Any) -> None:
        self._sync()
        cpu = _cpu_seconds()
        self._start = (time.perf_counter(), cpu)

    def on_train_batch_end(self, *args: Any) -> None:
        self._sync()
        wall = time.perf_counter()
        self.times.append((wall - self._start[0], _cpu_seconds() - self._start[1]))


class HookClock:
    """CPU seconds of the training thread inside the capture callbacks' hooks (between a start and an end callback)."""

    def __init__(self) -> None:
        self.per_step: dict[int, float] = {}
        self._t = 0.0

    def callbacks(self) -> tuple[Callback, Callback]:
        clock = self

        class Start(Callback):
            def on_before_optimizer_step(self, *args: Any) -> None:
                clock._t = time.thread_time()

            def on_train_batch_end(self, *args: Any) -> None:
                clock._t = time.thread_time()

        class End(Callback):
            def on_before_optimizer_step(self, trainer: Any, *args: Any) -> None:
                clock._add(trainer.global_step)

            def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
                clock._add(trainer.global_step - 1)

        return Start(), End()

    def _add(self, step: int) -> None:
        self.per_step[step] = self.per_step.get(step, 0.0) + time.thread_time() - self._t


class HistcFloor(Callback):
    """The floor: one ``torch.histc`` per gradient and per weight, results dropped."""

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        for p in pl_module.parameters():
            torch.histc(p.grad.float(), 64)
            torch.histc(p.detach().float(), 64)


class TensorBoardXHistograms(Callback):
    """tensorboardX's ``add_histogram`` for every gradient and weight."""

    def __init__(self, log_dir: str) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(log_dir)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        step = trainer.global_step
        for name, p in pl_module.named_parameters():
            self.writer.add_histogram(f"gradients/{name}", p.grad, step)
            self.writer.add_histogram(f"parameters/{name}", p.detach(), step)

    def on_train_end(self, *args: Any) -> None:
        self.writer.close()


def _configs(root: str, wandb_ok: bool) -> dict[str, Callable[[nn.Module], tuple[Any, list[Callback]]]]:
    configs: dict[str, Callable[[nn.Module], tuple[Any, list[Callback]]]] = {
        "no capture": lambda model: (False, []),
        "TrackerLogger alone (no capture)": lambda model: (
            TrackerLogger(os.path.join(root, "alone"), name="bench"),
            [],
        ),
        'GradientMonitor(log="all") (ours)': lambda model: (
            TrackerLogger(os.path.join(root, "tracker"), name="bench"),
            [GradientMonitor(log="all")],
        ),
        "tensorboardX add_histogram per tensor": lambda model: (
            False,
            [TensorBoardXHistograms(tempfile.mkdtemp(dir=root))],
        ),
        "torch.histc per tensor (floor)": lambda model: (False, [HistcFloor()]),
    }
    if wandb_ok:

        def watched(model: nn.Module) -> tuple[Any, list[Callback]]:
            from pytorch_lightning.loggers import WandbLogger

            logger = WandbLogger(save_dir=tempfile.mkdtemp(dir=root), offline=True)
            logger.watch(model, log="all", log_freq=1)
            return logger, []

        configs['wandb.watch(log="all", log_freq=1), offline'] = watched
    return configs


def run_once(args: argparse.Namespace, make: Callable[[nn.Module], tuple[Any, list[Callback]]]) -> dict[str, float]:
    """Medians per step: wall and CPU seconds, CPU seconds inside capture hooks, host synchronisations (CUDA)."""
    torch.manual_seed(0)
    model = LM(args)
    logger, callbacks = make(model)
    timer = Timer(args.device)
    clock = HookClock()
    start, end = clock.callbacks()
    trainer = Trainer(
        logger=logger,
        max_epochs=1,
        accelerator=args.device,
        devices=1,
        precision=args.precision,
        callbacks=[start, *callbacks, end, timer],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
    )
    syncs = float("nan")
    if args.device == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                trainer.fit(model)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        syncs = sum(_SYNC_MESSAGE in str(w.message) for w in caught) / (args.warmup + args.steps)
    else:
        trainer.fit(model)
    if logger and hasattr(logger, "experiment") and "wandb" in type(logger).__module__:
        import wandb

        wandb.finish()
    measured = timer.times[args.warmup :]
    hooks = [clock.per_step.get(step, 0.0) for step in range(args.warmup, args.warmup + args.steps)]
    return {
        "wall": statistics.median(w for w, _ in measured),
        "cpu": statistics.median(c for _, c in measured),
        "hooks": statistics.median(hooks),
        "syncs": syncs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ff", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1: steadier on a shared machine)"
    )
    parser.add_argument(
        "--only",
        help="comma-separated words: run only the configurations whose names contain one "
        "(the no-capture reference and the floor always run)",
    )
    args = parser.parse_args()
    try:
        import wandb  # noqa: F401

        wandb_ok = True
    except ImportError:
        wandb_ok = False
    n_params = sum(p.numel() for p in LM(args).parameters())
    n_tensors = len(list(LM(args).parameters()))
    torch.set_num_threads(args.threads)
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as root:
        configs = _configs(root, wandb_ok)
        if args.only:
            words = [w.strip().lower() for w in args.only.split(",")] + ["no capture", "floor"]
            configs = {k: v for k, v in configs.items() if any(w in k.lower() for w in words)}
        for r in range(args.rounds):
            order = list(configs)
            random.Random(r).shuffle(order)
            times = {name: run_once(args, configs[name]) for name in order}
            base = times["no capture"]
            for name, m in times.items():
                results.setdefault(name, []).append(
                    {**m, "wall_over": m["wall"] - base["wall"], "cpu_over": m["cpu"] - base["cpu"]}
                )
            spent = ", ".join(
                f"{k}: {v['cpu'] * 1e3:.0f} ms CPU, {v['wall'] * 1e3:.0f} ms wall" for k, v in times.items()
            )
            print(f"round {r + 1}/{args.rounds}: {spent}", file=sys.stderr, flush=True)
    print(
        f"\n{n_params / 1e6:.2f} M parameters in {n_tensors} tensors, batch {args.batch}x{args.seq}, "
        f"{args.device}, {args.precision}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} torch thread(s) on {os.cpu_count()} cores; "
        f"median over {args.rounds} rounds of {args.steps} steps\n"
    )
    cuda = args.device == "cuda"

    def med(name: str, key: str) -> float:
        return statistics.median(row[key] for row in results[name])

    floor_name = "torch.histc per tensor (floor)"
    floor, floor_hooks, base = med(floor_name, "cpu_over"), med(floor_name, "hooks"), med("no capture", "cpu")
    print(
        "| configuration | CPU/step (ms) | CPU overhead (ms) | CPU overhead | × floor | in capture hooks (ms) "
        "| × floor | wall overhead (ms) |" + (" syncs/step |" if cuda else "")
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if cuda else ""))
    for name in sorted(results, key=lambda n: med(n, "cpu_over")):
        over, hooks = med(name, "cpu_over"), med(name, "hooks")
        none = name == "no capture"
        cells = [
            name,
            f"{med(name, 'cpu') * 1e3:.1f}",
            f"{over * 1e3:+.1f}",
            f"{over / base * 100:+.0f} %",
            "—" if none else f"{over / floor:.2f}",
            f"{hooks * 1e3:.1f}",
            "—" if none or hooks == 0 else f"{hooks / floor_hooks:.2f}",
            f"{med(name, 'wall_over') * 1e3:+.1f}",
        ]
        if cuda:
            cells.append(f"{med(name, 'syncs'):.0f}")
        print("| " + " | ".join(cells) + " |")
    print(
        "\nCPU: this process (all threads) and its children; 'in capture hooks': CPU inside the capture "
        "callbacks' on_before_optimizer_step and on_train_batch_end (wandb.watch works in backward hooks "
        "instead, so it shows 0 there)."
    )
    if not wandb_ok:
        print("\nwandb is not installed: wandb.watch was not measured (pip install wandb).")


if __name__ == "__main__":
    main()
