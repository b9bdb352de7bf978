"""How ``resume="never"`` claims a run when the store's create goes wrong: it fails, hangs,
or answers "exists" to a retry of its own create. Stores are ``memory://`` with a backend
whose ``create_bytes`` misbehaves that way; everything else is the real writer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import StorageError
from lightning_tracker.storage import register_storage
from lightning_tracker.storage.remote import FsspecStorage


@pytest.fixture
def memory_create() -> Iterator[Callable[[Callable[[FsspecStorage, str, bytes], None]], str]]:
    """Makes ``memory://`` create files with the given function; gives a fresh store URL."""

    def install(create: Callable[[FsspecStorage, str, bytes], None]) -> str:
        register_storage("memory", type("Misbehaving", (FsspecStorage,), {"create_bytes": create}), replace=True)
        return f"memory://claim-{uuid.uuid4().hex[:10]}/exp"

    try:
        yield install
    finally:
        register_storage("memory", "lightning_tracker.storage.remote:FsspecStorage", replace=True)


def _open(url: str) -> TrackerLogger:
    logger = TrackerLogger(url, name="p", version="v", resume="never", tensorboard=False, flush_interval=0.1)
    logger.log_hyperparams({"a": 1})
    return logger


def test_resume_never_when_the_store_fails_the_create_raises_a_storage_error_naming_it(
    memory_create: Callable[..., str],
) -> None:
    def denied(self: FsspecStorage, rel: str, data: bytes) -> None:
        raise PermissionError("AccessDenied: no s3:PutObject")

    url = memory_create(denied)
    expected = r"resume='never' needs to create run v in memory://.*/exp/p, but the store failed \(PermissionError: "
    with pytest.raises(StorageError, match=expected + r"AccessDenied: no s3:PutObject\)"):
        _open(url)
    assert Store(url).runs() == []


def test_resume_never_when_the_create_hangs_raises_after_the_check_timeout(
    memory_create: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_CHECK_TIMEOUT_S", "0.5")

    def hangs(self: FsspecStorage, rel: str, data: bytes) -> None:
        time.sleep(30)

    with pytest.raises(StorageError, match=r"store failed \(TimeoutError: no answer within 0.5 s\)"):
        _open(memory_create(hangs))


def test_resume_never_whose_own_create_answers_exists_to_a_retry_opens_the_run(
    memory_create: Callable[..., str],
) -> None:
    def lost_answer(self: FsspecStorage, rel: str, data: bytes) -> None:
        self.write_bytes(rel, data)  # the first request landed, its answer was lost
        raise FileExistsError(rel)  # and the retry was told the file exists

    url = memory_create(lost_answer)
    logger = _open(url)
    logger.finalize("success")
    assert Store(url).run("v").config == {"a": 1}
