"""``lightning_tracker.format.validate`` accepts what the writers write and names what they never write."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightning_tracker import TrackerLogger
from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.documents import new_manifest, new_run
from lightning_tracker.format.layout import CONFIG_FILE, META_FILE, RUN_FILE
from lightning_tracker.format.schemas import HISTOGRAMS, METRICS
from lightning_tracker.format.validate import RUN_FIELDS, check_document, check_manifest, check_run, decode_chunk


def test_the_run_fields_checked_are_the_fields_new_run_writes() -> None:
    doc = new_run("r1", "p", "n", group=None, tags=[], notes=None, heartbeat_interval_s=2.0, url="/x")
    assert set(RUN_FIELDS) == set(doc)
    assert check_run(doc) == (doc, [])


def test_the_documents_of_a_logged_run_pass_every_check(tmp_path: Any) -> None:
    logger = TrackerLogger(str(tmp_path), name="p", version="r1", tags=["a"], group="g", tensorboard=False)
    logger.log_hyperparams({"lr": 0.1, "model": {"width": 8}, "nan": math.nan})
    logger.log_metrics({"loss": 1.0, "inf": math.inf}, step=0)
    logger.finalize("success")
    folder = tmp_path / "p" / "r1"
    assert check_run(json.loads((folder / RUN_FILE).read_text()))[1] == []
    for name in (CONFIG_FILE, META_FILE):
        assert check_document(name, json.loads((folder / name).read_text()))[1] == []
    assert check_manifest(new_manifest()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"format_version": 99}, "format_version 99 is newer than this reader's"),
        ({"format_version": True}, "'format_version' is True"),
        ({"status": "crashed"}, "'status' is 'crashed'"),
        ({"start_time": math.inf}, "'start_time' is inf"),
        ({"end_time": 1e300}, "'end_time' is 1e+300; expected a number of Unix seconds from 1970 to 2261"),
        ({"heartbeat_interval_s": 0}, "'heartbeat_interval_s' is 0"),
        ({"name": None}, "'name' is None"),
        ({"tags": ["a", 1]}, "'tags' is ['a', 1]"),
        ({"sessions": [1]}, "'sessions' is [1]"),
        ({"summary": {"loss": {"last": "one"}}}, "summary of 'loss'"),
    ],
)
def test_a_field_of_the_wrong_kind_is_named_and_emptied(change: dict[str, Any], problem: str) -> None:
    doc = new_run("r1", "p", "n", group=None, tags=[], notes=None, heartbeat_interval_s=2.0, url="/x")
    clean, problems = check_run({**doc, **change})
    assert len(problems) == 1 and problem in problems[0]
    assert set(clean) == set(doc)


def test_a_missing_status_or_version_is_not_a_run_document() -> None:
    assert check_run({})[1] == ["field 'format_version' is missing", "field 'status' is missing"]


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_decode_chunk_names_truncated_foreign_and_incomplete_chunks() -> None:
    good = _parquet(pa.table({"step": [0, 1], "time": [0.0, 1.0], "key": ["a", "b"], "value": [1.0, 2.0]}))
    assert decode_chunk(good, METRICS).column("value").to_pylist() == [1.0, 2.0]
    for data in (b"", good[: len(good) // 2], good[:-3], b"PAR1" + b"\0" * 100, b"not parquet at all"):
        with pytest.raises(StorageError, match="not a readable Parquet file"):
            decode_chunk(data, METRICS)
    with pytest.raises(StorageError, match="not a readable Parquet file"):
        decode_chunk(_parquet(pa.table({"step": ["x"], "key": ["a"]})), METRICS)  # a step that is no number
    with pytest.raises(StorageError, match="1 of 1 rows have no 'key'"):
        decode_chunk(_parquet(pa.table({"step": [0], "value": [1.0]})), METRICS)
    with pytest.raises(StorageError, match="rows have no 'edges'"):
        decode_chunk(_parquet(pa.table({"step": [0], "tensor": ["w"], "kind": ["gradient"]})), HISTOGRAMS)
