"""A media kind is whole in every layer: ``MEDIA_KINDS`` names it, and each layer's table has its piece.

The format owns the kinds' names and their object formats; the capture (snapshot), the
writer (encoder), the reader and the page (renderer) each keep one table keyed by those
names. A kind added to one table and not the others fails here, before any user meets it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.layout import MEDIA_KINDS, MEDIA_OBJECT_RE
from lightning_tracker.integration.media import SNAPSHOTS
from lightning_tracker.read.media import READERS
from lightning_tracker.report.media import RENDERERS, MediaFiles
from lightning_tracker.writers.media import ENCODERS

MEDIA_JS = Path(__file__).resolve().parents[2] / "lightning_tracker" / "report" / "assets" / "media.js"
LAYERS = {"integration SNAPSHOTS": SNAPSHOTS, "writers ENCODERS": ENCODERS, "read READERS": READERS,
          "report RENDERERS": RENDERERS}  # fmt: skip


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_every_layer_has_a_piece_for_every_kind_and_no_other(layer: str) -> None:
    table = LAYERS[layer]
    assert set(table) == set(MEDIA_KINDS), (
        f"{layer}: missing {set(MEDIA_KINDS) - set(table)}, unknown {set(table) - set(MEDIA_KINDS)}"
    )


def test_every_kind_has_a_log_method_on_the_logger() -> None:
    assert all(callable(getattr(TrackerLogger, f"log_{kind}", None)) for kind in MEDIA_KINDS)


def test_every_renderer_the_report_names_is_drawn_by_the_page() -> None:
    source = MEDIA_JS.read_text()
    block = re.search(r"const RENDERERS = \{(.*?)\n  \};", source, re.S)
    assert block, "media.js defines its RENDERERS table"
    drawn = set(re.findall(r"^\s*(\w+):", block[1], re.M))
    assert set(RENDERERS.values()) <= drawn, f"no renderer in media.js for {set(RENDERERS.values()) - drawn}"


def test_every_object_extension_is_a_name_the_reader_accepts() -> None:
    for kind in MEDIA_KINDS.values():
        for ext in kind.content_types:
            assert MEDIA_OBJECT_RE.fullmatch("0" * 64 + "." + ext)
    assert not MEDIA_OBJECT_RE.fullmatch("0" * 64 + ".exe")


def _one_of_each_kind(logger: TrackerLogger) -> dict[str, Any]:
    """Logs one item of every kind through its ``log_<kind>`` method; fails on a kind with no sample here."""
    samples = {
        "image": lambda: logger.log_image("k/image", [np.full((200, 150, 3), 7, np.uint8)], step=1),
        "text": lambda: logger.log_text("k/text", columns=["a"], data=[["x"]], step=1),
        "table": lambda: logger.log_table("k/table", dataframe=pd.DataFrame({"n": [1, 2]}), step=1),
    }
    assert set(samples) == set(MEDIA_KINDS), "add a sample of the new kind to this test"
    for log in samples.values():
        log()
    return samples


def test_each_kind_is_stored_in_its_formats_read_back_and_served_with_its_content_type(tmp_path: Path) -> None:
    logger = TrackerLogger(str(tmp_path), name="p", version="r1", tensorboard=False)
    _one_of_each_kind(logger)
    logger.finalize("success")
    run = Store(str(tmp_path)).run("r1")
    media = run.media()
    assert sorted(media["kind"]) == sorted(MEDIA_KINDS)
    files = MediaFiles(Store(str(tmp_path)))
    for row in media.to_dict("records"):
        kind = MEDIA_KINDS[row["kind"]]
        assert row["object"].rsplit(".", 1)[1] in kind.content_types, row
        read = run.read_media(row["key"], 1)
        assert isinstance(read, pd.DataFrame) == (row["kind"] != "image"), (row["kind"], type(read))
        served = files.answer("p", "r1", row["object"], "media" if RENDERERS[row["kind"]] == "image" else "table")
        assert served is not None, row
        body, content_type = served
        if RENDERERS[row["kind"]] == "image":
            assert content_type == kind.content_types[row["object"].rsplit(".", 1)[1]]
            preview = files.answer("p", "r1", row["thumbnail"], "media")
            assert preview is not None and preview[1] in kind.content_types.values(), "a preview is served too"
        else:
            assert content_type == "application/json" and body.startswith(b'{"columns"')
