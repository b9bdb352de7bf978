"""Images, text and tables from inside a real Trainer, on a local folder, memory:// and S3.

Every input kind is logged from a validation hook and read back: pixel-exact for uint8
input (the storage is lossless), to the nearest 1/255 for float input. Bad input is
skipped with one warning per key and never stops training. TensorBoard's own reader sees
the images and the text.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.layout import MEDIA_DIR, MEDIA_FILES_DIR
from tests.helpers import tiny_model_class, trainer

RNG = np.random.default_rng(0)
UINT8_HWC = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # noise: stored losslessly, byte for byte
UINT8_HW = RNG.integers(0, 256, (17, 9), dtype=np.uint8)
FLOAT_CHW = torch.rand(3, 16, 12, generator=torch.Generator().manual_seed(1))
RGBA = RNG.integers(0, 256, (10, 10, 4), dtype=np.uint8)
RGBA[0, 0, 3] = 0  # a fully transparent pixel keeps its colour too


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([0, 1], [1, 0])
    return fig


def _images() -> list[Any]:
    from PIL import Image

    return [
        FLOAT_CHW,  # torch CHW float in [0, 1]
        torch.from_numpy(UINT8_HW),  # torch HW uint8
        torch.from_numpy(UINT8_HW > 128),  # torch HW bool (a mask)
        UINT8_HWC,  # NumPy HWC uint8
        UINT8_HW.astype(np.float64) / 255.0,  # NumPy HW float
        Image.fromarray(RGBA, "RGBA"),  # PIL with alpha
        Image.fromarray(UINT8_HW, "L"),  # PIL grey
        _figure(),  # a matplotlib figure
    ]


def _model(package: str = "pytorch_lightning") -> Any:
    class MediaModel(tiny_model_class(package)):  # type: ignore[misc]
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            super().validation_step(batch, batch_idx)
            if batch_idx:
                return
            step = self.global_step
            self.logger.log_image("val/samples", _images(), step=step, caption=[f"c{i}@{step}" for i in range(8)])
            self.logger.log_image("val/batch", torch.rand(4, 1, 8, 8), step=step)  # NCHW: a batch
            rows = [["2+2", "4"], ["a|b", "<b>x</b>"]]
            self.logger.log_text("val/generated", columns=["prompt", "output"], data=rows, step=step)
            frame = pd.DataFrame({"digit": [0, 1, 2], "accuracy": [0.5, 0.25, float(step)]})
            self.logger.log_table("val/per_class", dataframe=frame, step=step)

    return MediaModel()


def test_every_input_kind_is_stored_and_read_back(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    logger = TrackerLogger(save_dir, name="m", storage_options=options, flush_interval=0.2)
    trainer(logger, max_epochs=2, limit_train_batches=2).fit(_model())
    run = Store(save_dir, options).run(logger.version)
    media = run.media()
    assert list(media.columns[:7]) == ["step", "key", "index", "kind", "caption", "width", "height"]
    steps = sorted(set(media["step"]))
    assert len(steps) == 3, "sanity check before training, then one validation per epoch"
    samples = media[(media["key"] == "val/samples") & (media["step"] == steps[-1])]
    assert samples["index"].tolist() == list(range(8)) and samples["caption"].tolist() == [
        f"c{i}@{steps[-1]}" for i in range(8)
    ]
    sizes = samples[["width", "height"]].values.tolist()
    assert sizes[:7] == [[12, 16], [9, 17], [9, 17], [30, 20], [9, 17], [10, 10], [9, 17]] and sizes[7] == [100, 75]
    read = [np.asarray(run.read_media("val/samples", steps[-1], i)) for i in range(8)]
    assert np.array_equal(read[0], np.rint(FLOAT_CHW.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert np.array_equal(read[1], UINT8_HW) and np.array_equal(read[6], UINT8_HW), "uint8 and PIL grey, exact"
    assert np.array_equal(read[2], (UINT8_HW > 128).astype(np.uint8) * 255)
    assert np.array_equal(read[3], UINT8_HWC) and np.array_equal(read[5], RGBA), "lossless, alpha included"
    assert np.array_equal(read[4], UINT8_HW)
    assert read[7].shape == (75, 100, 3) and read[7].std() > 0, "the figure was drawn (opaque: RGB)"
    assert (media["key"] == "val/batch").sum() == 4 * 3 and set(media.loc[media["key"] == "val/batch", "width"]) == {8}
    text = run.read_media("val/generated", steps[-1])
    assert text.to_dict("list") == {"prompt": ["2+2", "a|b"], "output": ["4", "<b>x</b>"]}
    table = run.read_media("val/per_class", steps[-1])
    assert table["accuracy"].tolist() == [0.5, 0.25, float(steps[-1])] and table["digit"].dtype.kind == "i"
    assert set(run.media("val/per_class")["kind"]) == {"table"} and set(run.media("val/generated")["kind"]) == {"text"}
    with pytest.raises(Exception, match="no media 'nope'.*keys: val/batch"):
        run.read_media("nope", 0)


def test_bad_input_is_skipped_with_one_warning_per_key_and_training_goes_on(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import matplotlib.pyplot as plt

    closed = _figure()
    plt.close(closed)
    bad = [
        torch.zeros(2, 5, 5),
        np.zeros((5, 5), np.complex64),
        closed,
        "not an image",
        np.zeros((0, 4)),
        np.zeros((2, 3, 4, 5, 6)),
    ]
    logger = TrackerLogger(str(tmp_path), name="m", tensorboard=False)
    with caplog.at_level(logging.WARNING):
        for step in range(3):  # the same mistakes again: no new warnings
            logger.log_image("bad", [*bad, UINT8_HWC], step=step)
        logger.log_image("other", ["still not"], step=0)
        logger.log_table("t", columns=["a"], data=[[1, 2]], step=0)
        logger.log_table("t2", data="rows", step=0)
        logger.log_text("t3", dataframe=[1, 2], step=0)
        logger.log_metrics({"loss": 1.0}, step=3)
    logger.finalize("success")
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for needle in (
        "image 0 is shape (2, 5, 5)",
        "image 1 is dtype complex64",
        "image 2 is a closed matplotlib figure",
        "image 3 is a builtins.str",
        "image 4 is shape (0, 4)",
        "image 5 is shape (2, 3, 4, 5, 6)",
    ):
        assert sum(needle in m for m in said) == 1, (needle, said)
    assert all("Accepted: torch tensors CHW or HW" in m for m in said if "log_image('bad')" in m)
    assert any("log_image('other')" in m for m in said), "another key gets its own warning"
    assert any("every row needs 1 values" in m for m in said) and any("data must be a list of rows" in m for m in said)
    assert any("dataframe is a list, not a pandas DataFrame" in m for m in said)
    run = Store(str(tmp_path)).run(logger.version)
    media = run.media()
    assert media["key"].tolist() == ["bad"] * 3 and media["index"].tolist() == [6, 6, 6], "the good image of each call"
    assert run.summary["loss"]["last"] == 1.0


def test_tensorboard_sees_the_images_and_the_text(tmp_path: Any) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TrackerLogger(str(tmp_path), name="m", flush_interval=0.2)
    trainer(logger, max_epochs=1, limit_train_batches=2).fit(_model())
    acc = EventAccumulator(os.path.join(tmp_path, "m", logger.version), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    images = acc.Tags()["images"]
    assert "val/samples" in images and "val/samples/3" in images and "val/batch/3" in images
    shot = acc.Images("val/samples/3")[-1]
    assert (shot.width, shot.height) == (30, 20)
    import io

    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(shot.encoded_image_string))), UINT8_HWC)
    texts = [t for t in acc.Tags()["tensors"] if t.startswith("val/generated")]
    assert texts, acc.Tags()
    markdown = acc.Tensors(texts[0])[-1].tensor_proto.string_val[0].decode()
    assert "| prompt | output |" in markdown and "a\\|b" in markdown


def test_objects_reach_the_store_before_the_index_that_names_them(s3_server: Any, tmp_path: Any) -> None:
    from lightning_tracker.writers.mirror import Mirror

    save_dir = f"s3://{s3_server.new_bucket()}/exp"
    logger = TrackerLogger(
        save_dir, name="m", storage_options=s3_server.storage_options, offline=True, spool_dir=str(tmp_path / "spool")
    )
    logger.log_image("samples", [UINT8_HWC, UINT8_HW], step=0)
    logger.log_text("notes", data=[["hello"]], step=0)
    logger.finalize("success")
    local = os.path.join(tmp_path, "spool")
    run_dir = next(os.path.join(d, logger.version) for d, subdirs, _ in os.walk(local) if logger.version in subdirs)
    from lightning_tracker.storage import Storage

    report = Mirror(run_dir, Storage(save_dir, s3_server.storage_options), f"m/{logger.version}").run_once()
    order = [rel.split("/")[0] for rel in report.uploaded]
    assert order.index(MEDIA_FILES_DIR) < order.index(MEDIA_DIR) and report.complete
    assert order.count(MEDIA_FILES_DIR) == 3, "two images (each its own preview) and one text"
    run = Store(save_dir, s3_server.storage_options).run(logger.version)
    assert np.array_equal(np.asarray(run.read_media("samples", 0, 1)), UINT8_HW)


def test_the_same_image_is_stored_once_and_a_step_logged_again_replaces_it(tmp_path: Any) -> None:
    logger = TrackerLogger(str(tmp_path), name="m", tensorboard=False)
    logger.log_image("a", [UINT8_HWC], step=0)
    logger.log_image("b", [UINT8_HWC], step=0)
    logger.log_image("a", [UINT8_HW], step=0, caption=["again"])  # the same step: the last one wins
    logger.finalize("success")
    files = os.listdir(os.path.join(tmp_path, "m", logger.version, MEDIA_FILES_DIR))
    assert len(files) == 2, files
    run = Store(str(tmp_path)).run(logger.version)
    assert run.media()[["key", "caption"]].values.tolist() == [["a", "again"], ["b", None]]
    assert np.array_equal(np.asarray(run.read_media("a", 0)), UINT8_HW)


def test_large_images_get_a_small_preview(tmp_path: Any) -> None:
    logger = TrackerLogger(str(tmp_path), name="m", tensorboard=False)
    big = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))
    logger.log_image("big", [big], step=0)
    logger.finalize("success")
    row = Store(str(tmp_path)).run(logger.version).media().iloc[0]
    assert row["thumbnail"] != row["object"]
    from PIL import Image

    with Image.open(os.path.join(tmp_path, "m", logger.version, MEDIA_FILES_DIR, row["thumbnail"])) as preview:
        assert max(preview.size) == 128 and preview.size == (128, 85)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_tensor_is_copied_without_a_sync_and_read_back_exactly(tmp_path: Any) -> None:
    logger = TrackerLogger(str(tmp_path), name="m", tensorboard=False)
    images = FLOAT_CHW.cuda()
    logger.log_metrics({"x": 0.0}, step=0)  # the run is open: what follows is the per-call path only
    torch.cuda.set_sync_debug_mode("error")  # any host synchronisation on this thread raises
    try:
        logger.log_image("gpu", [images, torch.from_numpy(UINT8_HW).cuda()], step=0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    images.zero_()  # the snapshot owns its copy: a later change does not reach it
    logger.finalize("success")
    run = Store(str(tmp_path)).run(logger.version)
    assert np.array_equal(
        np.asarray(run.read_media("gpu", 0, 0)), np.rint(FLOAT_CHW.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    )
    assert np.array_equal(np.asarray(run.read_media("gpu", 0, 1)), UINT8_HW)


def test_one_item_that_cannot_be_encoded_or_read_never_costs_the_others(tmp_path: Any) -> None:
    from PIL import Image

    closed = Image.fromarray(UINT8_HW)
    closed.close()
    wide = np.zeros((4, 17000, 3), np.uint8)  # wider than WebP allows: stored as PNG
    wide[:, ::2] = 255
    logger = TrackerLogger(str(tmp_path), name="m", tensorboard=False)
    logger.log_image("wide", [wide], step=0)
    logger.log_image("closed", [closed, UINT8_HW], step=0)  # a closed PIL image is skipped, not raised
    logger.log_table("huge", columns=["n"], data=[[2**70], [1]], step=0)  # beyond int64: kept as text
    logger.log_table("gen", columns=["a"], data=([i] for i in range(3)), step=0)  # a generator is read once
    logger.log_text(7, data=[["key is not a string"]], step=0)
    logger.finalize("success")
    run = Store(str(tmp_path)).run(logger.version)
    media = run.media()
    assert sorted(media["key"]) == ["7", "closed", "gen", "huge", "wide"]
    assert media.loc[media["key"] == "closed", "index"].tolist() == [1]
    assert np.array_equal(np.asarray(run.read_media("wide", 0)), wide)
    assert run.media("wide")["object"].iloc[0].endswith(".png")
    assert run.read_media("huge", 0)["n"].tolist() == [str(2**70), "1"]
    assert run.read_media("gen", 0)["a"].tolist() == [0, 1, 2]


def test_an_index_row_naming_a_path_is_refused(tmp_path: Any) -> None:
    from lightning_tracker.exceptions import StorageError
    from lightning_tracker.read.media import read_object
    from lightning_tracker.storage import Storage

    (tmp_path / "secret.parquet").write_bytes(b"x")
    row = pd.Series({"object": "../../secret.parquet", "sha256": "0" * 64, "kind": "table"})
    with pytest.raises(StorageError, match="not a media object name"):
        read_object(Storage(str(tmp_path)), "p/r1", row)


class _Cell:
    """A table cell Arrow cannot convert: it is stored as its text, and says which thread read it."""

    def __init__(self, value: int, readers: list[str]) -> None:
        self.value, self.readers = value, readers

    def __str__(self) -> str:
        import threading

        self.readers.append(threading.current_thread().name)
        return f"cell{self.value}"


def test_log_table_of_a_dataframe_only_copies_it_on_the_training_thread(tmp_path: Any) -> None:
    readers: list[str] = []
    frame = pd.DataFrame({"n": range(50), "cell": [_Cell(i, readers) for i in range(50)]})
    logger = TrackerLogger(tmp_path, name="p", flush_interval=300, tensorboard=False)
    logger.log_table("t", dataframe=frame, step=0)
    assert readers == [], "log_table read the frame's cells on the training thread"
    frame.loc[0, "n"] = 99  # the caller changes its frame at once: the snapshot is a copy
    logger.finalize("success")
    stored = Store(tmp_path).run(logger.version).read_media("t", step=0)
    assert stored["n"].tolist() == list(range(50))
    assert stored["cell"].tolist() == [f"cell{i}" for i in range(50)]
    assert len(readers) == 50
