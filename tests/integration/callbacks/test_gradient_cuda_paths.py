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
from lightning_tracker.integration.callbacks import _snapshot
from tests.helpers import lightning, tiny_model, tiny_model_class, trainer
from tests.integration.callbacks.fake_cuda import Trace, fake_cuda
from tests.integration.callbacks.test_gradient_monitor import _assert_matches, _Recorder


class Traced:
    """Callbacks that run the callbacks between them under ``fake_cuda``, all filling one trace.

    The waits are read at ``on_train_end``, before ``finalize`` resolves what is left on the
    calling thread (documented: ``flush()`` and ``finalize()`` wait for the device)."""

    def __init__(self, package: str = "pytorch_lightning", device_type: str = "cuda") -> None:
        self.trace = Trace(threading.get_ident(), device=torch.device(device_type, 0))
        self.waits_in_training: list[str] | None = None
        stack, outer = contextlib.ExitStack(), self
        pl = lightning(package)

        class Enter(pl.Callback):  # type: ignore[name-defined,misc]
            def _enter(self, *args: Any) -> None:
                stack.enter_context(fake_cuda(outer.trace))

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
        assert self.trace.errors == [] and self.trace.syncs == [], (self.trace.errors, self.trace.syncs)
        assert self.trace.events > 0, "the device branch was never taken"
        assert self.waits_in_training == [], self.waits_in_training
        assert self.trace.uncovered() == []
        assert self.trace.spinning == 0, "a wait that spins: the flusher would keep a core busy waiting"


def test_cuda_capture_never_synchronises_the_training_thread(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    rec, traced = _Recorder(), Traced()
    callbacks = [rec.callback("pytorch_lightning"), *traced.around(GradientMonitor(log="all", bins=16))]
    trainer(logger, max_epochs=1, callbacks=callbacks).fit(tiny_model())
    traced.assert_clean()
    _assert_matches(Store(tmp_path).run(logger.version).histograms(), rec, moved=1)


def test_a_float64_default_dtype_captures_on_the_device(tmp_path: Any, float64_default: None) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    rec, traced = _Recorder(), Traced()
    model = tiny_model()  # float64 weights and gradients, binned in float64
    callbacks = [rec.callback("pytorch_lightning"), *traced.around(GradientMonitor(log="all", bins=16))]
    trainer(logger, max_epochs=1, callbacks=callbacks).fit(model)
    traced.assert_clean()
    assert model.net[0].weight.dtype == torch.float64
    _assert_matches(Store(tmp_path).run(logger.version).histograms(), rec, moved=1, dtype=np.float64)


def _amp_run(tmp_path: Any, name: str, fused: bool, callbacks: list[Any]) -> Any:
    """A real Trainer with Lightning's MixedPrecision plugin: float16 autocast and a GradScaler on the CPU
    (what precision="16-mixed" builds on a GPU; the CPU's own default would be bfloat16 without a scaler)."""
    from pytorch_lightning.plugins.precision import MixedPrecision

    class Model(tiny_model_class()):  # type: ignore[misc]
        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=0.01, fused=fused)

    torch.manual_seed(0)
    logger = TrackerLogger(tmp_path, name=name, flush_interval=0.05)
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=1024))
    trainer(logger, max_steps=4, plugins=[plugin], callbacks=callbacks).fit(Model())
    hist = Store(tmp_path).run(logger.version).histograms()
    return hist.set_index(["tensor", "step"]).sort_index()


def test_amp_with_a_fused_optimizer_records_unscaled_gradients(tmp_path: Any) -> None:
    traced = Traced()
    fused = _amp_run(tmp_path, "fused", True, traced.around(GradientMonitor(bins=16)))
    traced.assert_clean()
    unfused = _amp_run(tmp_path, "unfused", False, [GradientMonitor(bins=16)])  # unscaled by Lightning: the CPU path
    assert list(fused.index) == list(unfused.index) and len(fused) == 4 * 4
    first = fused.xs(0, level="step"), unfused.xs(0, level="step")
    assert list(first[0]["norm"] / first[1]["norm"]) == [1.0] * 4, "the loss scale (1024) left in the norms"
    for column in ("min", "max", "sum"):
        assert np.allclose(first[0][column], first[1][column], rtol=1e-6, atol=0), column
    for a, b in zip(first[0].itertuples(), first[1].itertuples(), strict=True):
        assert np.allclose(a.edges, b.edges, rtol=1e-6, atol=0) and np.array_equal(a.counts, b.counts)
    # later steps: fused and unfused Adam round differently, the scale never shows
    assert np.allclose(fused["norm"], unfused["norm"], rtol=1e-3)


