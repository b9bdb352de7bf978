"""``Storage.create_bytes``: write only where nothing is, atomically, on every target.

The race tests start real processes together (a local folder, S3 on moto, GCS on
fake-gcs-server, Azure on Azurite, each a real server on 127.0.0.1) and release them at
one barrier per trial: exactly one process wins every trial.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

import tests.servers  # noqa: F401 - sets the gcsfs environment before gcsfs is imported
from lightning_tracker.storage import Storage, register_storage
from tests.storage.conftest import TARGETS, target_url
from tests.storage.racers import create_race, run_race, winners
from tests.storage.serial_s3 import SerialS3Server


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict | None]:
    return target_url(kind, request, tmp_path, s3="serial_s3")  # S3's atomic conditional write (serial_s3.py)


@pytest.mark.parametrize("kind", TARGETS)
def test_create_bytes_refuses_an_existing_file_and_keeps_its_content(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = Storage(*_url(kind, request, tmp_path))
    store.create_bytes("p/r/run.json", b"first")
    with pytest.raises(FileExistsError):
        store.create_bytes("p/r/run.json", b"second")
    store.write_bytes("p/r/other.json", b"written")
    with pytest.raises(FileExistsError):
        store.create_bytes("p/r/other.json", b"second")
    assert store.read_bytes("p/r/run.json") == b"first"
    assert store.read_bytes("p/r/other.json") == b"written"
    assert store.find("p/r") == {"run.json": 5, "other.json": 7}  # no temporary file left behind


@pytest.mark.parametrize(("kind", "trials"), [("local", 40), ("s3", 25), ("gcs", 25), ("azure", 25)])
def test_create_bytes_is_won_by_exactly_one_of_four_processes_started_together(
    kind: str, trials: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url, options = _url(kind, request, tmp_path)
    results = run_race(create_race, (url, options), processes=4, trials=trials)
    assert [r for r in results if r[2] not in ("won", "lost")] == []
    won = winners(results, trials)
    assert {trial: len(who) for trial, who in won.items()} == dict.fromkeys(range(trials), 1)
    store = Storage(url, options)
    for trial, (who,) in won.items():  # the file holds the winner's bytes, whole
        assert store.read_bytes(f"p/t{trial}/run.json") == f"process {who}".encode()


def test_create_bytes_on_memory_is_won_by_exactly_one_of_eight_threads() -> None:
    # memory:// lives in one process: its racers are threads
    store = Storage(f"memory://c-{uuid.uuid4().hex[:10]}/exp")
    for trial in range(50):
        barrier, won = threading.Barrier(8), []

        def create(me: int, trial: int = trial, barrier: threading.Barrier = barrier, won: list = won) -> None:
            barrier.wait()
            try:
                store.create_bytes(f"t{trial}", str(me).encode())
                won.append(me)
            except FileExistsError:
                pass

        threads = [threading.Thread(target=create, args=(me,)) for me in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1, f"trial {trial}: {won}"
        assert store.read_bytes(f"t{trial}") == str(won[0]).encode()


def test_create_bytes_on_s3_is_one_conditional_put(serial_s3: SerialS3Server) -> None:
    bucket = serial_s3.new_bucket()
    store = Storage(f"s3://{bucket}/exp", serial_s3.storage_options)
    before = len(serial_s3.puts)
    store.create_bytes("p/r/run.json", b"x" * (1 << 20))  # past s3fs's multipart size, still one PUT
    with pytest.raises(FileExistsError):
        store.create_bytes("p/r/run.json", b"y")
    assert serial_s3.puts[before:] == [(f"/{bucket}/exp/p/r/run.json", "*")] * 2


def test_create_bytes_on_s3_retries_a_conditional_request_conflict(serial_s3: SerialS3Server) -> None:
    bucket = serial_s3.new_bucket()
    store = Storage(f"s3://{bucket}/exp", serial_s3.storage_options)
    key = f"/{bucket}/exp/p/r/run.json"
    serial_s3.conflict_once.add(key)
    store.create_bytes("p/r/run.json", b"mine")
    assert store.read_bytes("p/r/run.json") == b"mine"
    assert [put for put in serial_s3.puts if put[0] == key] == [(key, "*")] * 2  # the 409, then the create


def test_a_backend_without_create_bytes_says_so(tmp_path: Path) -> None:
    class PlainStorage(Storage):
        pass

    register_storage("plaincreate", PlainStorage)
    with pytest.raises(NotImplementedError, match=r"PlainStorage does not implement Storage\.create_bytes\(\)"):
        Storage("plaincreate://bucket/exp").create_bytes("p/r/run.json", b"{}")


def test_an_fsspec_protocol_without_an_atomic_create_refuses_it_instead_of_checking_then_writing() -> None:
    store = Storage("ftp://127.0.0.1/exp")  # nothing is sent: the refusal comes first
    with pytest.raises(NotImplementedError, match=r"ftp://127\.0\.0\.1/exp/run\.json cannot be created only-if-absent"):
        store.create_bytes("run.json", b"{}")


def test_a_package_too_old_to_send_a_conditional_write_is_refused_naming_the_upgrade(
    serial_s3: SerialS3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_tracker.storage import remote

    monkeypatch.setattr(remote, "_release", lambda package: (2024, 6, 0))  # what an s3fs before 2024.12 reports
    store = Storage(f"s3://{serial_s3.new_bucket()}/exp", serial_s3.storage_options)
    before = len(serial_s3.puts)
    with pytest.raises(
        NotImplementedError,
        match=r's3fs 2024\.6\.0 sends no conditional write; upgrade it: pip install "s3fs>=2024\.12"',
    ):
        store.create_bytes("p/r/run.json", b"{}")
    assert serial_s3.puts[before:] == []  # refused before any request: never a plain PUT
