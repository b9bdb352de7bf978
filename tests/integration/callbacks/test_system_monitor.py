"""SystemMonitor: samples on its own thread through the run writer, at the Trainer's global step."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import psutil
import pytest
import torch

from lightning_tracker import Store, SystemMonitor, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError
from tests.helpers import lightning, tiny_model, trainer


def _slow(package: str) -> Any:
    class Slow(lightning(package).Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            time.sleep(0.02)

    return Slow()


def test_samples_land_in_the_run_from_a_background_thread(
    pl_package: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    threads: list[str] = []  # the thread of each call of the monitor's sampler
    add_sampler = logger.add_sampler

    def spying_add_sampler(name: str, sampler: Any, every_s: float) -> None:
        def spy() -> Any:
            threads.append(threading.current_thread().name)
            return sampler()

        add_sampler(name, spy, every_s)

    monkeypatch.setattr(logger, "add_sampler", spying_add_sampler)
    t = trainer(logger, pl_package, callbacks=[_slow(pl_package), SystemMonitor(interval_s=0.05, gpu=False)])
    t.fit(tiny_model(pl_package))
    assert threads and set(threads) == {"lightning-tracker-flush"}, "sampled on the flusher, off the training thread"
    sampled_in_fit = len(threads)
    logger.log_metrics({"after_fit": 1.0})  # reopens the run, as trainer.test() would
    time.sleep(0.3)  # six sampling intervals
    logger.finalize("success")
    assert len(threads) == sampled_in_fit, "stopped at fit end: a run reopened later samples nothing"
    system = Store(tmp_path).run(logger.version).metrics(wide=False)
    system = system[system["key"].str.startswith("system/")]
    keys = set(system["key"])
    assert {"system/cpu_percent", "system/ram_used_bytes", "system/ram_percent", "system/process_rss_bytes"} <= keys
    if psutil.net_io_counters() is not None:
        assert {"system/net_sent_bytes", "system/net_recv_bytes"} <= keys
    rows = system[system["key"] == "system/process_rss_bytes"]
    assert len(rows) >= 3
    assert rows["step"].is_monotonic_increasing and rows["step"].between(0, t.global_step).all()
    assert rows["value"].between(10e6, psutil.virtual_memory().total).all()
    cpu = system[system["key"] == "system/cpu_percent"]["value"]
    assert cpu.between(0, 100).all()
    assert not [k for k in keys if k.startswith("system/gpu")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU metrics need a CUDA GPU")
def test_gpu_metrics_through_nvml(pl_package: str, tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    t = trainer(logger, pl_package, callbacks=[_slow(pl_package), SystemMonitor(interval_s=0.05, gpu=True)])
    t.fit(tiny_model(pl_package))
    keys = set(Store(tmp_path).run(logger.version).metrics(wide=False)["key"])
    assert {"system/gpu0/utilization_percent", "system/gpu0/memory_used_bytes", "system/gpu0/temperature_c"} <= keys


def test_arguments_are_checked_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match=r"interval_s=0 must be a number of seconds >= 0.05"):
        SystemMonitor(interval_s=0)
    with pytest.raises(InvalidArgumentError, match=r"interval_s='10' must be a number"):
        SystemMonitor(interval_s="10")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"gpu='yes' must be None"):
        SystemMonitor(gpu="yes")  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py not installed
    with pytest.raises(MissingDependencyError, match=r"pip install nvidia-ml-py"):
        SystemMonitor(gpu=True)


def test_a_trainer_without_tracker_logger_is_told_what_to_add(pl_package: str) -> None:
    t = trainer(False, pl_package, max_steps=1, callbacks=[SystemMonitor(gpu=False)])
    with pytest.raises(InvalidArgumentError, match="SystemMonitor found no TrackerLogger"):
        t.fit(tiny_model(pl_package))


def test_the_first_cpu_sample_is_a_measurement_not_a_false_zero(tmp_path: Any) -> None:
    # psutil.cpu_percent() answers 0.0 on a thread's first call: the monitor once recorded that
    # 0 % as its first CPU sample, while the machine was busy
    stop = threading.Event()

    def spin() -> None:  # keeps a core busy, so every real measurement is well above 0 %
        while not stop.is_set():
            sum(range(1000))

    busy = threading.Thread(target=spin, daemon=True)
    busy.start()
    try:
        logger = TrackerLogger(tmp_path, name="p")
        trainer(logger, callbacks=[_slow("pytorch_lightning"), SystemMonitor(interval_s=0.05, gpu=False)]).fit(
            tiny_model()
        )
    finally:
        stop.set()
        busy.join()
    rows = Store(tmp_path).run(logger.version).metrics(wide=False)
    cpu = rows[rows["key"] == "system/cpu_percent"].sort_values("time")["value"]
    assert len(cpu) >= 2
    assert cpu.iloc[0] > 5.0, f"the first CPU sample is a real measurement, not psutil's first-call 0.0: {cpu.tolist()}"
    assert cpu.between(0, 100).all()
