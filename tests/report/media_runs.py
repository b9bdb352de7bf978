"""Runs with media for the report tests: metrics through ``TrackerLogger``, media through the real writer.

The media are written by :class:`~lightning_tracker.writers.media.MediaProducer` (the
writer behind ``log_image``/``log_text``/``log_table``) into the run's folder of a local
store; :func:`copy_store` then puts a local store on memory:// or S3, file by file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from lightning_tracker import TrackerLogger
from lightning_tracker.storage import Storage
from lightning_tracker.writers.media import MediaItem, MediaProducer


class Shot:
    """A snapshot of items already in host memory, as the logger hands them to the writer."""

    def __init__(self, items: list[MediaItem]) -> None:
        self.items = items

    def resolve(self) -> list[MediaItem]:
        return self.items


def pixels(step: int, index: int, height: int = 8, width: int = 8, noise: bool = False) -> np.ndarray:
    """An image that differs for every step and index (so a new step shows new pictures)."""
    if noise:
        rng = np.random.default_rng(step * 1000 + index)
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = np.zeros((height, width, 3), np.uint8)
    out[..., 0] = (step * 37 + index * 11) % 256
    out[..., 1] = (np.arange(width) * 255 // max(width - 1, 1))[None, :]
    out[..., 2] = (np.arange(height) * 255 // max(height - 1, 1))[:, None]
    return out


def images(
    key: str, steps: Iterable[int], count: int, prefix: str, size: tuple[int, int] = (8, 8), noise: bool = False
) -> list[MediaItem]:
    """``count`` images per step, captioned ``"<prefix> s<step> #<index>"``."""
    return [
        MediaItem(key, step, time.time(), i, "image", f"{prefix} s{step} #{i}", pixels=pixels(step, i, *size, noise))
        for step in steps
        for i in range(count)
    ]


def table(key: str, step: int, columns: dict[str, list[Any]], kind: str = "table") -> MediaItem:
    return MediaItem(key, step, time.time(), 0, kind, None, frame=pa.table(columns))


def add_media(run_dir: str, items: list[MediaItem], writer: str = "media") -> None:
    """Writes ``items`` into a run's local folder: objects, then one index chunk."""
    producer = MediaProducer(run_dir, session=0, writer=writer)
    producer.add(Shot(items))
    producer.flush()


def write_run(save_dir: str, project: str, name: str, items: list[MediaItem], steps: int = 3) -> str:
    """A finished run with a metric and ``items``; returns its folder."""
    logger = TrackerLogger(save_dir, name=project, run_name=name, tensorboard=False)
    logger.log_hyperparams({"name": name})
    for step in range(steps):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.finalize("success")
    run_dir = os.path.join(save_dir, project, logger.version)
    if items:
        add_media(run_dir, items)
    return run_dir


def copy_store(local: str, url: str, options: dict[str, Any] | None = None) -> None:
    """Copies every file of the local store ``local`` to the store at ``url``."""
    target = Storage(url, options)
    for folder, _, files in os.walk(local):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                target.write_bytes(os.path.relpath(path, local).replace(os.sep, "/"), f.read())
