"""Installing into your own environment: the wheel built from a clone, without and with Lightning.

The base install is the read side (``lightning-tracker runs``, ``Store``): no torch, no
Lightning. The ``[lightning]`` extra adds the unified ``lightning`` package and nothing of
``pytorch_lightning``; ``[pytorch-lightning]`` the other one. The slow test builds the wheel
and installs it into a fresh virtual environment, as a user would, using pip's own
configuration (indexes, find-links); its ``venv`` marker lets a quick local run skip it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from lightning_tracker import TrackerLogger
from tests.helpers import wheel_sources

LIGHTNING_PACKAGES = ("torch", "lightning", "pytorch-lightning")

FIT = """
import sys

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_tracker import TrackerLogger


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)

    def training_step(self, batch, _):
        loss = nn.functional.mse_loss(self.net(batch[0]), batch[1])
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        x = torch.randn(32, 4)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


logger = TrackerLogger(sys.argv[1], name="mine")
assert isinstance(logger, L.pytorch.loggers.Logger), "a Logger of the package the Trainer comes from"
L.Trainer(logger=logger, max_epochs=1, log_every_n_steps=1, enable_progress_bar=False, accelerator="cpu").fit(Tiny())
print(logger.version)
"""


def _build_wheel(tmp_path: Path) -> Path:
    src = wheel_sources(tmp_path)
    out = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    return wheel


def _requirements(wheel: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The wheel's base requirements (names) and each extra's, from its METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(zf.read(meta).decode())
    base: list[str] = []
    extras: dict[str, list[str]] = {}
    for line in message.get_all("Requires-Dist") or []:
        requirement, _, marker = line.partition(";")
        name = requirement.split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
        if "extra ==" in marker:
            extras.setdefault(marker.split("extra ==")[1].strip().strip("'\""), []).append(name)
        else:
            base.append(name)
    return base, extras


def test_the_base_install_needs_neither_torch_nor_lightning_and_each_extra_one_package(tmp_path: Path) -> None:
    base, extras = _requirements(_build_wheel(tmp_path))
    assert {"pyarrow", "pandas", "fsspec"} <= set(base)
    assert not set(base) & set(LIGHTNING_PACKAGES), base
    assert set(extras["lightning"]) == {"torch", "lightning"}, "a lightning user gets no pytorch-lightning"
    assert set(extras["pytorch-lightning"]) == {"torch", "pytorch-lightning"}
    assert (extras["s3"], extras["gcs"], extras["azure"]) == (["s3fs"], ["gcsfs"], ["adlfs"])


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.mark.venv
@pytest.mark.timeout(1800)
def test_the_wheel_installs_into_a_fresh_environment_to_read_then_to_train(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    store = tmp_path / "store"
    logger = TrackerLogger(store, name="shared", run_name="from-a-colleague")  # what a teammate recorded
    logger.log_metrics({"val/loss": 0.5}, step=0)
    logger.finalize("success")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python, cli = str(venv / "bin" / "python"), str(venv / "bin" / "lightning-tracker")
    # the wheel's code only: nothing of this checkout on the path, pip's cache kept out of the home
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_CACHE_DIR"] = str(tmp_path / "pip-cache")
    pip = [python, "-m", "pip", "install", "-q"]

    # 1. a laptop that only reads the bucket: the base install
    _run([*pip, str(wheel)], env, tmp_path)
    installed = _run([python, "-m", "pip", "list", "--format=freeze"], env, tmp_path).stdout.lower()
    assert not [p for p in LIGHTNING_PACKAGES if f"\n{p}==" in f"\n{installed}"], installed
    listed = _run([cli, "runs", "-s", str(store), "-p", "shared"], env, tmp_path).stdout
    assert "from-a-colleague" in listed and "0.5" in listed, listed
    _run([python, "-c", "import lightning_tracker, sys; assert 'torch' not in sys.modules"], env, tmp_path)
    missing = subprocess.run(
        [python, "-c", "from lightning_tracker import TrackerLogger"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 1 and "MissingDependencyError" in missing.stderr, missing.stderr[-2000:]
    assert "[lightning] extra" in missing.stderr.splitlines()[-1], missing.stderr[-2000:]

    # 2. the same environment with the user's own torch, then the [lightning] extra
    _run([*pip, "torch==2.13.0"], env, tmp_path)
    _run([*pip, f"{wheel}[lightning]"], env, tmp_path)
    installed = _run([python, "-m", "pip", "list", "--format=freeze"], env, tmp_path).stdout.lower()
    assert "\ntorch==2.13.0" in f"\n{installed}", "the user's torch is kept"
    assert "\nlightning==" in f"\n{installed}", installed
    # lightning itself may require pytorch-lightning (2.6 does); lightning-tracker never does
    shown = subprocess.run([python, "-m", "pip", "show", "pytorch-lightning"], env=env, capture_output=True, text=True)
    required_by = [line for line in shown.stdout.splitlines() if line.startswith("Required-by:")]
    assert not [line for line in required_by if "lightning-tracker" in line], required_by
    (tmp_path / "fit.py").write_text(FIT)
    run_id = _run([python, "fit.py", str(store)], env, tmp_path).stdout.split()[-1]
    shown = _run([cli, "show", run_id[:15], "-s", str(store)], env, tmp_path).stdout
    assert run_id in shown and "train/loss" in shown, shown
