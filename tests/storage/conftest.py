"""The storage targets the storage tests run on, and the GCS and Azure servers behind two of them
(moto S3 is in ``tests/conftest.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker.storage import Storage
from tests.servers import AzureServer, GCSServer

TARGETS = ["local", "memory", "s3", "gcs", "azure"]


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[GCSServer]:
    server = GCSServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    server = AzureServer(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


def target_url(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, s3: str = "s3_server"
) -> tuple[str, dict[str, Any] | None]:
    """A fresh, empty ``(url, storage_options)`` on the target ``kind`` (one of :data:`TARGETS`).

    A folder below ``tmp_path``, a new memory:// root, or a new bucket on the target's server on
    127.0.0.1; ``s3`` names the S3 server's fixture (``serial_s3`` for races).
    """
    if kind == "local":
        return str(tmp_path / "store"), None
    if kind == "memory":
        return f"memory://t-{uuid.uuid4().hex[:10]}/exp", None
    server = request.getfixturevalue({"s3": s3, "gcs": "gcs_server", "azure": "azure_server"}[kind])
    protocol = {"s3": "s3", "gcs": "gs", "azure": "az"}[kind]
    return f"{protocol}://{server.new_bucket()}/exp", server.storage_options


@pytest.fixture(params=TARGETS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A fresh, empty :class:`Storage` on every target."""
    return Storage(*target_url(request.param, request, tmp_path))
