"""A training script the tests run in a subprocess (crash, DDP and outage tests).

Usage: python train.py SAVE_DIR OUT_DIR [--steps N] [--sleep S] [--flush F] [--strategy ddp|ddp_spawn]
Prints ``RUN <id>`` once the logger exists and ``STEP <n>`` after each training step.
Storage options come from $LIGHTNING_TRACKER_STORAGE_OPTIONS (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
warnings.filterwarnings("ignore")

import importlib  # noqa: E402

import torch  # noqa: E402

from lightning_tracker import TrackerLogger  # noqa: E402
from tests.helpers import loader, tiny_model_class  # noqa: E402

# the Lightning package to use comes first, so the classes below can be built on it
PACKAGE = sys.argv[sys.argv.index("--package") + 1] if "--package" in sys.argv else "pytorch_lightning"
pl = importlib.import_module(PACKAGE)


class Progress(pl.Callback):
    def __init__(self, sleep: float, out_dir: str) -> None:
        self.sleep = sleep
        self.out_dir = out_dir

    def on_train_end(self, trainer, pl_module) -> None:
        # runs inside every worker, ddp_spawn included
        logger = trainer.logger
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(
                {
                    "rank": trainer.global_rank,
                    "version": logger.version,
                    "log_dir": logger.log_dir,
                    "writer_opened": logger._writer is not None,
                    "pid": os.getpid(),
                },
                f,
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank == 0:
            print(f"STEP {trainer.global_step}", flush=True)
        if batch_idx == 0:  # every rank calls it; only rank 0's image is stored (rank zero only)
            import numpy as np

            shade = np.full((4, 4), 10 * trainer.global_rank, np.uint8)
            trainer.logger.log_image("rank", [shade], step=trainer.global_step, caption=[str(trainer.global_rank)])
        if self.sleep:
            time.sleep(self.sleep)


class Model(tiny_model_class(PACKAGE)):  # type: ignore[misc]
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def train_dataloader(self):
        return loader(8 * self.steps, 8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("save_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--flush", type=float, default=0.2)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--prefit", action="store_true", help="log hyperparameters before fit")
    parser.add_argument("--package", default="pytorch_lightning", help="pytorch_lightning or lightning.pytorch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = json.loads(os.environ.get("LIGHTNING_TRACKER_STORAGE_OPTIONS", "null"))
    logger = TrackerLogger(args.save_dir, name="p", flush_interval=args.flush, storage_options=options)
    devices = 2 if args.strategy.startswith("ddp") else 1
    trainer = pl.Trainer(
        logger=logger,
        max_epochs=1,
        accelerator="cpu",
        devices=devices,
        strategy=args.strategy,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[Progress(args.sleep, args.out_dir)],
    )
    if trainer.global_rank == 0:
        print(f"RUN {logger.version}", flush=True)
    if args.prefit:
        logger.log_hyperparams({"prefit": True})  # the run is open before the workers start
    trainer.fit(Model(args.steps))
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
