"""The read side's primitives on every target: a bounded read, many bounded reads, and folders."""

from __future__ import annotations

from typing import Any

from lightning_tracker.storage import Storage


def test_read_head_reads_at_most_the_bytes_asked_for_on_every_target(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    storage = Storage(save_dir, options)
    storage.write_bytes("p/r/empty.json", b"")
    storage.write_bytes("p/r/ten.bin", b"0123456789")
    assert storage.read_head("p/r/ten.bin", 4) == b"0123"
    assert storage.read_head("p/r/ten.bin", 11) == b"0123456789"
    assert storage.read_head("p/r/empty.json", 5) == b""
    found = storage.read_many(["p/r/ten.bin", "p/r/empty.json", "p/r/missing.json"], max_bytes=3)
    assert found == {"p/r/ten.bin": b"012", "p/r/empty.json": b""}


def test_folders_lists_folders_that_hold_something_on_every_target(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    storage = Storage(save_dir, options)
    for rel in ("a/r1/run.json", "b/x.txt", "stray.txt", "a/stray.csv"):
        storage.write_bytes(rel, b"{}")
    assert storage.folders() == ["a", "b"]
    assert storage.folders("a") == ["r1"]
    assert storage.folders("missing") == [] and storage.folders("stray.txt") == []
