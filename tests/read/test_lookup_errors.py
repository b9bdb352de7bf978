"""Each way a read can fail has its own error type, on a real store in a temp folder.

No such run, an ambiguous id, a missing project, checkpoint or media key, an object gone
from under its index, and a folder that keeps changing while read: each is told apart by
type; each "not there" derives from ``NotFoundError`` (a ``LookupError``), an object
gone from under its index is the store's failure (a ``StorageError``), and none of them is
a ``RunNotFoundError`` unless it is a run that is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import (
    AmbiguousRunError,
    CheckpointNotFoundError,
    InvalidArgumentError,
    MediaNotFoundError,
    NotFoundError,
    ObjectMissingError,
    ProjectNotFoundError,
    RunNotFoundError,
    StorageError,
    StoreChangedError,
    TransientStoreError,
)
from lightning_tracker.format.layout import MEDIA_FILES_DIR, METRICS_DIR, MODELS_DIR, chunk_name


def _runs(save_dir: Path, *versions: str) -> Store:
    for version in versions:
        logger = TrackerLogger(save_dir, name="p", version=version, tensorboard=False)
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.log_image("samples", [np.zeros((4, 6, 3), np.uint8)], step=0)
        logger.finalize("success")
    return Store(str(save_dir))


def test_no_such_run_is_run_not_found(tmp_path: Path) -> None:
    store = _runs(tmp_path, "abc-1")
    with pytest.raises(RunNotFoundError, match="no run 'nope' in .*; list runs with: lightning-tracker runs") as err:
        store.run("nope")
    assert type(err.value) is RunNotFoundError and isinstance(err.value, FileNotFoundError)


def test_an_id_prefix_of_several_runs_is_ambiguous_not_missing(tmp_path: Path) -> None:
    store = _runs(tmp_path, "abc-1", "abc-2")
    with pytest.raises(AmbiguousRunError, match=r"'abc' matches 2 runs .*\(abc-1, abc-2\); give more of the id") as err:
        store.run("abc")
    assert isinstance(err.value, InvalidArgumentError) and isinstance(err.value, LookupError)
    assert not isinstance(err.value, RunNotFoundError), "the runs exist: the argument is what is wrong"
    assert store.run("abc-2").id == "abc-2"


def test_a_missing_project_is_named_with_the_projects_there_are(tmp_path: Path) -> None:
    store = _runs(tmp_path, "abc-1")
    with pytest.raises(ProjectNotFoundError, match=r"no project 'q' in .*; its projects: p") as err:
        store.run("abc-1", project="q")
    assert isinstance(err.value, NotFoundError) and not isinstance(err.value, RunNotFoundError)
    with pytest.raises(RunNotFoundError) as no_run:
        store.run("nope", project="p")
    assert type(no_run.value) is RunNotFoundError, "the project exists: the run does not"


def test_a_missing_checkpoint_alias_is_checkpoint_not_found(tmp_path: Path) -> None:
    run = _runs(tmp_path, "abc-1").run("abc-1")
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint 'best' in run .*aliases: none") as err:
        run.checkpoint("best")
    assert isinstance(err.value, NotFoundError) and isinstance(err.value, LookupError)
    assert not isinstance(err.value, RunNotFoundError), "the run exists"


def test_media_never_logged_is_media_not_found(tmp_path: Path) -> None:
    run = _runs(tmp_path, "abc-1").run("abc-1")
    with pytest.raises(MediaNotFoundError, match="no media 'nope' in run abc-1; keys: samples") as err:
        run.read_media("nope", step=0)
    assert isinstance(err.value, NotFoundError) and isinstance(err.value, LookupError)
    assert not isinstance(err.value, RunNotFoundError), "the run exists"
    with pytest.raises(MediaNotFoundError, match="no media 'samples' at step 5 index 0 in run abc-1; its steps: 0"):
        run.read_media("samples", step=5)


def test_a_media_object_deleted_from_under_its_index_is_object_missing(tmp_path: Path) -> None:
    run = _runs(tmp_path, "abc-1").run("abc-1")
    assert run.read_media("samples", step=0).size == (6, 4)
    os.remove(os.path.join(tmp_path, run.path, MEDIA_FILES_DIR, run.media()["object"].iloc[0]))
    with pytest.raises(ObjectMissingError, match="is listed in the media index but missing") as err:
        run.read_media("samples", step=0)
    assert isinstance(err.value, StorageError) and isinstance(err.value, FileNotFoundError)


def test_a_checkpoint_deleted_since_the_list_was_read_is_object_missing(tmp_path: Path) -> None:
    from tests.helpers import lightning, tiny_model, trainer

    logger = TrackerLogger(tmp_path, name="p", log_model=True, tensorboard=False)
    trainer(logger, max_epochs=1, enable_checkpointing=True, callbacks=[lightning().callbacks.ModelCheckpoint()]).fit(
        tiny_model()
    )
    run = Store(str(tmp_path)).run(logger.version)
    ref = run.checkpoint("latest")
    os.remove(os.path.join(tmp_path, run.path, MODELS_DIR, ref.name))
    with pytest.raises(ObjectMissingError, match=f"checkpoint {ref.name!r} is listed but missing") as err:
        ref.download(tmp_path / "gone.ckpt")
    assert isinstance(err.value, StorageError) and not isinstance(err.value, NotFoundError), "the store lost it"
    assert not (tmp_path / "gone.ckpt").exists()


def test_chunks_that_keep_vanishing_while_read_are_a_transient_store_change(tmp_path: Path) -> None:
    run = _runs(tmp_path, "abc-1").run("abc-1")
    # a chunk that is listed and gone when read, at every listing: a compaction that never settles
    gone = os.path.join(tmp_path, run.path, METRICS_DIR, chunk_name(7, 0, 0, "zzzzzzzz"))
    os.symlink(os.path.join(tmp_path, "deleted.parquet"), gone)
    with pytest.raises(
        StoreChangedError, match="the metrics at .* kept changing while being read .*; try again"
    ) as err:
        run.metrics()
    assert isinstance(err.value, TransientStoreError) and isinstance(err.value, OSError)
    assert not isinstance(err.value, (RunNotFoundError, StorageError)), "neither missing nor damaged: read again"
    os.remove(gone)
    assert run.metrics()["loss"].tolist() == [1.0]
