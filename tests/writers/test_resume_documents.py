"""A resumed run reads its stored documents as the readers do: the same checked, typed object.

A legacy form read without loss (``tags`` written as one string) resumes as one tag, never
as its letters, and the reader shows the same tags. A damaged ``run.json``, ``config.json``
or ``models.json`` stops the resume before anything is written, with one line naming the
file, the field, its value and the fix, while the reader calls the same run damaged.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.codec import dumps, loads
from lightning_tracker.format.layout import CONFIG_FILE, MODELS_FILE, RUN_FILE
from lightning_tracker.storage import Storage
from tests.helpers import tiny_model_class, trainer


class _CountingModel(tiny_model_class()):  # type: ignore[misc]
    """The tiny model, counting its training steps."""

    steps = 0

    def training_step(self, batch: Any, index: int) -> Any:
        type(self).steps += 1
        return super().training_step(batch, index)


def _fit(logger: TrackerLogger) -> None:
    _CountingModel.steps = 0
    trainer(logger, max_epochs=1).fit(_CountingModel())


def _first_run(save_dir: str, options: Any) -> str:
    logger = TrackerLogger(save_dir, name="p", storage_options=options, flush_interval=0.2)
    _fit(logger)
    if not Storage(save_dir, options).is_local:
        shutil.rmtree(logger.log_dir)  # resumed on another machine: the store's copy is the only one
    return logger.version


def _edit(save_dir: str, options: Any, run_id: str, name: str, change: Any) -> bytes:
    """Rewrites the stored document ``name`` of the run (a dict of fields to set, or raw bytes)."""
    storage = Storage(save_dir, options)
    rel = f"p/{run_id}/{name}"
    data = change if isinstance(change, bytes) else dumps({**loads(storage.read_bytes(rel)), **change})
    storage.write_bytes(rel, data)
    return data


def _stored(save_dir: str, options: Any) -> dict[str, bytes]:
    storage = Storage(save_dir, options)
    # the project index (.index/) is a cache any reader may write: not the runs' files
    return {rel: storage.read_bytes(rel) for rel in sorted(storage.find("")) if "/.index/" not in f"/{rel}"}


def test_a_tags_string_resumes_as_one_tag_and_the_reader_shows_the_same_tags(
    store_target: tuple[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    save_dir, options = store_target
    run_id = _first_run(save_dir, options)
    _edit(save_dir, options, run_id, RUN_FILE, {"tags": "baseline"})
    before = Store(save_dir, options).run(run_id)
    assert before.tags == ["baseline"] and before.status == "finished", before.damage

    logger = TrackerLogger(save_dir, name="p", version=run_id, tags=["resumed"], storage_options=options)
    with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
        _fit(logger)
    written = json.loads((Path(logger.experiment.local_dir) / RUN_FILE).read_text())  # the writer's own copy
    assert written["tags"] == ["baseline", "resumed"], "never ['a', 'b', 'e', 'i', 'l', 'n', 's', ...]"
    assert "field 'tags' is 'baseline'; read as ['baseline']" in caplog.text

    after = Store(save_dir, options).run(run_id)
    assert after.tags == ["baseline", "resumed"] and after.status == "finished" and len(after.doc["sessions"]) == 2
    stored = json.loads(Storage(save_dir, options).read_bytes(f"p/{run_id}/{RUN_FILE}"))
    assert stored["tags"] == ["baseline", "resumed"], "written back as a list"


@pytest.mark.parametrize(
    ("name", "change", "problem"),
    [
        (
            RUN_FILE,
            {"tags": "baseline", "start_time": "yesterday"},
            "field 'start_time' is 'yesterday'; expected a number of Unix seconds",
        ),
        (RUN_FILE, {"sessions": 5}, "field 'sessions' is 5; expected a list of objects"),
        (RUN_FILE, {"format_version": 99}, "format_version 99 is newer than this reader's 3; upgrade"),
        (RUN_FILE, b"{not json", "not JSON"),
        (CONFIG_FILE, {"nested": "lr=0.1"}, "field 'nested' is 'lr=0.1'; expected an object"),
    ],
)
def test_a_damaged_document_stops_the_resume_naming_it_and_the_reader_calls_the_run_damaged(
    store_target: tuple[str, Any], name: str, change: Any, problem: str
) -> None:
    save_dir, options = store_target
    run_id = _first_run(save_dir, options)
    _edit(save_dir, options, run_id, name, change)
    reader = Store(save_dir, options).run(run_id)
    if name == CONFIG_FILE:
        reader.config  # noqa: B018 - the reader checks config.json when it first reads it
    assert reader.status == "damaged" and problem in (reader.damage or "")
    before = _stored(save_dir, options)

    logger = TrackerLogger(save_dir, name="p", version=run_id, tags=["resumed"], storage_options=options)
    with pytest.raises(StorageError) as err:
        _fit(logger)
    message = str(err.value)
    assert _CountingModel.steps == 0, "refused before any training step"
    assert "\n" not in message and f"cannot resume run p/{run_id}: " in message
    assert f"{run_id}/{name}" in message.replace("\\", "/") and problem in message, message
    assert "repair the file" in message and "pass another version" in message
    assert _stored(save_dir, options) == before, "nothing of the run was rewritten"


def test_a_damaged_manifest_stops_the_resume_of_a_run_that_stores_checkpoints(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    first = TrackerLogger(save_dir, name="p", log_model=True)
    trainer(first, max_epochs=1, enable_checkpointing=True).fit(_CountingModel())
    run_id = first.version
    assert Store(save_dir).run(run_id).checkpoints, "the first session stored a checkpoint"
    _edit(save_dir, None, run_id, MODELS_FILE, {"format_version": 1, "checkpoints": "best.ckpt", "aliases": {}})
    logger = TrackerLogger(save_dir, name="p", version=run_id, log_model=True)
    with pytest.raises(StorageError, match=r"models\.json is damaged \(field 'checkpoints' is 'best\.ckpt'"):
        _fit(logger)
    assert _CountingModel.steps == 0


def test_a_repaired_run_resumes_after_the_error(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    run_id = _first_run(save_dir, None)
    good = Storage(save_dir).read_bytes(f"p/{run_id}/{RUN_FILE}")
    _edit(save_dir, None, run_id, RUN_FILE, {"start_time": "yesterday"})
    with pytest.raises(StorageError, match="field 'start_time' is 'yesterday'"):
        _fit(TrackerLogger(save_dir, name="p", version=run_id))
    _edit(save_dir, None, run_id, RUN_FILE, good)  # the fix the message names
    _fit(TrackerLogger(save_dir, name="p", version=run_id))
    run = Store(save_dir).run(run_id)
    assert run.status == "finished" and len(run.doc["sessions"]) == 2
