"""``resume="never"`` raced by real processes: exactly one opens the run, the others raise
``RunExistsError`` before training starts, and the run holds the winner's session only.

Processes are started together and released at one barrier per trial, on a local folder,
on S3 (moto, applying one request at a time as S3 applies a conditional write) and offline
on one machine's spool.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.storage import Storage, register_storage
from lightning_tracker.storage.local import LocalStorage
from lightning_tracker.writers.spool import spool_dir_for
from tests.storage.racers import resume_never_race, run_race, winners


def _target(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any] | None]:
    if kind == "local":
        return str(tmp_path / "runs"), None
    server = request.getfixturevalue("serial_s3")
    return f"s3://{server.new_bucket()}/exp", server.storage_options


def _race(kind: str, tmp_path: Path, request: pytest.FixtureRequest, processes: int, trials: int, fit: bool) -> Any:
    url, options = _target(kind.removesuffix("-offline"), tmp_path, request)
    offline = kind.endswith("-offline")
    results = run_race(
        resume_never_race, (url, options, str(tmp_path / "spool"), offline, fit), processes=processes, trials=trials
    )
    assert [r for r in results if r[2] not in ("won", "lost")] == []
    won = winners(results, trials)
    assert {trial: len(who) for trial, who in won.items()} == dict.fromkeys(range(trials), 1)
    pids = {(trial, me): pid for trial, me, _, _, pid, _ in results}
    steps = {(trial, me): n for trial, me, _, n, _, _ in results}
    store = Store(spool_dir_for(Storage(url, options), str(tmp_path / "spool")) if offline else url, options)
    return won, pids, steps, store


@pytest.mark.parametrize(("kind", "trials"), [("local", 8), ("s3", 6), ("s3-offline", 4)])
def test_resume_never_opened_by_three_processes_at_once_has_exactly_one_winner(
    kind: str, trials: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    won, pids, _, store = _race(kind, tmp_path, request, processes=3, trials=trials, fit=False)
    for trial, (who,) in won.items():
        run = store.run(f"race-{trial}")
        sessions = run.doc["sessions"]
        assert [s["pid"] for s in sessions] == [pids[trial, who]]  # one session: the winner's
        assert run.config == {"who": who}
        assert run.status == "finished"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_the_loser_of_resume_never_raises_before_training_starts(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    trials = 2
    won, pids, steps, store = _race(kind, tmp_path, request, processes=2, trials=trials, fit=True)
    for trial, (who,) in won.items():
        loser = 1 - who
        assert steps[trial, loser] == 0  # not one training step ran in the loser
        assert steps[trial, who] > 0
        run = store.run(f"race-{trial}")
        assert [s["pid"] for s in run.doc["sessions"]] == [pids[trial, who]]
        values = run.metrics(["who"], wide=False)
        assert len(values) == steps[trial, who]
        assert set(values["value"]) == {float(who)}  # every stored step is the winner's


def test_resume_never_on_a_store_without_an_atomic_create_warns_that_it_only_checked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class NoCreateStorage(LocalStorage):
        def create_bytes(self, rel: str, data: bytes) -> None:
            raise self._not_implemented("create_bytes")

    register_storage("file", NoCreateStorage, replace=True)
    try:
        save_dir = str(tmp_path / "runs")
        assert type(Storage(save_dir)) is NoCreateStorage
        with caplog.at_level(logging.WARNING, logger="lightning_tracker"):
            logger = TrackerLogger(save_dir, name="p", version="checked", resume="never", tensorboard=False)
            logger.log_hyperparams({"a": 1})
            logger.finalize("success")
    finally:
        register_storage("file", LocalStorage, replace=True)
    assert Store(save_dir).run("checked").config == {"a": 1}
    assert "cannot create a file only if it is absent" in caplog.text
    assert "would not be stopped" in caplog.text
