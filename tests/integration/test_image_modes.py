"""PIL images in 16-bit and float modes are stored as they are: a 16-bit depth map (``I;16``,
or ``I`` within 0..65535) as a 16-bit PNG with every value kept, like a NumPy uint16 array, and
a float image (``F``, in [0, 1]) scaled like a float array; what 16 bits cannot hold is refused
with the warning any other unusable image gets."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightning_tracker import Store, TrackerLogger

DEPTH = (np.arange(48 * 160, dtype=np.uint32).reshape(48, 160) * 8).astype(np.uint16)  # 0..61432: past 255


def _logged(tmp_path: Path, images: list[object]) -> list[np.ndarray | None]:
    logger = TrackerLogger(tmp_path / "runs", name="p", version="r1")
    logger.log_image("depth", images, step=0)
    logger.finalize("success")
    run = Store(str(tmp_path / "runs")).run("r1")
    stored = {int(row["index"]): row for _, row in run.media("depth").iterrows()}
    return [np.array(run.read_media("depth", 0, i)) if i in stored else None for i in range(len(images))]


def test_sixteen_bit_and_float_pil_images_are_stored_faithfully(tmp_path: Path) -> None:
    floats = (DEPTH / 65535.0).astype(np.float32)
    images = [
        Image.fromarray(DEPTH),  # mode I;16
        Image.fromarray(DEPTH.astype(np.int32)),  # mode I, as Pillow opens many 16-bit PNGs
        Image.fromarray(floats),  # mode F, float in [0, 1]
        DEPTH,  # the same data as a NumPy array
    ]
    assert [getattr(i, "mode", None) for i in images] == ["I;16", "I", "F", None]
    i16, i32, f, array = _logged(tmp_path, images)
    for got in (i16, i32, array):
        assert got is not None and got.dtype == np.uint16 and np.array_equal(got, DEPTH)
    assert f is not None and np.array_equal(f.reshape(DEPTH.shape), np.rint(floats * 255).astype(np.uint8))
    assert f.max() == 239  # not black


def test_what_sixteen_bits_cannot_hold_is_refused_with_the_usual_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    negative = Image.fromarray(DEPTH.astype(np.int32) - 1000)  # mode I below 0
    colour16 = np.zeros((8, 8, 3), np.uint16)
    with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
        stored = _logged(tmp_path, [negative, colour16, DEPTH])
    assert stored[0] is None and stored[1] is None and stored[2] is not None
    said = caplog.text
    assert "log_image('depth'): image 0 is PIL mode I with values -1000..60432" in said
    assert "log_image('depth'): image 1 is dtype uint16 with 3 channels" in said
    assert said.count("it is skipped. Accepted:") == 2