def test_a_capture_on_another_accelerator_is_copied_behind_events_not_blocking(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    rec, traced = _Recorder(), Traced(device_type="xpu")
    callbacks = [rec.callback("pytorch_lightning"), *traced.around(GradientMonitor(log="all", bins=16))]
    trainer(logger, max_epochs=1, callbacks=callbacks).fit(tiny_model())
    traced.assert_clean()  # before: a blocking copy to the host per result, on the training thread
    _assert_matches(Store(tmp_path).run(logger.version).histograms(), rec, moved=1)


def test_the_weight_snapshot_stays_within_its_device_bound_and_update_ratios_stay_exact(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 bytes on the device: net.0.bias (32 B), net.2.weight (32 B) and net.2.bias (4 B) fit, net.0.weight
    # (128 B) waits in pinned host memory and comes back in chunks of 5 elements (the last one shorter)
    monkeypatch.setattr(_snapshot, "DEVICE_BYTES", 100)
    monkeypatch.setattr(_snapshot, "CHUNK", 5)
    held: list[tuple[int, int]] = []  # per capture: snapshot bytes on the device, in pinned host memory
    traced = Traced()
    monitor = GradientMonitor(log="all", bins=16)

    class Held(lightning("pytorch_lightning").Callback):  # type: ignore[misc]
        def on_before_optimizer_step(self, *args: Any) -> None:
            for _, snapshot in monitor._pending[-1][1]:
                device = [b for b in snapshot.before if b is not None and not traced.trace.is_host(b)]
                pinned = [h for h in snapshot.host.values() if traced.trace.is_pinned(h)]
                held.append((sum(b.nbytes for b in device), sum(h.nbytes for h in pinned)))

    logger = TrackerLogger(tmp_path, name="p", flush_interval=0.05)
    rec = _Recorder()
    callbacks = [rec.callback("pytorch_lightning"), traced.enter, monitor, Held(), traced.exit]
    trainer(logger, max_epochs=1, callbacks=callbacks).fit(tiny_model())
    traced.assert_clean()
    assert held == [(68, 128)] * 8, "before: every weight copied on the device (196 bytes)"
    hist = Store(tmp_path).run(logger.version).histograms()
    _assert_matches(hist, rec, moved=1)
    for row in hist[hist["kind"] == "parameter"].itertuples():  # the update in float32, measured in float64
        before, after = rec.before[row.step][row.tensor], rec.after[row.step][row.tensor]
        update = (after.astype(np.float32) - before.astype(np.float32)).astype(np.float64)
        assert row.update_ratio == pytest.approx(np.linalg.norm(update) / np.linalg.norm(before), rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a real CUDA device and pinned host memory")
def test_cuda_snapshot_past_its_device_bound_measures_updates_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_snapshot, "CHUNK", 1 << 20)
    torch.manual_seed(0)
    weights = [
        torch.randn(1000, 300, device="cuda"),
        torch.randn(7, device="cuda"),
        torch.randn(3_000_001, device="cuda"),
    ]
    before = [w.clone() for w in weights]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        snapshot = _snapshot.Snapshots(device_bytes=1_200_000).take(weights)  # the first on the device only
        for w in weights:  # the optimizer's step, queued right behind the copies
            w.add_(torch.randn_like(w), alpha=1e-3)
        norms2 = snapshot.update_norms2()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert sorted(snapshot.host) == [1, 2]
    expected = [float(torch.linalg.vector_norm(w - b).double() ** 2) for w, b in zip(weights, before, strict=True)]
    assert norms2.cpu().tolist() == pytest.approx(expected, rel=1e-6)
