"""The GCS and Azure emulators, for deletion and ``du`` on every store (the fixtures live with the storage tests)."""

from tests.storage.conftest import azure_server, gcs_server

__all__ = ["azure_server", "gcs_server"]
