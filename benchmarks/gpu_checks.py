"""The GPU checks of issue 21, prepared for the first session that has a CUDA device: run, record.

Runs, in a few minutes, on the 133 M-parameter setup of issue 6 (transformer LM: d=1024,
8 layers, 16 heads, ff 4096, vocabulary 16,000, batch 8 x 512 tokens, bf16-mixed, Adam):

1. ``peak``: peak GPU memory of 3 training steps without and with ``GradientMonitor(log="all")``
   (``torch.cuda.max_memory_allocated``), and host synchronisations inside the monitor's
   hooks, counted by ``torch.cuda.set_sync_debug_mode("warn")`` (must be 0);
2. ``overhead``: ``benchmarks/gradient_overhead.py`` on that setup: step-time overhead of
   ``GradientMonitor`` against bare ``torch.histc`` per tensor and ``wandb.watch`` (if
   installed), syncs per step;
3. ``snapshot``: the weight snapshot for update norms on 133 M float32 parameters (the
   setup's size) kept on the device (its default bound, 1 GiB) against held in pinned host
   memory past a bound of 0 (brought back chunk by chunk): extra peak memory, time of
   the copy and of the update norms, and their largest relative difference (must be ~0);
4. ``tests``: the CUDA tests (``pytest -k cuda``) of the gradient and media paths, which
   skip without a GPU.

Writes ``gpu_checks.json`` and the raw outputs into ``--out`` (default: ``$OUT`` or a temp
folder) and prints a summary. Without CUDA it changes nothing and exits with status 2
and a one-line message, so a CPU machine can run it safely.

Usage: python benchmarks/gpu_checks.py [--out DIR] [--skip peak,overhead,snapshot,tests] [--timeout 420]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

NO_CUDA = 2  # the exit status without a CUDA device
SETUP = ["--d-model", "1024", "--layers", "8", "--heads", "16", "--ff", "4096", "--vocab", "16000",
         "--batch", "8", "--seq", "512", "--precision", "bf16-mixed"]  # fmt: skip
CUDA_TESTS = [
    "tests/integration/callbacks/test_gradient_monitor.py",
    "tests/integration/callbacks/test_gradient_cuda_paths.py",
    "tests/writers/test_media.py",
]


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False where torch cannot even be imported)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _peak(steps: int = 3) -> dict[str, Any]:
    """Peak memory without and with the monitor, and syncs inside its hooks."""
    import torch

    from benchmarks.gradient_overhead import LM
    from lightning_tracker import GradientMonitor, TrackerLogger
    from lightning_tracker.integration._compat import Callback, Trainer

    syncs: list[str] = []

    class Strict(Callback):  # sync debug mode "warn" only around the monitor's hooks
        def __init__(self, on: bool) -> None:
            self.on = on

        def _set(self, *args: Any) -> None:
            torch.cuda.set_sync_debug_mode("warn" if self.on else 0)

        on_before_optimizer_step = on_train_batch_end = _set

    parser = argparse.ArgumentParser()
    for flag in SETUP[::2]:
        parser.add_argument(flag, type=str)
    args = parser.parse_args(SETUP)
    for name in ("d_model", "layers", "heads", "ff", "vocab", "batch", "seq"):
        setattr(args, name, int(getattr(args, name)))
    args.warmup, args.steps = 0, steps
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as root:
        for label, monitored in (("without", False), ("with", True)):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            logger = TrackerLogger(root, name="peak") if monitored else False
            callbacks = [Strict(True), GradientMonitor(log="all"), Strict(False)] if monitored else []
            quiet = {"enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False}
            trainer = Trainer(
                logger=logger,
                accelerator="cuda",
                devices=1,
                precision=args.precision,
                max_steps=steps,
                callbacks=callbacks,
                **quiet,
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                trainer.fit(LM(args))
            torch.cuda.set_sync_debug_mode(0)
            syncs += [str(w.message) for w in caught if "synchronizing CUDA operation" in str(w.message)]
            out[f"peak_bytes_{label}_monitor"] = torch.cuda.max_memory_allocated()
            out["parameters"] = sum(p.numel() for p in trainer.lightning_module.parameters())
    out["extra_peak_bytes"] = out["peak_bytes_with_monitor"] - out["peak_bytes_without_monitor"]
    out["syncs_in_monitor_hooks"] = len(syncs)
    out["sync_examples"] = syncs[:5]
    return out


def _snapshot_cost(parameters: int = 133_000_000, tensors: int = 64) -> dict[str, Any]:
    """Update norms from a snapshot kept on the device and from one held in pinned host memory."""
    import torch

    from lightning_tracker.integration.callbacks._snapshot import Snapshots

    torch.manual_seed(0)
    weights = [torch.randn(parameters // tensors, device="cuda") for _ in range(tensors)]
    out: dict[str, Any] = {"parameters": sum(w.numel() for w in weights)}
    norms = {}
    for label, bound in (("device", None), ("host", 0)):
        snapshots = Snapshots(device_bytes=bound)
        for _ in range(2):  # the first round allocates (pinned memory, caching allocator)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            start = time.perf_counter()
            snapshot = snapshots.take(weights)
            torch.cuda.synchronize()
            taken = time.perf_counter()
            torch._foreach_add_(weights, 1e-3)  # the optimizer's step
            update2 = snapshot.update_norms2()
            torch.cuda.synchronize()
            done = time.perf_counter()
            norms[label] = update2.cpu()
            out[f"{label}_extra_peak_bytes"] = torch.cuda.max_memory_allocated() - base
            out[f"{label}_take_ms"] = round(1000 * (taken - start), 2)
            out[f"{label}_update_norms_ms"] = round(1000 * (done - taken), 2)
            del snapshot
    out["largest_relative_difference"] = float(((norms["host"] - norms["device"]).abs() / norms["device"]).max())
    return out


def _run(cmd: list[str], timeout: float, log: str) -> dict[str, Any]:
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        status, output = "timeout", f"{err.stdout or ''}{err.stderr or ''}"
    with open(log, "w") as f:
        f.write(output if isinstance(output, str) else output.decode(errors="replace"))
    return {"command": " ".join(cmd), "status": status, "seconds": round(time.monotonic() - start, 1), "log": log}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or None, help="folder for the results")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to leave out: peak, overhead, snapshot, tests"
    )
    parser.add_argument("--timeout", type=float, default=420, help="seconds for the overhead benchmark")
    args = parser.parse_args(argv)
    if not cuda_available():
        print(
            "gpu_checks: no CUDA device (torch.cuda.is_available() is False): nothing measured; "
            "run this script on a machine with an NVIDIA GPU",
            file=sys.stderr,
        )
        return NO_CUDA
    import torch

    out = args.out or tempfile.mkdtemp(prefix="gpu-checks-")
    os.makedirs(out, exist_ok=True)
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    if "peak" not in skip:
        results["peak"] = _peak()
    if "overhead" not in skip:
        cmd = [sys.executable, "benchmarks/gradient_overhead.py", "--device", "cuda", "--rounds", "2", *SETUP]
        results["overhead"] = _run(cmd, args.timeout, os.path.join(out, "gradient_overhead.txt"))
    if "snapshot" not in skip:
        results["snapshot"] = _snapshot_cost()
    if "tests" not in skip:
        cmd = [sys.executable, "-m", "pytest", "-q", "-k", "cuda", *CUDA_TESTS]
        results["tests"] = _run(cmd, 300, os.path.join(out, "cuda_tests.txt"))
    with open(os.path.join(out, "gpu_checks.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    failed = [k for k in ("overhead", "tests") if k in results and results[k]["status"] != 0]
    if results.get("peak", {}).get("syncs_in_monitor_hooks"):
        failed.append("peak (syncs in the monitor's hooks)")
    if results.get("snapshot", {}).get("largest_relative_difference", 0.0) > 1e-6:
        failed.append("snapshot (update norms from host memory differ)")
    print(f"gpu_checks: results in {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
