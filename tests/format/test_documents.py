"""``format/documents.py`` shapes every document, ``format/validate.py`` reads each back as a typed
object, and chunks carry a format version that readers check."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightning_tracker import GradientMonitor, Store, TrackerLogger
from lightning_tracker.exceptions import StorageError
from lightning_tracker.format import documents
from lightning_tracker.format.layout import (
    CONFIG_FILE,
    HISTOGRAMS_DIR,
    MEDIA_DIR,
    META_FILE,
    METRICS_DIR,
    MIRROR_FILE,
    MODELS_FILE,
    RUN_FILE,
    SPOOL_FILE,
)
from lightning_tracker.format.schemas import CHUNK_VERSION, CHUNK_VERSION_KEY, METRICS, chunk_version
from lightning_tracker.format.validate import (
    DOCUMENT_FIELDS,
    RunDocument,
    SpoolDocument,
    decode_chunk,
    parse_document,
    parse_run,
)
from tests.helpers import tiny_model, trainer

_BUILT: dict[str, dict[str, Any]] = {
    RUN_FILE: documents.new_run("r1", "p", "n", group="g", tags=["a"], notes=None, heartbeat_interval_s=2.0, url="/x"),
    CONFIG_FILE: documents.new_config(),
    META_FILE: documents.new_meta({"host": "h", "cwd": "/w", "user": None, "pid": 1, "command": ["python"],
                                   "versions": {}, "git": None, "gpus": [], "env": {}}),
    MODELS_FILE: documents.new_manifest(),
    SPOOL_FILE: documents.new_spool("s3://bucket/exp", "p/r1", 0, offline=False),
    MIRROR_FILE: documents.new_mirror_state({"run.json": [10, 1_700_000_000_000_000_000]}),
    documents.STAGED_CHECKPOINT: documents.new_staged_checkpoint(
        3, "last.ckpt", ["/c/last.ckpt", 1, 2, 3, 4], copy=False, monitor="val/loss", mode="min", score=0.5,
        saved_time=1_700_000_000.0, step=12),
    documents.STAGING_STATE: documents.new_staging_state({"last.ckpt": ["/c/last.ckpt", 1, 2, 3, 4]},
                                                         {"latest": 3}, False, {3: "last.ckpt"}),
    documents.ALERTS_FILE: documents.new_alerts([{"time": 1_700_000_000.0, "level": "warn", "title": "t",
                                                  "text": "x", "event": "user", "step": None}]),
}  # fmt: skip


def test_every_versioned_document_has_a_constructor_and_a_check() -> None:
    assert set(_BUILT) == set(documents.VERSIONS)
    assert set(DOCUMENT_FIELDS) | {MODELS_FILE} == set(documents.VERSIONS)


@pytest.mark.parametrize("name", sorted(_BUILT))
def test_what_the_constructor_builds_reads_back_whole_at_its_version(name: str) -> None:
    built = _BUILT[name]
    assert built["format_version"] == documents.VERSIONS[name]
    for data in (built, json.dumps(built).encode()):
        parsed = parse_document(name, data)
        assert parsed.problems == () and parsed.repairs == () and parsed.doc == built
        assert parsed.version == documents.VERSIONS[name]


@pytest.mark.parametrize("name", sorted(_BUILT))
def test_a_newer_version_of_any_document_says_upgrade(name: str) -> None:
    parsed = parse_document(name, {**_BUILT[name], "format_version": documents.VERSIONS[name] + 1})
    assert parsed.damaged and "newer than this reader's" in parsed.problems[-1] and "upgrade" in parsed.problems[-1]


def test_the_documents_are_typed_objects() -> None:
    run = parse_run(_BUILT[RUN_FILE])
    assert isinstance(run, RunDocument) and (run.name, run.group, run.tags, run.sessions) == ("n", "g", ["a"], [])
    spool = parse_document(SPOOL_FILE, _BUILT[SPOOL_FILE])
    assert isinstance(spool, SpoolDocument) and (spool.url, spool.prefix, spool.offline) == (
        "s3://bucket/exp",
        "p/r1",
        False,
    )


def test_a_tags_string_is_one_tag_repaired_not_damaged_and_never_its_letters() -> None:
    run = parse_run({**_BUILT[RUN_FILE], "tags": "baseline"})
    assert run.tags == ["baseline"] and not run.damaged
    assert run.repairs == ("field 'tags' is 'baseline'; read as ['baseline']",)
    assert parse_run({**_BUILT[RUN_FILE], "tags": ["a", 1]}).problems == (
        "field 'tags' is ['a', 1]; expected a list of strings",
    )


@pytest.mark.parametrize(
    ("name", "change", "problem"),
    [
        (SPOOL_FILE, {"url": None}, "field 'url' is None; expected a string"),
        (SPOOL_FILE, {"prefix": ...}, "field 'prefix' is missing"),
        (MIRROR_FILE, {"published": {"run.json": "yes"}}, "field 'published' is {'run.json': 'yes'}"),
        (documents.STAGED_CHECKPOINT, {"file": "../x.ckpt"}, "field 'file' is '../x.ckpt'; expected a file name"),
        (documents.STAGED_CHECKPOINT, {"source": ["/c/x.ckpt"]}, "field 'source' is ['/c/x.ckpt']"),
        (documents.STAGING_STATE, {"keep_all": "yes"}, "field 'keep_all' is 'yes'; expected true or false"),
    ],
)
def test_a_local_document_of_the_wrong_shape_is_named(name: str, change: dict[str, Any], problem: str) -> None:
    doc = {k: v for k, v in {**_BUILT[name], **change}.items() if v is not ...}
    parsed = parse_document(name, doc)
    assert parsed.damaged and any(problem in p for p in parsed.problems), parsed.problems


def _chunk(version: bytes | None) -> bytes:
    table = pa.table({"step": [0], "time": [0.0], "key": ["loss"], "value": [1.0]})
    if version is not None:
        table = table.replace_schema_metadata({CHUNK_VERSION_KEY: version})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_a_chunk_without_a_version_is_version_1_and_one_from_a_newer_writer_says_upgrade() -> None:
    assert chunk_version(None) == 1 and decode_chunk(_chunk(None), METRICS).num_rows == 1
    assert decode_chunk(_chunk(b"%d" % CHUNK_VERSION), METRICS).num_rows == 1
    with pytest.raises(StorageError, match="chunk format version 2 was written by a newer lightning-tracker .*upgrade"):
        decode_chunk(_chunk(b"2"), METRICS)
    with pytest.raises(StorageError, match="chunk format version b'x' is not a whole number"):
        decode_chunk(_chunk(b"x"), METRICS)


def test_every_chunk_a_real_run_writes_carries_the_version_and_the_reader_refuses_a_newer_one(tmp_path: Path) -> None:
    logger = TrackerLogger(str(tmp_path), name="p", version="r1", tensorboard=False)
    trainer(logger, max_steps=4, callbacks=[GradientMonitor(every_n_steps=2)]).fit(tiny_model())
    logger.log_image("samples", [np.zeros((4, 4, 3), np.uint8)])
    logger.finalize("success")
    run_dir = tmp_path / "p" / "r1"
    chunks = [run_dir / d / n for d in (METRICS_DIR, HISTOGRAMS_DIR, MEDIA_DIR) for n in os.listdir(run_dir / d)]
    assert {c.parent.name for c in chunks} == {METRICS_DIR, HISTOGRAMS_DIR, MEDIA_DIR}
    for chunk in chunks:
        assert pq.read_schema(chunk).metadata[CHUNK_VERSION_KEY] == b"%d" % CHUNK_VERSION, chunk
    assert not Store(str(tmp_path)).run("r1").metrics().empty

    newer = pq.read_table(chunks[0]).replace_schema_metadata({CHUNK_VERSION_KEY: b"%d" % (CHUNK_VERSION + 1)})
    pq.write_table(newer, chunks[0])
    with pytest.raises(StorageError, match="written by a newer lightning-tracker .*upgrade"):
        Store(str(tmp_path)).run("r1").metrics()
