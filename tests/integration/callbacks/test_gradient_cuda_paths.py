"""GradientMonitor's CUDA branches, proved on the CPU.

A real Trainer trains on the CPU; around the monitor's hooks (and only there) ``fake_cuda``
makes every tensor report ``cuda:0`` and records what would synchronise the host, so the
capture takes its CUDA code path, and the writer's flusher resolves it as it would on a GPU.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np
import pytest
import torch

from lightning_tracker import GradientMonitor, Store, TrackerLogger
from tests.helpers import lightning, tiny_model, trainer
from tests.integration.callbacks.fake_cuda import Trace, fake_cuda
from tests.integration.callbacks.test_gradient_monitor import _assert_matches, _Recorder


class Traced:
    """Callbacks that run the callbacks between them under ``fake_cuda``, all filling one trace.

    The waits are read at ``on_train_end``, before ``finalize`` resolves what is left on the
    calling thread (documented: ``flush()`` and ``finalize()`` wait for the device)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, package: str = "pytorch_lightning") -> None:
        self.trace = Trace(threading.get_ident())
        self.waits_in_training: list[str] | None = None
        stack, outer = contextlib.ExitStack(), self
        pl = lightning(package)

        class Enter(pl.Callback):  # type: ignore[name-defined,misc]
            def _enter(self, *args: Any) -> None:
                stack.enter_context(fake_cuda(monkeypatch, outer.trace))

            on_before_optimizer_step = on_train_batch_end = _enter

        class Exit(pl.Callback):  # type: ignore[name-defined,misc]
            def _exit(self, *args: Any) -> None:
                stack.close()

            on_before_optimizer_step = on_train_batch_end = _exit

            def on_train_end(self, *args: Any) -> None:
                outer.waits_in_training = outer.trace.training_waits()

        self.enter, self.exit = Enter(), Exit()

    def around(self, *callbacks: Any) -> list[Any]:
        return [self.enter, *callbacks, self.exit]

    def assert_clean(self) -> None:
        assert self.trace.events > 0, "the CUDA branch was never taken"
        assert self.waits_in_training == [], self.waits_in_training
        assert self.trace.errors == [] and self.trace.syncs == [], (self.trace.errors, self.trace.syncs)
        assert self.trace.uncovered() == []


def test_cuda_capture_never_synchronises_the_training_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    rec, traced = _Recorder(), Traced(monkeypatch)
    callbacks = [rec.callback("pytorch_lightning"), *traced.around(GradientMonitor(log="all", bins=16))]
    trainer(logger, max_epochs=1, callbacks=callbacks).fit(tiny_model())
    traced.assert_clean()
    _assert_matches(Store(tmp_path).run(logger.version).histograms(), rec, moved=1)


def test_a_float64_default_dtype_captures_on_the_device(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, float64_default: None
) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    rec, traced = _Recorder(), Traced(monkeypatch)
    model = tiny_model()  # float64 weights and gradients, binned in float64
    callbacks = [rec.callback("pytorch_lightning"), *traced.around(GradientMonitor(log="all", bins=16))]
    trainer(logger, max_epochs=1, callbacks=callbacks).fit(model)
    traced.assert_clean()
    assert model.net[0].weight.dtype == torch.float64
    _assert_matches(Store(tmp_path).run(logger.version).histograms(), rec, moved=1, dtype=np.float64)
