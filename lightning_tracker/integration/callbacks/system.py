"""``SystemMonitor``: CPU, memory, disk, network and GPU metrics sampled in the background.

The monitor adds a sampler to the ``TrackerLogger`` (:meth:`TrackerLogger.add_sampler`),
which the run's flusher thread calls every ``interval_s`` seconds; samples are logged as
``system/<name>`` at the Trainer's ``global_step`` of the moment (each point also carries
its wall time), so they line up with training metrics and ``Run.system()`` reads them
back. The training thread never waits for a sample.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import psutil

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError
from lightning_tracker.integration._compat import Callback, override
from lightning_tracker.integration.callbacks._logger import find_logger

if TYPE_CHECKING:
    from lightning_tracker.integration._compat import LightningModule, Trainer

__all__ = ["SystemMonitor"]

log = logging.getLogger(__name__)

_MIN_INTERVAL_S = 0.05
_SAMPLER = "system"


def _load_nvml() -> Any:
    import pynvml  # from nvidia-ml-py, imported only when GPUs are recorded

    pynvml.nvmlInit()
    return pynvml


def _gpu_present() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _cpu_busy_total(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds of a ``psutil.cpu_times()`` reading, counted as psutil does."""
    # guest time is already inside user and nice on Linux; iowait is idle time there
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0), total


class _CpuMeter:
    """System CPU percent between two readings, with its own baseline.

    ``psutil.cpu_percent(interval=None)`` keeps its baseline per calling thread and answers
    0.0 when it has none or no time has passed: primed on the training thread and read on
    the flusher thread, its first value was a false 0 %. Here the baseline belongs to the
    meter, and a reading taken too soon after it gives no value rather than a wrong one.
    """

    def __init__(self, min_window_s: float) -> None:
        self.min_window_s = min_window_s
        self.since, self.base = time.monotonic(), _cpu_busy_total(psutil.cpu_times())

    def percent(self) -> float | None:
        now = time.monotonic()
        if now - self.since < self.min_window_s:
            return None  # too short to measure: a clock tick is 10 ms, a sample would be 0 or 100 %
        busy, total = _cpu_busy_total(psutil.cpu_times())
        if total <= self.base[1]:
            return None
        value = 100.0 * (busy - self.base[0]) / (total - self.base[1])
        self.since, self.base = now, (busy, total)
        return min(100.0, max(0.0, value))


class _Sampler:
    """Reads the counters; disk and network bytes count from the first sample."""

    def __init__(self, nvml: Any) -> None:
        self.process = psutil.Process()
        self.nvml = nvml
        self.gpus = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())] if nvml else []
        self.cpu = _CpuMeter(_MIN_INTERVAL_S)
        self.disk0, self.net0 = psutil.disk_io_counters(), psutil.net_io_counters()

    def sample(self) -> dict[str, float]:
        vm = psutil.virtual_memory()
        cpu = self.cpu.percent()
        out = {
            **({"system/cpu_percent": cpu} if cpu is not None else {}),
            "system/ram_used_bytes": float(vm.total - vm.available),
            "system/ram_percent": float(vm.percent),
            "system/process_rss_bytes": float(self.process.memory_info().rss),
        }
        disk, net = psutil.disk_io_counters(), psutil.net_io_counters()
        if disk is not None and self.disk0 is not None:
            out["system/disk_read_bytes"] = float(disk.read_bytes - self.disk0.read_bytes)
            out["system/disk_write_bytes"] = float(disk.write_bytes - self.disk0.write_bytes)
        if net is not None and self.net0 is not None:
            out["system/net_sent_bytes"] = float(net.bytes_sent - self.net0.bytes_sent)
            out["system/net_recv_bytes"] = float(net.bytes_recv - self.net0.bytes_recv)
        for i, handle in enumerate(self.gpus):
            out.update(self._gpu(i, handle))
        return out

    def _gpu(self, i: int, handle: Any) -> dict[str, float]:
        nvml, out = self.nvml, {}
        readers = {
            "utilization_percent": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
            "memory_used_bytes": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used,
            "memory_total_bytes": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total,
            "power_watts": lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
            "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
        }
        for name, read in readers.items():
            try:
                out[f"system/gpu{i}/{name}"] = float(read())
            except nvml.NVMLError:  # not supported on this card (power on some, for example)
                pass
        return out


