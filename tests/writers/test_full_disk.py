"""A run's disk fills up: images, tables, histograms and the norms derived from them wait in memory, then land.

The disk is real: a small tmpfs mounted for the test (the tests run as root here), filled
with a file until the kernel says ENOSPC, then emptied again.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lightning_tracker import GradientMonitor, Store, TrackerLogger
from lightning_tracker.integration._compat import Callback
from tests.helpers import TinyModel, loader, trainer


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs of its own, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a real full disk needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(disk: Path) -> Path:
    """Writes a file until the disk is full; returns it (remove it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (65536, 512, 1):  # big blocks, then what is left of the last page
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
    finally:
        os.close(fd)
    return filler


class _DiskFullDuringTraining(Callback):
    """Fills the disk at the start of training, logs media each step (with a flush that fails), frees it at the end."""

    def __init__(self, disk: Path) -> None:
        self.disk = disk
        self.filler: Path | None = None
        self.rng = np.random.default_rng(0)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        trainer.logger.flush()
        self.filler = fill(self.disk)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        logger = trainer.logger
        logger.log_image("noise", [self.rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)], step=step)
        logger.log_table("scores", dataframe=pd.DataFrame({"step": [step], "score": [step / 10]}), step=step)
        logger.log_text("said", columns=["text"], data=[[f"step {step}"]], step=step)
        logger.flush()  # on a full disk: kept in memory, nothing raised into training

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        assert self.filler is not None
        os.remove(self.filler)  # space is back before finalize


def test_a_full_disk_keeps_media_histograms_and_norms_and_writes_them_when_space_is_back(
    small_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logger = TrackerLogger(str(small_disk), name="p", flush_interval=0.1, tensorboard=False)
    full = _DiskFullDuringTraining(small_disk)
    with caplog.at_level(logging.WARNING):
        trainer(logger, max_epochs=1, callbacks=[GradientMonitor(log="all"), full], default_root_dir=str(tmp_path)).fit(
            TinyModel(), loader(48, 8)
        )
    said = [r.getMessage() for r in caplog.records]
    assert any("No space left on device" in m for m in said), said
    assert not any("left out" in m for m in said), [m for m in said if "left out" in m]
    steps = list(range(1, 7))  # the global step after each of the 6 batches
    run = Store(str(small_disk)).run(logger.version)
    media = run.media()
    for key in ("noise", "scores", "said"):
        assert sorted(media[media["key"] == key]["step"]) == steps, key
    assert run.read_media("scores", step=3)["score"].tolist() == [0.3]
    assert run.read_media("said", step=6)["text"].tolist() == ["step 6"]
    assert np.asarray(run.read_media("noise", step=1)).shape == (64, 96, 3)
    histograms = run.histograms()
    assert sorted(set(histograms["step"])) == [s - 1 for s in steps]  # captured before the optimizer step
    assert set(histograms["kind"]) == {"gradient", "parameter"}
    norms = run.metrics()
    assert norms["gradients/norm_total"].notna().sum() == len(steps)
    assert norms["train/loss"].notna().sum() == len(steps)


def test_a_disk_that_stays_full_gives_media_up_within_the_bound_and_says_what_and_how_much(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lightning_tracker.writers import media

    monkeypatch.setattr(media, "MEDIA_MEMORY_BYTES", 2**20)
    logger = TrackerLogger(str(small_disk), name="p", flush_interval=300, tensorboard=False, finalize_timeout=5)
    logger.log_metrics({"a": 0.0}, step=0)
    logger.flush()
    fill(small_disk)
    rng = np.random.default_rng(0)
    producer = logger._writer._media  # type: ignore[union-attr]
    most = 0
    with caplog.at_level(logging.WARNING):
        for step in range(40):  # 40 images of 96 KB of noise: more than the 1 MB bound
            logger.log_image("noise", [rng.integers(0, 256, (128, 256, 3), dtype=np.uint8)], step=step)
            logger.flush()
            most = max(most, producer.held_bytes)
        logger.finalize("success")
    assert most <= 2**20, most
    said = [r.getMessage() for r in caplog.records]
    assert any("kept in memory and written when the disk has room again" in m for m in said), said
    final = [m for m in said if "media left out, by reason" in m]
    assert len(final) == 1, said
    left_out = producer.left_out()
    assert sum(n for kinds in left_out.values() for n, _ in kinds.values()) == 40  # the disk never took one
    assert "image" in final[0] and " MB)" in final[0]
