"""What does logging images cost the training thread? ``log_image`` beside W&B and TensorBoard, in one run.

Each call logs a batch of 16 images of 3×64×64 (float in [0, 1], smooth shapes with a
little noise, as sample predictions look; a new batch every call, so nothing is stored
twice). Measured per configuration, in one process, configurations interleaved:

- training-thread µs per call (median over the calls): what the training step waits for;
- CPU ms per call, all threads (process CPU time over the calls plus the final flush):
  the encoding our flusher does in the background is counted here;
- bytes on disk per image after the run is closed (our objects and index; W&B's files;
  TensorBoard's event file); W&B's files are decoded to check that it kept the images.

Configurations: ``TrackerLogger.log_image(key, list_of_16)`` (ours),
``WandbLogger(offline=True).log_image(key, list_of_16)``, TensorBoardLogger's
``experiment.add_image`` once per image, and its ``experiment.add_images`` once per batch.

Usage: python benchmarks/media_cost.py [--calls 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
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

import torch  # noqa: E402

from lightning_tracker import TrackerLogger  # noqa: E402

BATCH, SIDE = 16, 64
WANDB_MAX_PIXEL: list[int] = []  # the brightest pixel W&B stored: 255 if it kept the images


def batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` batches of smooth images: a few Gaussian blobs per channel plus 2 % noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, SIDE), torch.linspace(0, 1, SIDE), indexing="ij")
    out = []
    for _ in range(n):
        centres = torch.rand(BATCH, 3, 4, 2, generator=g)
        widths = 0.05 + 0.2 * torch.rand(BATCH, 3, 4, 1, 1, generator=g)
        d2 = (xx - centres[..., 0, None, None]) ** 2 + (yy - centres[..., 1, None, None]) ** 2
        img = torch.exp(-d2 / widths**2).sum(dim=2).clamp(0, 1)
        out.append((img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1))
    return out


def folder_bytes(root: str, skip: Callable[[str], bool] = lambda p: False) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not skip(path):
                total += os.path.getsize(path)
    return total


def timed_calls(log: Callable[[str, list[torch.Tensor], int], Any], data: list[torch.Tensor]) -> list[float]:
    """Seconds each ``log(key, images, step)`` call took, one call per batch."""
    times = []
    for step, batch in enumerate(data):
        images = list(batch)
        t0 = time.perf_counter()
        log("samples", images, step)
        times.append(time.perf_counter() - t0)
    return times


def run_ours(root: str, data: list[torch.Tensor]) -> tuple[list[float], Callable[[], None], Callable[[], int]]:
    logger = TrackerLogger(root, name="bench")  # TensorBoard events too, as by default
    logger.log_metrics({"x": 0.0}, step=0)  # the run is open before the timed calls
    times = timed_calls(lambda key, images, step: logger.log_image(key, images, step=step), data)

    def media_bytes() -> int:
        run_dir = os.path.join(root, "bench", logger.version)
        return folder_bytes(os.path.join(run_dir, "media-files")) + folder_bytes(os.path.join(run_dir, "media"))

    return times, lambda: logger.finalize("success"), media_bytes


def run_wandb(root: str, data: list[torch.Tensor]) -> tuple[list[float], Callable[[], None], Callable[[], int]]:
    from pytorch_lightning.loggers import WandbLogger

    logger = WandbLogger(offline=True, save_dir=root, project="bench")
    logger.experiment  # noqa: B018 - starts the run before the timed calls
    times = timed_calls(lambda key, images, step: logger.log_image(key, images, step=step), data)

    def close() -> None:
        import wandb

        wandb.finish()

    def media_bytes() -> int:
        import glob

        import numpy as np
        from PIL import Image

        files = glob.glob(os.path.join(root, "wandb", "*", "files", "media", "images", "*.png"))
        WANDB_MAX_PIXEL.append(int(max(np.asarray(Image.open(f)).max() for f in files[:16])))
        return folder_bytes(root, lambda p: "/media/" not in p.replace(os.sep, "/"))

    return times, close, media_bytes


def run_tb(
    root: str, data: list[torch.Tensor], per_image: bool
) -> tuple[list[float], Callable[[], None], Callable[[], int]]:
    from pytorch_lightning.loggers import TensorBoardLogger

    logger = TensorBoardLogger(root, name="bench")
    writer = logger.experiment
    times = []
    for step, batch in enumerate(data):
        t0 = time.perf_counter()
        if per_image:
            for i, image in enumerate(batch):
                writer.add_image(f"samples/{i}", image, step)
        else:
            writer.add_images("samples", batch, step)
        times.append(time.perf_counter() - t0)
    return times, lambda: logger.finalize("success"), lambda: folder_bytes(root)


CONFIGS: dict[str, Callable[..., Any]] = {
    "TrackerLogger.log_image (ours)": run_ours,
    "WandbLogger(offline=True).log_image": run_wandb,
    "TensorBoardLogger: add_image per image": lambda root, data: run_tb(root, data, per_image=True),
    "TensorBoardLogger: add_images per batch": lambda root, data: run_tb(root, data, per_image=False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    configs = dict(CONFIGS)
    if importlib.util.find_spec("wandb") is None:  # the bench extra: measured when installed, else left out
        del configs["WandbLogger(offline=True).log_image"]
        print('wandb is not installed: its row is left out (pip install -e ".[bench]")')
    results: dict[str, dict[str, list[float]]] = {name: {"us": [], "cpu": [], "bytes": []} for name in configs}
    for round_ in range(args.rounds):
        data = batches(args.calls, seed=round_)
        for name, fn in configs.items():
            with tempfile.TemporaryDirectory() as root:
                cpu0 = time.process_time()
                times, close, size = fn(root, data)
                close()
                cpu = time.process_time() - cpu0
                results[name]["us"].append(statistics.median(times) * 1e6)
                results[name]["cpu"].append(cpu / args.calls * 1e3)
                results[name]["bytes"].append(size() / (args.calls * BATCH))
    ours = statistics.median(results["TrackerLogger.log_image (ours)"]["us"])
    print(
        f"# log_image of {BATCH} images 3x{SIDE}x{SIDE} per call, {args.calls} calls x {args.rounds} rounds; "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, one torch thread"
    )
    print("| configuration | training thread µs/call | × ours | CPU ms/call, all threads | bytes on disk/image |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        us = statistics.median(r["us"])
        print(
            f"| {name} | {us:,.0f} | {us / ours:.1f}× | {statistics.median(r['cpu']):.1f} | "
            f"{statistics.median(r['bytes']):,.0f} |"
        )
    print(
        f"(raw pixels: {3 * SIDE * SIDE:,} bytes per image as uint8; our bytes are the media objects and index, "
        "besides which the TensorBoard event file holds a PNG copy)"
    )
    if WANDB_MAX_PIXEL and max(WANDB_MAX_PIXEL) < 128:
        print(
            f"W&B stored these float images with pixels 0..{max(WANDB_MAX_PIXEL)} (not scaled to 0..255): "
            "its bytes are those of nearly black images"
        )


if __name__ == "__main__":
    main()
