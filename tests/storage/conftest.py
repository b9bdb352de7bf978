"""The GCS and Azure servers the storage tests run against (moto S3 is in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import AzureServer, GCSServer


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
