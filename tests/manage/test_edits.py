"""Edits after (and during) a run: tags, note, name, archive; folded by every reader, never overwritten.

Real stores (a local folder, a moto S3 server on 127.0.0.1), a real Lightning ``Trainer``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Run, Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError, RunNotFoundError
from lightning_tracker.format.layout import EDITS_DIR
from tests.helpers import lightning, local_or_s3, tiny_model, trainer


def _finished(save_dir: str, options: dict[str, Any] | None, version: str, **kwargs: Any) -> Store:
    logger = TrackerLogger(save_dir, name="p", version=version, storage_options=options, tensorboard=False, **kwargs)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    return Store(save_dir, options)


def _visible(store: Store, version: str, timeout: float = 30.0) -> Run:
    """The live run once its mirror has copied it to the store: on S3 that lags the writer by a flush or two."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return store.run(version)
        except RunNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("target", ["local", "s3"])
def test_edits_made_while_a_trainer_writes_still_hold_after_it_finalizes(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    started, edited = threading.Event(), threading.Event()

    class Pause(lightning().Callback):  # type: ignore[misc]
        """Holds training at step 3 until the edits are made, so they land mid-run, not after it."""

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 3:
                started.set()
                assert edited.wait(60)

    logger = TrackerLogger(
        save_dir,
        name="p",
        version="live",
        storage_options=options,
        tags=["baseline"],
        notes="first",
        flush_interval=0.1,
    )
    fit = threading.Thread(
        target=lambda: trainer(logger, max_epochs=3, callbacks=[Pause()]).fit(tiny_model()), daemon=True
    )
    fit.start()
    try:
        assert started.wait(120)
        store = Store(save_dir, options)
        run = _visible(store, "live")
        assert run.status == "running"
        run.add_tags("best")
        run.remove_tags("baseline")
        run.set_note("edited while it trained")
        run.rename("live-renamed")
    finally:
        edited.set()
        fit.join(120)
    assert not fit.is_alive()
    after = Store(save_dir, options).run("live")
    assert after.status == "finished" and after.summary["train/loss"]["count"] > 3  # it wrote on after the edits
    assert (after.tags, after.note, after.name) == (["best"], "edited while it trained", "live-renamed")
    assert [r.id for r in Store(save_dir, options).runs("p", where="tags=best")] == ["live"]
    assert Store(save_dir, options).table("p")["name"].tolist() == ["live-renamed"]


@pytest.mark.parametrize("target", ["local", "s3"])
def test_a_resumed_run_keeps_the_edits_made_after_its_first_session(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    store = _finished(save_dir, options, "r1", tags=["a"])
    store.run("r1").add_tags("best")
    store.run("r1").set_note("keep")
    logger = TrackerLogger(save_dir, name="p", version="r1", storage_options=options, tensorboard=False)
    logger.log_metrics({"loss": 0.5}, step=1)
    logger.finalize("success")
    run = Store(save_dir, options).run("r1")
    assert set(run.tags) == {"a", "best"} and run.note == "keep"
    assert run.summary["loss"]["count"] == 2


def test_archived_runs_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _finished(save_dir, None, "r1")
    store = _finished(save_dir, None, "r2")
    store.run("r1").archive()
    assert [r.id for r in store.runs("p")] == ["r2"]
    assert [r.id for r in store.runs("p", archived=True)] == ["r1"]
    assert [r.id for r in store.runs("p", archived=None)] == ["r1", "r2"]
    assert store.table("p")["id"].tolist() == ["r2"]
    assert store.run("r1").archived  # found by id all the same
    store.run("r1").unarchive()
    assert [r.id for r in store.runs("p")] == ["r1", "r2"]


@pytest.mark.parametrize(
    ("call", "arg", "message"),
    [
        (lambda r: r.add_tags("two words"), "tag='two words'", "is not a tag"),
        (lambda r: r.add_tags("-x"), "tag='-x'", "is not a tag"),
        (lambda r: r.rename(""), "name=''", "is not a run name"),
        (lambda r: r.rename("a\nb"), "name='a\\nb'", "one line"),
        (lambda r: r.set_note(7), "note=7", "is not a note"),
    ],
)
def test_a_bad_tag_name_or_note_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, call: Any, arg: str, message: str
) -> None:
    save_dir = str(tmp_path / "runs")
    store = _finished(save_dir, None, "r1")
    with pytest.raises(InvalidArgumentError) as err:
        call(store.run("r1"))
    assert str(err.value).startswith(arg) and message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs" / "p" / EDITS_DIR).exists()


def test_a_damaged_edit_is_named_and_the_other_edits_still_fold(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    store = _finished(save_dir, None, "r1")
    store.run("r1").add_tags("best")
    store.storage.write_bytes(f"p/{EDITS_DIR}/r1/99999999999999999999-zzzz.json", b"{not json")
    run = Store(save_dir).run("r1")
    assert run.tags == ["best"] and run.status == "damaged" and "not JSON" in (run.damage or "")


def test_each_edit_records_a_change_for_the_project_index(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    store = _finished(save_dir, None, "r1")
    before = set(store.storage.find("p/.index/changes"))
    store.run("r1").rename("x")
    added = set(store.storage.find("p/.index/changes")) - before
    assert len(added) == 1
    assert b'"edit"' in store.storage.read_bytes(f"p/.index/changes/{added.pop()}")


def test_an_edit_and_an_archive_show_on_the_live_dashboard(tmp_path: Path) -> None:
    import json
    import urllib.request

    from lightning_tracker.report.server import Dashboard

    save_dir = str(tmp_path / "runs")
    _finished(save_dir, None, "r1")
    store = _finished(save_dir, None, "r2")
    dash = Dashboard(Store(save_dir), port=0, refresh=1e-6).start()
    try:

        def records() -> dict[str, Any]:
            data = json.loads(urllib.request.urlopen(dash.url + "api/data", timeout=30).read())
            return {r["id"]: r for r in data["runs"]}

        assert set(records()) == {"r1", "r2"}
        store.run("r1").add_tags("best")
        store.run("r1").rename("renamed")
        store.run("r2").archive()
        seen = records()
        assert set(seen) == {"r1"} and seen["r1"]["tags"] == ["best"] and seen["r1"]["name"] == "renamed"
    finally:
        dash.stop()
