"""``rm`` beside writers: a run being deleted cannot be resumed, a run written lately is refused,
a run written while it is deleted keeps its mark, and a target names one run or none.

Real local stores, real ``TrackerLogger`` writers, the real ``lightning-tracker`` entry point.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.cli.failures import exit_status
from lightning_tracker.exceptions import InvalidArgumentError, RunExistsError, StoreChangedError
from lightning_tracker.format import codec
from lightning_tracker.format.edits import new_tombstone
from lightning_tracker.format.layout import EDITS_DIR, RUN_FILE, TOMBSTONE_FILE
from lightning_tracker.manage.delete import delete_run, plan_deletion
from lightning_tracker.storage import Storage
from lightning_tracker.storage.local import LocalStorage


def _run(save_dir: str, version: str, *, finish: bool = True, **kwargs: object) -> TrackerLogger:
    logger = TrackerLogger(save_dir, name="p", version=version, tensorboard=False, **kwargs)  # type: ignore[arg-type]
    logger.log_metrics({"loss": 1.0}, step=0)
    if finish:
        logger.finalize("success")
    return logger


def _mark(save_dir: str, run_id: str) -> None:
    """What an ``rm`` killed right after its first step leaves: the mark, the run whole."""
    Storage(save_dir).write_bytes(
        f"p/{EDITS_DIR}/{run_id}/{TOMBSTONE_FILE}", codec.dumps(new_tombstone(time.time(), run_id))
    )


def _beat(save_dir: str, run_id: str, age_s: float) -> None:
    """Makes the run's last heartbeat ``age_s`` old, as a writer on another host whose beats stopped reaching us."""
    path = Path(save_dir) / "p" / run_id / RUN_FILE
    doc = json.loads(path.read_bytes())
    doc.update(status="running", heartbeat=time.time() - age_s, heartbeat_interval_s=2.0)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("resume", ["allow", "must"])
def test_a_writer_refuses_to_resume_a_run_being_deleted(
    tmp_path: Path, request: pytest.FixtureRequest, resume: str, where: str
) -> None:
    save_dir, options = str(tmp_path / "runs"), None
    if where == "s3":
        server = request.getfixturevalue("s3_server")
        save_dir, options = f"s3://{server.new_bucket()}/exp", server.storage_options
    _run(save_dir, "r1", storage_options=options)
    storage = Storage(save_dir, options)
    storage.write_bytes(f"p/{EDITS_DIR}/r1/{TOMBSTONE_FILE}", codec.dumps(new_tombstone(time.time(), "r1")))
    before = storage.find("p/r1")
    logger = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False, resume=resume, storage_options=options)
    with pytest.raises(RunExistsError, match=r"run r1 of project p .* is being deleted; .*lightning-tracker rm r1"):
        logger.log_metrics({"loss": 0.5}, step=1)
    assert storage.find("p/r1") == before
    assert Store(save_dir, options).runs("p") == []


def test_a_new_run_is_not_started_in_the_folder_of_a_half_deleted_run(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False)
    logger.log_metrics({"old_metric": 9.0}, step=0)
    logger.finalize("success")
    _mark(save_dir, "r1")
    (tmp_path / "runs" / "p" / "r1" / RUN_FILE).unlink()  # rm killed right after removing run.json
    logger = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False)
    with pytest.raises(RunExistsError, match="is being deleted"):
        logger.log_metrics({"loss": 0.1}, step=0)
    assert not (tmp_path / "runs" / "p" / "r1" / RUN_FILE).exists()
    assert main(["rm", "r1", "-s", save_dir, "--yes"]) == 0
    assert not (tmp_path / "runs" / "p" / "r1").exists()


