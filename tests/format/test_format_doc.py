"""``docs/format.md`` and the code agree: every file the page names is what a real run writes."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lightning_tracker import GradientMonitor, Store, TrackerLogger
from lightning_tracker.format import layout
from lightning_tracker.format.documents import VERSIONS
from tests.helpers import lightning, tiny_model, trainer

DOC = Path(__file__).resolve().parents[2] / "docs" / "format.md"


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _documented_files() -> dict[str, str]:
    """The first column of the page's Files table, as glob patterns relative to a run folder."""
    patterns = {}
    for line in _section("## Files").split("\n### ")[0].splitlines():
        if line.startswith("| `"):
            for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
                patterns[re.sub(r"<[^>]+>", "*", name)] = line
    return patterns


def test_every_document_version_on_the_page_is_the_code_s() -> None:
    table = _section("## Versions and compatibility")
    for name, version in VERSIONS.items():
        assert re.search(rf"\| `{re.escape(name)}` \| {version} \|", table), f"{name} version {version} not on the page"


def test_every_name_the_layout_defines_is_on_the_page() -> None:
    text = DOC.read_text()
    names = [getattr(layout, n) for n in layout.__all__ if n.isupper() and isinstance(getattr(layout, n), str)]
    assert names and all(f"{n}" in text for n in names), [n for n in names if n not in text]


def _files(root: str) -> list[str]:
    out = []
    for dirpath, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/") for f in files]
    return sorted(out)


def test_a_real_run_writes_exactly_the_files_the_page_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pl = lightning("pytorch_lightning")
    repo = tmp_path / "repo"  # a dirty git work tree, so git.diff is written too
    repo.mkdir()
    for cmd in (
        ["init", "-q"],
        ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x"],
    ):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run(["git", "add", "train.py"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    url = f"memory://format-doc-{os.getpid()}/exp"
    logger = TrackerLogger(url, name="p", spool_dir=tmp_path / "spool", log_model=True)
    ckpt = pl.callbacks.ModelCheckpoint(every_n_train_steps=4, save_top_k=2, monitor="step", mode="max")

    class Media(pl.Callback):  # one of each kind of media, so media/ and media-files/ are written
        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            trainer.logger.log_image("samples", [np.zeros((4, 4, 3), np.uint8)], caption=["zeros"])
            trainer.logger.log_table("scores", columns=["a"], data=[[1]])
            trainer.logger.alert("trained", "12 steps")  # and an alert, so alerts.json is written

    callbacks = [ckpt, GradientMonitor(every_n_steps=4), Media()]
    t = trainer(logger, "pytorch_lightning", max_steps=12, enable_checkpointing=True, callbacks=callbacks)
    t.fit(tiny_model("pytorch_lightning"))
    documented = _documented_files()
    store = Store(url)
    written = {"spool": _files(logger.log_dir), "store": sorted(store.storage.find(f"p/{logger.version}"))}
    lightning_own = "checkpoints/*"  # ModelCheckpoint's working folder: the page names it as Lightning's
    for where, files in written.items():
        undocumented = [
            f
            for f in files
            if not fnmatch.fnmatch(f, lightning_own) and not any(fnmatch.fnmatch(f, p) for p in documented)
        ]
        assert not undocumented, f"{where} holds files docs/format.md does not name: {undocumented}"
    everything = written["spool"] + written["store"]
    transient = [p for p, row in documented.items() if "transient" in row]
    missing = [p for p in documented if p not in transient and not any(fnmatch.fnmatch(f, p) for f in everything)]
    assert not missing, f"docs/format.md names files a real run did not write: {missing}"
    local_only = [p for p, row in documented.items() if "spool folder only" in row or "local only" in row]
    assert local_only and not [f for f in written["store"] if any(fnmatch.fnmatch(f, p) for p in local_only)]
    assert store.run(logger.version).checkpoints, "the run stored checkpoints"
