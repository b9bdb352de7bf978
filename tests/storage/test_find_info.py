"""``Storage.find_info``: every file below a folder with its size and last-modified time, in one
recursive listing, on every target (a local folder, memory://, S3, GCS and Azure servers on 127.0.0.1)."""

from __future__ import annotations

import time

import tests.servers  # noqa: F401 - sets the gcsfs environment before gcsfs is imported
from lightning_tracker.storage import Storage
from lightning_tracker.storage.base import FileInfo


def test_find_info_gives_the_size_and_write_time_of_every_file_below(store: Storage) -> None:
    before = time.time()
    store.write_bytes("p/r/run.json", b"{}")
    store.write_bytes("p/r/metrics/000-00000000-00000000.parquet", b"x" * 300)
    store.write_bytes("p/beside.txt", b"abc")
    store.write_bytes("q/other.txt", b"1")
    after = time.time()
    found = store.find_info("p")
    assert {path: info.size for path, info in found.items()} == store.find("p")
    assert store.find("p") == {"r/run.json": 2, "r/metrics/000-00000000-00000000.parquet": 300, "beside.txt": 3}
    for info in found.values():
        assert isinstance(info, FileInfo) and info.modified is not None
        # object stores keep whole seconds (S3, Azure): allow one on each side
        assert before - 1.5 <= info.modified <= after + 1.5, (info, before, after)
    assert store.find_info("missing") == {}


def test_find_info_of_a_backend_that_only_implements_find_knows_no_times() -> None:
    class SizesOnly(Storage):
        def find(self, rel: str = "") -> dict[str, int]:
            return {"a.txt": 3}

    store = SizesOnly.__new__(SizesOnly)
    assert store.find_info() == {"a.txt": FileInfo(3, None)}
