"""Shared fixtures: a real S3-compatible server (moto) on 127.0.0.1, stores, a tiny model."""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import free_port

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
logging.getLogger("werkzeug").setLevel(logging.ERROR)


class S3Server:
    """A moto S3 server on 127.0.0.1 that a test can stop and start again (state survives);
    as a context manager, stopped at the end of the block."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._cls = ThreadedMotoServer
        self.port = free_port()
        self._server: Any = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"key": "testing", "secret": "testing", "endpoint_url": self.endpoint}

    def start(self) -> None:
        self._server = self._cls(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def new_bucket(self) -> str:
        import s3fs

        name = f"b-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(**self.storage_options, skip_instance_cache=True).mkdir(name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def serial_s3() -> Iterator[Any]:
    """A moto S3 server applying one request at a time (why: ``tests/storage/serial_s3.py``), for races."""
    from tests.storage.serial_s3 import SerialS3Server

    server = SerialS3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def counting_s3() -> Iterator[Any]:
    """A moto S3 server that counts the requests it answers (:mod:`tests.read.counting_s3`), one per module."""
    from tests.read.counting_s3 import CountingS3Server  # it builds on S3Server, above

    with CountingS3Server() as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated_spool(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_SPOOL", str(tmp_path / "spool"))


@pytest.fixture(params=["local", "memory", "s3"])
def store_target(request: pytest.FixtureRequest, tmp_path: Any) -> tuple[str, dict[str, Any] | None]:
    """``(save_dir, storage_options)`` for every storage target of the contract tests."""
    if request.param == "local":
        return str(tmp_path / "runs"), None
    if request.param == "memory":
        return f"memory://t-{uuid.uuid4().hex[:10]}", None
    server = request.getfixturevalue("s3_server")
    return f"s3://{server.new_bucket()}/exp", server.storage_options


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def pl_package(request: pytest.FixtureRequest) -> str:
    """The Lightning package the test's Trainer, model and callbacks come from."""
    return request.param


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking"]  # fmt: skip


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[tuple[Any, list[str]]]:
    """``(page, errors)``: a fresh page and the console errors and page errors it produced."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page, errors
    finally:
        context.close()
