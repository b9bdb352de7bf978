"""TensorBoard event files, checked with TensorBoard's own reader."""

from __future__ import annotations

import os
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lightning_tracker import Store, TrackerLogger
from tests.helpers import TinyModel, trainer


def _accumulator(path: str) -> EventAccumulator:
    acc = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_and_hparams_in_the_same_run_folder(tmp_path: Any) -> None:
    logger = TrackerLogger(tmp_path, name="p")
    t = trainer(logger)
    t.fit(TinyModel(lr=0.03, width=5))
    acc = _accumulator(logger.log_dir)
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(16))
    history = Store(tmp_path).run(logger.version).metrics()
    assert [e.value for e in loss] == pytest.approx(list(history["train/loss"].dropna()), rel=1e-6)
    assert [e.step for e in acc.Scalars("val/loss")] == [7, 15]

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["lr"].number_value == pytest.approx(0.03) and hp["width"].number_value == 5
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"train/loss", "val/loss"} <= metric_tags
    # the HParams tab shows each metric's last scalar in this run: real values, not a placeholder
    assert acc.Scalars("val/loss")[-1].value == pytest.approx(history["val/loss"].dropna().iloc[-1], rel=1e-6)
    assert not [
        d
        for d in os.listdir(logger.log_dir)
        if os.path.isdir(os.path.join(logger.log_dir, d)) and d not in ("metrics", "rollups")
    ]


def test_remote_event_files_rotate_and_each_is_uploaded_once(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_TB_ROTATE_S", "0")  # rotate at every flush
    bucket = s3_server.new_bucket()
    logger = TrackerLogger(
        f"s3://{bucket}/exp", name="p", storage_options=s3_server.storage_options, flush_interval=300
    )
    puts: list[str] = []
    logger.experiment  # noqa: B018 - opens the run
    storage, writer = logger._storage, logger._writer
    assert writer is not None
    original = storage.put_file

    def counting_put(local: str, rel: str) -> None:
        puts.append(rel)
        original(local, rel)

    monkeypatch.setattr(storage, "put_file", counting_put)
    for step in range(30):
        logger.log_metrics({"a": float(step)}, step=step)
        if step % 10 == 9:
            logger.flush()
            assert writer.upload(timeout=30)
    logger.finalize("success")
    event_puts = [p for p in puts if "events.out.tfevents" in p]
    assert len(event_puts) >= 3
    assert len(event_puts) == len(set(event_puts)), "an event file was uploaded twice"
    local = tmp_path / "download"
    fs = storage.fs
    fs.get(f"{bucket}/exp/p/{logger.version}/", str(local), recursive=True)
    acc = _accumulator(str(local))
    assert [e.step for e in acc.Scalars("a")] == list(range(30))


def test_resumed_sessions_keep_their_own_event_files(tmp_path: Any) -> None:
    first = TrackerLogger(tmp_path, name="p")
    for step in range(3):
        first.log_metrics({"a": float(step)}, step=step)
    first.finalize("failed")
    second = TrackerLogger(tmp_path, name="p", version=first.version)  # same process, same second
    for step in range(3, 6):
        second.log_metrics({"a": float(step)}, step=step)
    second.finalize("success")
    events = [n for n in os.listdir(first.log_dir) if n.startswith("events.out.tfevents.")]
    assert len(events) == 2
    assert [e.step for e in _accumulator(first.log_dir).Scalars("a")] == list(range(6))