def test_rm_of_a_project_refuses_a_half_deleted_run_a_writer_is_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir, "other")
    logger = _run(save_dir, "r1", finish=False, flush_interval=0.1)
    logger.experiment.flush()
    try:
        _mark(save_dir, "r1")  # an rm killed after its mark, while the writer writes on
        capsys.readouterr()
        assert main(["rm", "-p", "p", "-s", save_dir, "--yes"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: run r1") and "--force" in err and err.count("\n") == 1, err
        assert (tmp_path / "runs" / "p" / "r1" / RUN_FILE).exists()
        assert [r.id for r in Store(save_dir).runs("p")] == ["other"]
    finally:
        logger.finalize("success")


def test_rm_undo_takes_back_a_deletion_that_removed_nothing_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir, "r1")
    _mark(save_dir, "r1")
    assert Store(save_dir).runs("p") == []
    capsys.readouterr()
    assert main(["rm", "--undo", "r1", "-s", save_dir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"undone": [{"project": "p", "id": "r1"}]}
    assert [r.id for r in Store(save_dir).runs("p")] == ["r1"]
    (tmp_path / "runs" / "p" / "r1" / RUN_FILE).unlink()
    _mark(save_dir, "r1")
    capsys.readouterr()
    assert main(["rm", "--undo", "r1", "-s", save_dir]) == 2
    err = capsys.readouterr().err
    assert "run.json is gone" in err and "lightning-tracker rm r1" in err and err.count("\n") == 1, err


def test_rm_refuses_a_run_whose_heartbeat_is_younger_than_ten_minutes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir, "r1")
    _beat(save_dir, "r1", age_s=120.0)
    assert Store(save_dir).run("r1").status == "crashed"  # stale to a reader: the writer may be on another host
    capsys.readouterr()
    assert main(["rm", "r1", "-s", save_dir, "--yes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run r1") and "2 minutes ago" in err and "--force" in err and err.count("\n") == 1
    assert (tmp_path / "runs" / "p" / "r1" / RUN_FILE).exists()
    _beat(save_dir, "r1", age_s=11 * 60.0)
    assert main(["rm", "r1", "-s", save_dir, "--yes"]) == 0
    assert not (tmp_path / "runs" / "p" / "r1").exists()


def test_rm_checks_the_heartbeat_again_just_before_deleting(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir, "r1")
    store = Store(save_dir)
    plan = plan_deletion(store, [store.run("r1")])
    _beat(save_dir, "r1", age_s=1.0)  # resumed while the plan waited at the prompt
    with pytest.raises(InvalidArgumentError, match="run r1 .*written"):
        delete_run(store.storage, plan[0])
    assert (tmp_path / "runs" / "p" / "r1" / RUN_FILE).exists()
    assert not (tmp_path / "runs" / "p" / EDITS_DIR / "r1" / TOMBSTONE_FILE).exists()


class _WrittenDuringDeletion(LocalStorage):
    """A local store where a writer uploads one more chunk the moment ``run.json`` is removed."""

    def rm(self, rel: str) -> None:
        super().rm(rel)
        if rel == f"p/r1/{RUN_FILE}":
            self.write_bytes("p/r1/metrics/009-00000000-00000001.parquet", b"late")


def test_a_run_written_while_it_is_deleted_keeps_its_mark_and_rm_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir, "r1")
    store = Store(save_dir)
    plan = plan_deletion(store, [store.run("r1")])
    with pytest.raises(StoreChangedError, match="still being written; rm again") as caught:
        delete_run(_WrittenDuringDeletion(save_dir), plan[0])
    assert exit_status(caught.value) == 3  # "run the command again"
    assert (tmp_path / "runs" / "p" / EDITS_DIR / "r1" / TOMBSTONE_FILE).exists()
    assert Store(save_dir).runs("p") == []
    assert main(["rm", "r1", "-s", save_dir, "--yes"]) == 0
    assert not (tmp_path / "runs" / "p" / "r1").exists()
    assert not (tmp_path / "runs" / "p" / EDITS_DIR / "r1").exists()


def test_an_exact_id_that_is_another_runs_name_is_ambiguous_to_rm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir, "baseline")
    _run(save_dir, "r2", run_name="baseline")  # named at start: nothing checks a writer's name
    capsys.readouterr()
    assert main(["rm", "baseline", "-s", save_dir, "--yes"]) == 2
    err = capsys.readouterr().err
    assert "'baseline' is the id of run baseline and the name of run r2" in err and err.count("\n") == 1, err
    assert [r.id for r in Store(save_dir).runs("p")] == ["baseline", "r2"]


def test_rename_to_another_runs_id_is_refused(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir, "baseline")
    _run(save_dir, "r2")
    with pytest.raises(InvalidArgumentError, match=r"name='baseline' is the id of run baseline of project p"):
        Store(save_dir).run("r2").rename("baseline")
    assert Store(save_dir).run("r2").name != "baseline"


@pytest.mark.parametrize("target", ["", "  "])
def test_an_empty_run_target_is_refused_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    save_dir = str(tmp_path / "runs")
    _run(save_dir, "r1")
    _mark(save_dir, "gone")  # a half-deleted run: a prefix "" matches it too
    with pytest.raises(InvalidArgumentError, match="run id is empty"):
        Store(save_dir).run(target)
    for argv in (["rm", target, "--yes"], ["show", target], ["tag", target, "+x"]):
        capsys.readouterr()
        assert main([*argv, "-s", save_dir]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "empty" in err and err.count("\n") == 1, (argv, err)
    assert [r.id for r in Store(save_dir).runs("p")] == ["r1"]


def test_a_run_whose_deletion_mark_never_reached_the_index_reads_as_deleted(tmp_path: Path) -> None:
    save_dir = str(tmp_path / "runs")
    for version in ("gone", "kept"):
        _run(save_dir, version)
    assert [r.id for r in Store(save_dir).runs("p")] == ["gone", "kept"]  # the index holds both
    _mark(save_dir, "gone")  # rm killed after its mark, before it told the index
    store = Store(save_dir)
    assert [r.id for r in store.runs("p")] == ["kept"]
    assert store.table("p")["id"].tolist() == ["kept"]