class SystemMonitor(Callback):
    """Samples system metrics every ``interval_s`` seconds on its own thread, on rank 0.

    Keys: ``system/cpu_percent`` (the whole machine's, over the time since the sample
    before; the sample taken as fitting starts has none), ``system/ram_used_bytes``,
    ``system/ram_percent``, ``system/process_rss_bytes``, ``system/disk_read_bytes``, ``system/disk_write_bytes``,
    ``system/net_sent_bytes``, ``system/net_recv_bytes`` (bytes since fitting started) and,
    per GPU ``i`` (NVML index), ``system/gpu<i>/utilization_percent``,
    ``memory_used_bytes``, ``memory_total_bytes``, ``power_watts`` and ``temperature_c``.

    Args:
        interval_s: seconds between samples (at least 0.05).
        gpu: record GPUs through NVML: None records them when a CUDA GPU is present and
            ``nvidia-ml-py`` is installed; True requires both; False never.

    Raises:
        InvalidArgumentError: ``interval_s`` is not a positive number of seconds.
        MissingDependencyError: ``gpu=True`` and ``nvidia-ml-py`` is not installed.

    Example:
        >>> from lightning_tracker import TrackerLogger
        >>> from lightning_tracker.integration._compat import Trainer
        >>> logger = TrackerLogger("memory://doc-system-monitor", name="p")
        >>> trainer = Trainer(logger=logger, callbacks=[SystemMonitor(interval_s=1.0, gpu=False)])
        >>> SystemMonitor(interval_s=0)
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: interval_s=0 must be a number of seconds >= 0.05; ...
    """

    def __init__(self, interval_s: float = 10.0, gpu: bool | None = None) -> None:
        is_number = isinstance(interval_s, (int, float)) and not isinstance(interval_s, bool)
        if not is_number or not interval_s >= _MIN_INTERVAL_S:
            raise InvalidArgumentError(
                f"interval_s={interval_s!r} must be a number of seconds >= {_MIN_INTERVAL_S}; 10.0 is a good default."
            )
        if gpu not in (None, True, False):
            raise InvalidArgumentError(f"gpu={gpu!r} must be None (automatic), True or False.")
        if gpu:
            try:
                import pynvml  # noqa: F401 - only checks that it is installed
            except ImportError:
                raise MissingDependencyError(
                    "SystemMonitor(gpu=True) reads GPUs through NVML, which needs nvidia-ml-py; "
                    "install it with: pip install nvidia-ml-py"
                ) from None
        self.interval_s = float(interval_s)
        self.gpu = gpu
        self._logger: Any = None

    def _nvml(self) -> Any:
        if self.gpu is False or (self.gpu is None and not _gpu_present()):
            return None
        try:
            return _load_nvml()
        except ImportError:
            log.warning("GPU metrics are not recorded: install nvidia-ml-py (pip install nvidia-ml-py)")
        except Exception as err:  # NVML missing from the driver, for example (re-raised if gpu=True)
            if self.gpu:
                raise
            log.warning("GPU metrics are not recorded: NVML failed (%s: %s)", type(err).__name__, err)
        return None

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Adds the sampler to the run's flusher (rank 0): sampling never runs on the training thread."""
        if trainer.global_rank != 0:
            return
        logger = find_logger(trainer)
        if logger is None:
            raise InvalidArgumentError(
                "SystemMonitor found no TrackerLogger in Trainer(logger=...); add one, for example "
                "Trainer(logger=TrackerLogger(...), callbacks=[SystemMonitor()])."
            )
        sampler = _Sampler(self._nvml())

        def sample() -> tuple[dict[str, float], int]:
            return sampler.sample(), int(trainer.global_step)

        self._logger = logger
        logger.add_sampler(_SAMPLER, sample, self.interval_s)

    def _shutdown(self) -> None:
        logger, self._logger = self._logger, None
        if logger is not None:
            logger.remove_sampler(_SAMPLER)

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stops sampling."""
        self._shutdown()

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Stops sampling when training fails."""
        self._shutdown()

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Stops sampling (if fitting ended without ``on_fit_end``)."""
        self._shutdown()
