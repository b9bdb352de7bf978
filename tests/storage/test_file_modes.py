"""Every file and folder the tracker writes gets the mode the umask gives, as ``open`` and
``mkdir`` do: on a shared folder a teammate in the group (``umask 002``) or anyone
(``umask 022``) can read the runs, and nobody else can under ``umask 077``.

The umask is the process's: each case runs in a child process that sets it, trains with
a real Trainer (checkpoints, gradients, media, TensorBoard) into a local store and, offline,
into a remote store's spool, then writes a report, histogram PNGs and a downloaded
checkpoint with the CLI and the read API. The test checks the mode bits of everything.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

CHILD = r"""
import os, sys
os.umask(int(sys.argv[1], 8))
out = sys.argv[2]
import numpy as np
from lightning_tracker import GradientMonitor, Store, TrackerLogger
from lightning_tracker.cli import main
from tests.helpers import lightning, tiny_model, trainer

pl = lightning("pytorch_lightning")


class Media(pl.Callback):
    def on_train_end(self, trainer, pl_module):
        trainer.logger.log_image("samples", [np.zeros((4, 4, 3), np.uint8)], caption=["zeros"])
        trainer.logger.log_text("notes", columns=["a"], data=[["x"]])
        trainer.logger.log_table("scores", columns=["a"], data=[[1]])


def fit(logger):
    ckpt = pl.callbacks.ModelCheckpoint(every_n_train_steps=4, save_top_k=2, monitor="step", mode="max")
    callbacks = [ckpt, GradientMonitor(every_n_steps=4), Media()]
    trainer(logger, max_steps=8, enable_checkpointing=True, callbacks=callbacks).fit(tiny_model())
    logger.finalize("success")


local = TrackerLogger(os.path.join(out, "store"), name="p", version="local", log_model=True)
fit(local)
remote = TrackerLogger(
    f"memory://modes-{os.getpid()}/exp", name="p", version="spooled", log_model=True, offline=True,
    spool_dir=os.path.join(out, "spool"),
)
fit(remote)
store = os.path.join(out, "store")
assert main(["report", "-s", store, "-o", os.path.join(out, "report", "report.html")]) == 0
assert main(["hist", "-s", store, "local", "--out", os.path.join(out, "hist")]) == 0
Store(store).run("local").checkpoint("latest").download(os.path.join(out, "download", "model.ckpt"))
"""


def _modes(root: Path) -> tuple[dict[str, int], dict[str, int]]:
    files, folders = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            folders[os.path.relpath(os.path.join(dirpath, name), root)] = stat.S_IMODE(
                os.stat(os.path.join(dirpath, name)).st_mode
            )
        for name in filenames:
            files[os.path.relpath(os.path.join(dirpath, name), root)] = stat.S_IMODE(
                os.stat(os.path.join(dirpath, name)).st_mode
            )
    return files, folders


@pytest.mark.parametrize("umask", [0o002, 0o022])
def test_every_file_written_gets_the_mode_the_umask_gives(umask: int, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": REPO}
    subprocess.run(
        [sys.executable, "-c", CHILD, f"{umask:o}", str(out)], cwd=tmp_path, env=env, check=True, timeout=600
    )
    files, folders = _modes(out)
    kinds = {
        "run.json": "store/p/local/run.json",
        "a metric chunk": "store/p/local/metrics/",
        "a histogram chunk": "store/p/local/histograms/",
        "a media object": "store/p/local/media-files/",
        "a stored checkpoint": "store/p/local/models/",
        "a TensorBoard file": "store/p/local/events.out.tfevents.",
        "the report": "report/report.html",
        "a histogram PNG": "hist/",
        "a downloaded checkpoint": "download/model.ckpt",
    }
    missing = [kind for kind, prefix in kinds.items() if not any(path.startswith(prefix) for path in files)]
    missing += [] if any(p.startswith("spool/") and p.endswith("/spooled/run.json") for p in files) else ["spool"]
    assert missing == []  # the child wrote every kind of file checked here
    assert {path: oct(mode) for path, mode in files.items() if mode != 0o666 & ~umask} == {}
    assert {path: oct(mode) for path, mode in folders.items() if mode != 0o777 & ~umask} == {}
