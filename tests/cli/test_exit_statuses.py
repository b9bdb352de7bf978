"""The command line's exit status follows the error's type: 1 nothing matched, 2 usage, 3 transient.

Real stores in a temp folder (and a port nobody listens on), the real ``main``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.cli.failures import EXIT_STATUSES, exit_status
from lightning_tracker.exceptions import TrackerError
from lightning_tracker.format.layout import HISTOGRAMS_DIR, chunk_name


def _store(tmp_path: Path, *versions: str) -> str:
    save_dir = str(tmp_path / "runs")
    for version in versions:
        logger = TrackerLogger(save_dir, name="p", version=version, tensorboard=False)
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
    return save_dir


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_no_such_run_an_ambiguous_id_and_a_missing_project_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = _store(tmp_path, "abc-1", "abc-2")
    assert main(["show", "nope", "-s", save_dir]) == 2
    assert "no run 'nope'" in _one_error_line(capsys)
    assert main(["show", "abc", "-s", save_dir]) == 2
    assert "'abc' matches 2 runs" in _one_error_line(capsys)
    assert main(["show", "abc-1", "-s", save_dir, "-p", "q"]) == 2
    assert "no project 'q'" in _one_error_line(capsys)
    assert main(["runs", "-s", save_dir, "-p", "q"]) == 2
    assert "no project 'q'" in _one_error_line(capsys)


def test_a_valid_query_that_matches_nothing_exits_1_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = _store(tmp_path, "abc-1")
    assert main(["runs", "-s", save_dir, "-p", "p", "--where", "loss>5"]) == 1
    captured = capsys.readouterr()
    assert "no runs match --where 'loss>5'" in captured.out and captured.err == ""


def test_a_store_that_keeps_changing_while_read_exits_3_not_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = _store(tmp_path, "abc-1")
    run = Store(save_dir).run("abc-1")
    # a histogram chunk listed at every listing and gone at every read: a compaction racing the reader
    folder = os.path.join(save_dir, run.path, HISTOGRAMS_DIR)
    os.makedirs(folder, exist_ok=True)
    os.symlink(os.path.join(tmp_path, "deleted.parquet"), os.path.join(folder, chunk_name(7, 0, 0, "zzzzzzzz")))
    assert main(["hist", "abc-1", "-s", save_dir, "--out", str(tmp_path / "h")]) == 3
    assert "kept changing while being read" in _one_error_line(capsys)


def test_a_store_whose_server_does_not_answer_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.servers import free_port

    options = {
        "key": "k",
        "secret": "s",
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    assert main(["runs", "-s", "s3://bucket/exp", "--storage-options", json.dumps(options)]) == 3
    assert "cannot reach the server of s3://bucket/exp" in _one_error_line(capsys)


def test_a_bad_environment_variable_is_a_usage_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = _store(tmp_path, "abc-1")
    monkeypatch.setenv("LIGHTNING_TRACKER_STORAGE_OPTIONS", "{anon}")
    assert main(["runs", "-s", save_dir]) == 2
    assert "$LIGHTNING_TRACKER_STORAGE_OPTIONS='{anon}' is not JSON" in _one_error_line(capsys)


def test_the_help_lists_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "exit statuses: 0 done; 1 nothing matched" in said and "3 the store changed while being read" in said


def test_every_error_type_has_one_status_and_subclasses_come_first() -> None:
    import lightning_tracker.exceptions as exceptions

    kinds = [kind for kind, _ in EXIT_STATUSES]
    for i, kind in enumerate(kinds):  # a base before its subclass would hide the subclass's status
        assert not [k.__name__ for k in kinds[i + 1 :] if issubclass(k, kind)], kind.__name__
    errors = [getattr(exceptions, name) for name in exceptions.__all__]
    assert all(issubclass(e, TrackerError) for e in errors)
    statuses = {e.__name__: exit_status(e("x")) for e in errors}
    assert {n for n, s in statuses.items() if s == 3} == {
        "StoreChangedError",
        "StoreUnreachableError",
        "TransientStoreError",
    }
    assert statuses["AmbiguousRunError"] == statuses["ProjectNotFoundError"] == statuses["RunNotFoundError"] == 2
    assert statuses["NothingMatchedError"] == statuses["ObjectMissingError"] == statuses["StorageError"] == 1
