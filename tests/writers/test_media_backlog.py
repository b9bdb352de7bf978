"""An image backlog: metrics and the heartbeat never wait for it, its memory is bounded, finalize holds its timeout.

Images of random noise are the slowest to encode (nothing compresses), so logging a few
dozen of them builds a backlog of seconds on the media encoder thread.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import numpy as np
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.layout import MEDIA_FILES_DIR, RUN_FILE


def _noise(n: int, side: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]


def _objects(run_dir: str) -> int:
    folder = os.path.join(run_dir, MEDIA_FILES_DIR)
    return len([n for n in os.listdir(folder) if not n.startswith(".")]) if os.path.isdir(folder) else 0


def test_metrics_and_the_heartbeat_never_wait_behind_an_image_backlog(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.2, tensorboard=False)
    logger.log_metrics({"a": 0.0}, step=0)
    logger.flush()
    images = _noise(24, 448)  # each stored as an object and a preview
    logged_at = time.time()
    for step, image in enumerate(images):
        logger.log_image("noise", [image], step=step)
    logger.log_metrics({"a": 1.0}, step=1)
    run = Store(tmp_path).run(logger.version)
    while True:  # a heartbeat written after the images were logged, and the point logged after them
        with open(os.path.join(logger.log_dir, RUN_FILE)) as f:
            beat = json.load(f)["heartbeat"]
        if beat > logged_at and run.metrics()["step"].tolist() == [0, 1]:
            break
        time.sleep(0.02)
    objects = _objects(logger.log_dir)
    assert objects < 2 * len(images), "the heartbeat and the metrics waited until every image was encoded"
    logger.finalize("success")
    assert len(Store(tmp_path).run(logger.version).media()) == len(images)


def test_media_logged_faster_than_it_is_encoded_stays_within_its_memory_bound_counted(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lightning_tracker.writers import media

    bound = 4 * 2**20
    monkeypatch.setattr(media, "MEDIA_MEMORY_BYTES", bound)
    logger = TrackerLogger(tmp_path, name="p", flush_interval=300, tensorboard=False)
    logger.log_metrics({"a": 0.0}, step=0)
    producer = logger._writer._media  # type: ignore[union-attr]
    images = _noise(20, 600)  # about 1 MB each: logged in microseconds, encoded in a tenth of a second or more
    most = 0
    with caplog.at_level(logging.WARNING):
        for step, image in enumerate(images):
            logger.log_image("noise", [image], step=step)
            most = max(most, producer.held_bytes)
        logger.finalize("success")
    assert most <= bound, most
    left_out = producer.left_out()["queue full"]["image"][0]
    assert left_out > 0
    said = [r.getMessage() for r in caplog.records]
    assert any("is left out to keep media in memory within 4.0 MB" in m for m in said), said
    assert any(f"media left out, by reason: queue full: {left_out} images" in m for m in said), said
    stored = Store(tmp_path).run(logger.version).media()
    assert len(stored) == len(images) - left_out


def test_finalize_keeps_its_timeout_with_an_image_backlog_and_counts_what_it_left_out(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=300, tensorboard=False, finalize_timeout=1)
    logger.log_metrics({"a": 0.0}, step=0)
    images = _noise(30, 900)  # seconds of encoding each few images: far more than the timeout
    for step, image in enumerate(images):
        logger.log_image("noise", [image], step=step)
    with caplog.at_level(logging.WARNING):
        logger.finalize("success")
    said = [r.getMessage() for r in caplog.records if "media left out" in r.getMessage()]
    assert len(said) == 1 and "finalize_timeout=1 s ran out: " in said[0], said
    left_out = int(said[0].split("finalize_timeout=1 s ran out: ")[1].split(" ")[0])
    run = Store(tmp_path).run(logger.version)
    assert run.status == "finished"
    assert run.metrics()["a"].tolist() == [0.0]
    assert 0 < left_out and len(run.media()) == len(images) - left_out


def test_media_stored_but_not_indexed_when_time_runs_out_is_counted_under_that_reason_not_disk_full(
    tmp_path: Any,
) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=300, tensorboard=False)
    logger.log_metrics({"a": 0.0}, step=0)
    producer = logger._writer._media  # type: ignore[union-attr]
    for step, image in enumerate(_noise(3, 64)):
        logger.log_image("noise", [image], step=step)
    producer.encode()  # the objects are on disk; their index rows are the flusher's, which has not come round
    assert producer.pending
    producer.give_up("finalize_timeout=1 s ran out")  # what finalize does when its time ran out just then
    assert list(producer.left_out()) == ["finalize_timeout=1 s ran out"], producer.left_out()
    logger.finalize("success")
