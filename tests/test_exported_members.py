"""The public surface stays small and deliberate."""

from __future__ import annotations

import subprocess
import sys

import lightning_tracker


def test_all_is_exact_and_sorted() -> None:
    assert lightning_tracker.__all__ == [
        "GradientMonitor",
        "LiveRun",
        "Run",
        "Store",
        "SystemMonitor",
        "TrackerError",
        "TrackerLogger",
        "__version__",
    ]
    assert lightning_tracker.__all__ == sorted(lightning_tracker.__all__)
    for name in lightning_tracker.__all__:
        assert getattr(lightning_tracker, name) is not None


def test_read_side_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "from lightning_tracker import Store, Run\n"
        "import lightning_tracker.cli, lightning_tracker.writers.sync\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n"
        "assert 'pytorch_lightning' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
