"""Many writers finishing at once, and readers folding meanwhile, never lose an index entry.

Real processes (:mod:`tests.read.index_racers`) finish together on a local folder and on
S3 (moto) while this process reads runs tables through the index over and over; then the
table the index gives equals the one read from every ``run.json``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from tests.read.index_racers import finish_together
from tests.storage.racers import run_race

WRITERS = 6


def _target(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any] | None]:
    if kind == "local":
        return str(tmp_path / "runs"), None
    server = request.getfixturevalue("s3_server")
    return f"s3://{server.new_bucket()}/exp", server.storage_options


def _view(store: Store) -> list[tuple[Any, ...]]:
    runs = store.runs("p")
    return sorted((r.id, r.status, len(r.doc["sessions"]), r.summary["loss"]["last"]) for r in runs)


def _race_while_reading(url: str, options: dict[str, Any] | None, spool: str, run: str, processes: int) -> None:
    done = threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        while not done.is_set():
            try:
                Store(url, options).runs("p")
            except BaseException as err:  # noqa: BLE001 - the test fails on it below
                failures.append(err)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        results = run_race(finish_together, (url, options, spool, run), processes=processes, trials=2)
    finally:
        done.set()
        reader.join(60)
    assert [r for r in results if r[2] != "done"] == []
    assert failures == []


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_many_writers_finishing_at_once_never_lose_an_index_entry(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, options = _target(kind, tmp_path, request)
    first = TrackerLogger(url, name="p", version="first", storage_options=options, tensorboard=False)
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("success")
    Store(url, options).runs("p")  # the index exists before the race (the first read builds it)
    _race_while_reading(url, options, str(tmp_path / "spool"), "w{me}-{trial}", WRITERS)
    indexed = _view(Store(url, options))
    assert [(rid, status) for rid, status, *_ in indexed if rid != "first"] == [
        (f"w{me}-{trial}", "finished") for me in range(WRITERS) for trial in range(2)
    ]
    assert indexed == _view(Store(url, options, index=False))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_resumes_of_one_run_at_once_leave_the_index_as_the_run_folder(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, options = _target(kind, tmp_path, request)
    logger = TrackerLogger(url, name="p", version="shared", storage_options=options, tensorboard=False)
    logger.log_metrics({"loss": 9.0}, step=0)
    logger.finalize("success")
    Store(url, options).runs("p")
    _race_while_reading(url, options, str(tmp_path / "spool"), "shared", 2)
    indexed = _view(Store(url, options))
    assert [(rid, status) for rid, status, *_ in indexed] == [("shared", "finished")]
    assert indexed == _view(Store(url, options, index=False))
