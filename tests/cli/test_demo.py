"""The main job: the demo trains several configurations and lists them."""

from __future__ import annotations

from typing import Any

import pytest

from lightning_tracker import Store
from lightning_tracker.cli import main


def test_demo_records_every_configuration(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    table = Store(str(tmp_path / "runs")).table("demo")
    assert len(table) == 4 and set(table["status"]) == {"finished"}
    assert table["config.lr"].nunique() == 2 and table["config.width"].nunique() == 3
    assert table["summary.test/acc"].notna().all()
    # the best configuration learns the task: well above the 10 % of chance
    assert table["summary.val/acc"].max() > 0.8
    assert "4 runs" in out and "val/acc" in out
    run = Store(str(tmp_path / "runs")).run(table["id"].iloc[0])
    assert run.monitor == {"name": "val/acc", "mode": "max"} and run.checkpoint("best").name.endswith(".ckpt")
    media = run.media()
    assert set(media["key"]) == {"val/predictions", "val/per_digit"}
    assert media.loc[media["key"] == "val/predictions", "caption"].str.startswith("predicted ").all()
    assert run.read_media("val/predictions", int(media["step"].max())).size == (32, 32)
