"""Device-to-host copies outside the histograms, proved on the CPU with ``fake_cuda``: a CUDA metric
scalar is copied into pinned memory behind an event (the writer waits on it, ordered after the
training thread's stream), and pinned image buffers are capped."""

from __future__ import annotations

import gc
import logging
from typing import Any

import numpy as np
import pytest
import torch

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.integration import media
from tests.integration.callbacks.fake_cuda import fake_cuda


def test_a_cuda_metric_scalar_is_copied_behind_an_event_and_read_by_the_writer(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    logger.log_metrics({"warmup": 1.0}, step=0)  # the run opens outside the trace
    loss = torch.tensor([0.25, 0.5]).sum()
    with fake_cuda() as trace:
        logger.log_metrics({"loss": loss}, step=1)
    logger.finalize("success")
    assert trace.syncs == [] and trace.errors == []
    assert [c.covered for c in trace.copies] == [True], "one copy to the host, covered by an event"
    assert trace.events == 1 and trace.spinning == 0
    assert Store(tmp_path).run(logger.version).metrics()["loss"].dropna().tolist() == [0.75]


def test_pinned_image_buffers_are_capped(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(media, "_PINNED", media._PinnedBytes(3 * 8 * 8))  # room for one 3x8x8 uint8 image
    logger = TrackerLogger(tmp_path, name="p", flush_interval=60)  # nothing read until finalize
    logger.log_metrics({"warmup": 1.0}, step=0)
    image = torch.rand(3, 8, 8)
    with caplog.at_level(logging.WARNING, logger="lightning_tracker"), fake_cuda() as trace:
        logger.log_image("a", [image], step=0)
        first = list(trace.syncs)
        logger.log_image("b", [image], step=0)
    assert first == [] and media._PINNED.held == 3 * 8 * 8
    assert trace.syncs == ["a blocking copy to the host"], "past the cap the copy is a blocking one"
    assert "of pinned memory already wait for the writer" in caplog.text
    logger.finalize("success")
    del trace  # it holds every host tensor it saw
    gc.collect()
    assert media._PINNED.held == 0, "the pinned bytes return when the buffer is freed"
    assert len(Store(tmp_path).run(logger.version).media()) == 2


def test_a_metric_scalar_on_another_accelerator_is_copied_behind_an_event_on_its_stream(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    logger.log_metrics({"warmup": 1.0}, step=0)
    loss = torch.tensor([0.25, 0.5]).sum()
    with fake_cuda(device_type="xpu") as trace:
        assert loss.device == torch.device("xpu", 0)
        logger.log_metrics({"loss": loss}, step=1)
    logger.finalize("success")
    assert trace.syncs == [] and trace.errors == []
    # before: a copy on the device, read by float() on the writer's own stream, ordered after nothing
    assert [(c.device.type, c.covered) for c in trace.copies] == [("xpu", True)]
    assert trace.events == 1 and trace.spinning == 0, "the writer polls the event instead of spinning"
    assert Store(tmp_path).run(logger.version).metrics()["loss"].dropna().tolist() == [0.75]


def test_an_image_on_another_accelerator_is_copied_without_blocking_the_training_thread(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    logger.log_metrics({"warmup": 1.0}, step=0)
    image = torch.linspace(0, 1, 3 * 4 * 4).reshape(3, 4, 4)
    expected = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    with fake_cuda(device_type="xpu") as trace:
        logger.log_image("a", [image], step=0)
    logger.finalize("success")
    assert trace.syncs == [] and trace.errors == [], "before: a blocking copy to the host"
    assert [(c.device.type, c.covered) for c in trace.copies] == [("xpu", True)] and trace.spinning == 0
    stored = Store(tmp_path).run(logger.version).read_media("a", 0)
    assert (np.asarray(stored) == expected).all()
