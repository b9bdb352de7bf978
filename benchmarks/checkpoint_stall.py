"""How long does a checkpoint stop training? Local disk, straight to S3, and ours — in one run.

An MLP with a ~100 MB state (one 5000×5000 linear layer, SGD without momentum) saves a
checkpoint every 10 steps. The stall of a save is the time ``ModelCheckpoint`` spends in
``on_train_batch_end`` (Lightning's write plus every logger's ``after_save_checkpoint``):

- ``local disk``: ``ModelCheckpoint(dirpath=<temp folder>)``;
- ``ModelCheckpoint → s3://``: ``ModelCheckpoint(dirpath="s3://…")``, Lightning writes
  straight to the store;
- ``ours → s3://``: ``TrackerLogger(save_dir="s3://…", log_model=True)``: Lightning writes
  into the local spool, we upload in the background.

The store is moto's ``ThreadedMotoServer`` on 127.0.0.1, in a child process so its
request handling does not share this process's interpreter lock (a real store is another
machine). Each round runs every configuration once in a shuffled order; the table gives
medians over all saves. Then the upload throughput: ``CheckpointProducer.flush`` (sha256, the
manifest) with a ``Mirror`` round uploading meanwhile, as in a live run, then the round that
commits the manifest against a raw ``s3fs`` ``put_file`` of the same checkpoint,
interleaved. On a shared 2-core machine the numbers are noisy: compare within a run.

Usage: python benchmarks/checkpoint_stall.py [--rounds 3] [--steps 40] [--uploads 4]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import fsspec  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from benchmarks._moto import MotoProcess  # noqa: E402
from lightning_tracker import TrackerLogger  # noqa: E402
from lightning_tracker.integration._compat import LightningModule, Trainer  # noqa: E402
from lightning_tracker.storage import Storage  # noqa: E402
from lightning_tracker.writers.checkpoints import CheckpointProducer  # noqa: E402
from lightning_tracker.writers.mirror import Mirror  # noqa: E402

try:
    from pytorch_lightning.callbacks import ModelCheckpoint
except ImportError:
    from lightning.pytorch.callbacks import ModelCheckpoint  # type: ignore[no-redef]

WIDTH = 5000  # 25 M parameters: a 100 MB checkpoint


class MLP(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1))

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=1e-4)


class TimedCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that records how long each of its save points stops training."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stalls: list[float] = []

    def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        saved = self._last_global_step_saved
        started = time.perf_counter()
        super().on_train_batch_end(trainer, *args, **kwargs)
        if self._last_global_step_saved != saved:
            self.stalls.append(time.perf_counter() - started)


def _fit(steps: int, logger: Any, callback: TimedCheckpoint) -> None:
    data = TensorDataset(torch.randn(steps * 8, WIDTH), torch.randn(steps * 8, 1))
    trainer = Trainer(
        logger=logger,
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        log_every_n_steps=10,
        num_sanity_val_steps=0,
    )
    trainer.fit(MLP(), DataLoader(data, batch_size=8))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--uploads", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)

    server = MotoProcess()
    endpoint = server.endpoint
    options = {"key": "bench", "secret": "bench", "endpoint_url": endpoint}
    fsspec.config.conf["s3"] = options  # for ModelCheckpoint(dirpath="s3://…"), which takes no options
    s3 = fsspec.filesystem("s3", **options, skip_instance_cache=True)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.mkdir(bucket)
    tmp = tempfile.mkdtemp(prefix="ckpt-stall-")
    os.environ["LIGHTNING_TRACKER_SPOOL"] = os.path.join(tmp, "spool")

    def local(r: int) -> tuple[Any, TimedCheckpoint]:
        return False, TimedCheckpoint(dirpath=os.path.join(tmp, f"local-{r}"), every_n_train_steps=10, save_top_k=-1)

    def direct(r: int) -> tuple[Any, TimedCheckpoint]:
        return False, TimedCheckpoint(dirpath=f"s3://{bucket}/direct-{r}", every_n_train_steps=10, save_top_k=-1)

    def ours(r: int) -> tuple[Any, TimedCheckpoint]:
        logger = TrackerLogger(
            f"s3://{bucket}/ours",
            name="bench",
            storage_options=options,
            log_model=True,
            tensorboard=False,
            finalize_timeout=600,
        )
        return logger, TimedCheckpoint(every_n_train_steps=10, save_top_k=-1)

    def staging_only(r: int) -> tuple[Any, TimedCheckpoint]:
        logger = TrackerLogger(
            f"s3://{bucket}/offline",
            name="bench",
            storage_options=options,
            log_model=True,
            tensorboard=False,
            offline=True,
        )
        return logger, TimedCheckpoint(every_n_train_steps=10, save_top_k=-1)

    configs = {
        "ModelCheckpoint → local disk": local,
        "ModelCheckpoint → s3:// (moto)": direct,
        "ours: TrackerLogger(s3://, log_model=True)": ours,
        "ours, offline=True (staging only, no upload)": staging_only,
    }
    stalls: dict[str, list[float]] = {name: [] for name in configs}
    per_round: dict[str, list[float]] = {name: [] for name in configs}  # median stall of each round
    finalize: list[float] = []
    for r in range(args.rounds):
        order = list(configs)
        random.shuffle(order)
        for name in order:
            logger, callback = configs[name](r)
            started = time.perf_counter()
            _fit(args.steps, logger, callback)
            if name == "ours: TrackerLogger(s3://, log_model=True)":
                finalize.append(time.perf_counter() - started)
            stalls[name] += callback.stalls
            per_round[name].append(statistics.median(callback.stalls))
            print(f"round {r} {name}: {[round(s * 1000) for s in callback.stalls]} ms", file=sys.stderr)

    # upload throughput: the same checkpoint file, ours and a raw put, interleaved
    sample = os.path.join(tmp, "sample.ckpt")
    torch.save({"state_dict": MLP().state_dict(), "global_step": 0, "epoch": 0}, sample)
    size = os.path.getsize(sample)
    ours_s, raw_s = [], []
    storage = Storage(f"s3://{bucket}/tput", options)
    storage.listdir("warm-up")  # a live run's store connection is open long before its first checkpoint
    for i in range(args.uploads):
        for kind in random.sample(["ours", "raw"], 2):
            if kind == "raw":
                started = time.perf_counter()
                s3.put_file(sample, f"{bucket}/raw/{i}.ckpt")
                raw_s.append(time.perf_counter() - started)
                continue
            run_dir = os.path.join(tmp, "tput", str(i))
            os.makedirs(os.path.join(run_dir, "checkpoints"))  # where ModelCheckpoint writes in a run folder
            source = os.path.join(run_dir, "checkpoints", "sample.ckpt")
            shutil.copyfile(sample, source)
            mirror = Mirror(run_dir, storage, f"bench/{i}")
            rounds: list[threading.Thread] = []

            def wake(mirror: Mirror = mirror, rounds: list[threading.Thread] = rounds) -> None:
                rounds.append(threading.Thread(target=mirror.run_once))  # as the live run's mirror thread
                rounds[-1].start()

            producer = CheckpointProducer(run_dir, log_model="all", on_object=wake)
            producer.on_save(type("Callback", (), {"best_model_path": source, "monitor": None})())
            started = time.perf_counter()
            producer.flush()  # the hash runs while the mirror uploads
            for thread in rounds:
                thread.join()
            report = mirror.run_once()  # the manifest, once the hash is in it
            assert report.complete and storage.listdir(f"bench/{i}/models") == ["sample.ckpt"], report
            ours_s.append(time.perf_counter() - started)

    med = {name: statistics.median(v) for name, v in stalls.items()}
    base = med["ModelCheckpoint → local disk"]
    print(
        f"Checkpoint stall: {size / 1e6:.0f} MB state, a save every 10 steps, {args.steps} steps, "
        f"{args.rounds} rounds ({len(stalls['ModelCheckpoint → local disk'])} saves per configuration); "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs\n"
    )
    local_rounds = per_round["ModelCheckpoint → local disk"]
    print(
        "| configuration | median stall per save | vs local disk (all saves) "
        "| vs local disk (median of per-round ratios) |"
    )
    print("|---|---:|---:|---:|")
    for name, value in med.items():
        ratio = statistics.median(v / b for v, b in zip(per_round[name], local_rounds, strict=True))
        print(f"| {name} | {value * 1000:.0f} ms | {value / base:.2f}× | {ratio:.2f}× |")
    mb = size / 1e6
    print(f"\n| upload of the same {mb:.0f} MB file | median time | throughput | vs raw |")
    print("|---|---:|---:|---:|")
    raw_med, ours_med = statistics.median(raw_s), statistics.median(ours_s)
    print(f"| raw s3fs `put_file` | {raw_med:.2f} s | {mb / raw_med:.0f} MB/s | 100 % |")
    print(
        f"| ours (sha256 + upload + manifest) | {ours_med:.2f} s | {mb / ours_med:.0f} MB/s | "
        f"{100 * raw_med / ours_med:.0f} % |"
    )
    fit_s = statistics.median(finalize)
    print(f"\n(ours: whole fit including finalize's wait for the last uploads: median {fit_s:.1f} s)")
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
