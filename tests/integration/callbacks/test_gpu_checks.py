"""benchmarks/gpu_checks.py, on a machine without CUDA: a clear one-line message, status 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import torch

from tests.helpers import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the machine without CUDA")
def test_gpu_checks_exit_cleanly_without_cuda(tmp_path: Any) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "gpu_checks.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "gpu_checks: no CUDA device (torch.cuda.is_available() is False): nothing measured; "
        "run this script on a machine with an NVIDIA GPU"
    ]
    assert not out.exists()
