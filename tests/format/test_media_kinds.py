"""A media kind is whole in every layer: ``MEDIA_KINDS`` names it, and each layer's table has its piece.

The format owns the kinds, their encodings (object formats) and the name of the renderer
that shows each; the capture keeps a snapshot per kind, the writer an encoder and the
reader a decoder per encoding, the report and the page a renderer per renderer name. A
piece missing from one table fails here, before any user meets it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.layout import MEDIA_ENCODINGS, MEDIA_KINDS, MEDIA_OBJECT_RE, MediaKind
from lightning_tracker.integration.media import SNAPSHOTS, image_snapshot
from lightning_tracker.read.media import READERS
from lightning_tracker.report.media import RENDERERS, MediaFiles, media_part
from lightning_tracker.writers.media import ENCODERS, MediaProducer

MEDIA_JS = Path(__file__).resolve().parents[2] / "lightning_tracker" / "report" / "assets" / "media.js"
ENCODINGS_USED = {kind.encoding for kind in MEDIA_KINDS.values()}
RENDERERS_USED = {kind.renderer for kind in MEDIA_KINDS.values()}
# layer -> (its table, the names it must key: exactly these)
LAYERS = {
    "integration SNAPSHOTS (per kind)": (SNAPSHOTS, set(MEDIA_KINDS)),
    "writers ENCODERS (per encoding)": (ENCODERS, set(MEDIA_ENCODINGS)),
    "read READERS (per encoding)": (READERS, set(MEDIA_ENCODINGS)),
    "report RENDERERS (per renderer)": (RENDERERS, RENDERERS_USED),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_every_layer_has_a_piece_for_every_name_and_no_other(layer: str) -> None:
    table, names = LAYERS[layer]
    assert set(table) == names, f"{layer}: missing {names - set(table)}, unknown {set(table) - names}"


def test_every_encoding_is_used_by_a_kind() -> None:
    assert ENCODINGS_USED == set(MEDIA_ENCODINGS)


def test_every_kind_has_a_log_method_on_the_logger() -> None:
    assert all(callable(getattr(TrackerLogger, f"log_{kind}", None)) for kind in MEDIA_KINDS)


def test_every_renderer_a_kind_names_is_drawn_by_the_page() -> None:
    source = MEDIA_JS.read_text()
    block = re.search(r"const RENDERERS = \{(.*?)\n  \};", source, re.S)
    assert block, "media.js defines its RENDERERS table"
    drawn = set(re.findall(r"^\s*(\w+):", block[1], re.M))
    assert RENDERERS_USED <= drawn, f"no renderer in media.js for {RENDERERS_USED - drawn}"


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
        assert isinstance(read, pd.DataFrame) == (kind.encoding == "parquet"), (row["kind"], type(read))
        renderer = kind.renderer
        served = files.answer("p", "r1", row["object"], RENDERERS[renderer])
        assert served is not None, row
        body, content_type = served
        if renderer == "image":
            assert content_type == kind.content_types[row["object"].rsplit(".", 1)[1]]
            preview = files.answer("p", "r1", row["thumbnail"], "media")
            assert preview is not None and preview[1] in kind.content_types.values(), "a preview is served too"
        else:
            assert content_type == "application/json" and body.startswith(b'{"columns"')


def test_a_kind_that_reuses_an_encoding_and_a_renderer_needs_only_its_line_in_the_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a segmentation mask: a raster shown as an image; no encoder, reader or renderer of its own
    monkeypatch.setitem(MEDIA_KINDS, "mask", MediaKind("raster", "image"))
    logger = TrackerLogger(str(tmp_path), name="p", version="r1", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=3)
    logger.finalize("success")
    producer = MediaProducer(str(tmp_path / "p" / "r1"), session=0, writer="w")
    mask = np.zeros((200, 150, 1), np.uint8)
    mask[50:, :] = 1
    # the snapshot of images, storing its items as the new kind: partial(image_snapshot, kind="mask")
    producer.add(image_snapshot("seg", 3, print, [mask], caption=["classes"], kind="mask"))
    assert producer.flush() is not None
    run = Store(str(tmp_path)).run("r1")
    row = run.media().iloc[0]
    assert (row["kind"], row["width"], row["height"], row["object"][-4:]) == ("mask", 150, 200, ".png")
    assert np.array_equal(np.asarray(run.read_media("seg", 3)), mask[:, :, 0]), "read back losslessly"
    part = media_part(run, embed=True)
    item = part["keys"]["seg"]["items"][0][0]
    assert item["renderer"] == "image" and part["files"][item["thumb"]].startswith("data:image/png;base64,")
    served = MediaFiles(Store(str(tmp_path))).answer("p", "r1", row["object"], "media")
    assert served is not None and served[1] == "image/png"


def test_docs_format_lists_every_kind_with_its_encoding_and_renderer() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "format.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \|.*\| `(\w+)` \|$", doc, re.M)
    assert {kind: (encoding, renderer) for kind, encoding, renderer in rows} == {
        kind: (spec.encoding, spec.renderer) for kind, spec in MEDIA_KINDS.items()
    }
