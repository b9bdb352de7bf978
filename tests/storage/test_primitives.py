"""The storage primitives, one contract over every target: a local folder, memory://, S3
(moto), GCS (fake-gcs-server) and Azure (Azurite), each a real server on 127.0.0.1."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

import tests.servers  # noqa: F401 - sets the gcsfs environment before gcsfs is imported
from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError
from lightning_tracker.storage import Storage, atomic_write
from tests.helpers import REPO

ROOT = Path(REPO)


# -- the primitives, on every target ------------------------------------------------------
def test_write_bytes_then_read_bytes_and_open(store: Storage) -> None:
    store.write_bytes("a/b/c.json", b'{"x": 1}')
    assert store.read_bytes("a/b/c.json") == b'{"x": 1}'
    with store.open("a/b/c.json") as f:
        assert f.read() == b'{"x": 1}'


def test_write_bytes_overwrites_the_whole_object(store: Storage) -> None:
    store.write_bytes("f.txt", b"a much longer first version")
    store.write_bytes("f.txt", b"short")
    assert store.read_bytes("f.txt") == b"short"
    assert store.find() == {"f.txt": 5}


def test_read_bytes_of_a_missing_file_raises_file_not_found(store: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        store.read_bytes("nope/missing.json")
    store.write_bytes("there.json", b"{}")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("missing.json")


def test_put_file_of_5_mb_round_trips(store: Storage, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 17)
    source = tmp_path / "blob.bin"
    source.write_bytes(data)
    store.put_file(str(source), "models/blob.bin")
    assert store.read_bytes("models/blob.bin") == data
    assert store.find("models") == {"blob.bin": len(data)}
    assert store.listdir("models") == ["blob.bin"], "no temporary file is left beside it"
    source.unlink()  # the stored copy does not depend on the source
    assert store.read_bytes("models/blob.bin") == data


def test_put_file_replaces_an_existing_file(store: Storage, tmp_path: Path) -> None:
    (tmp_path / "one").write_bytes(b"one")
    (tmp_path / "two").write_bytes(b"second")
    store.put_file(str(tmp_path / "one"), "x.bin")
    store.put_file(str(tmp_path / "two"), "x.bin")
    assert store.read_bytes("x.bin") == b"second"
    assert (tmp_path / "one").read_bytes() == b"one", "the first source is untouched"


def test_rm_deletes_and_a_missing_file_is_not_an_error(store: Storage) -> None:
    store.write_bytes("d/a.txt", b"a")
    store.write_bytes("d/b.txt", b"b")
    store.rm("d/a.txt")
    assert store.find("d") == {"b.txt": 1}
    store.rm("d/a.txt")
    store.rm("never/was.txt")


def test_listdir_names_the_entries_directly_under(store: Storage) -> None:
    for rel in ("d/b.txt", "d/a.txt", "d/sub/c.txt", "d/sub/deeper/e.txt", "other.txt"):
        store.write_bytes(rel, b"x")
    assert store.listdir("d") == ["a.txt", "b.txt", "sub"]
    assert store.listdir("d/sub") == ["c.txt", "deeper"]
    assert store.listdir() == ["d", "other.txt"]


def test_listdir_and_find_of_a_missing_folder_are_empty(store: Storage) -> None:
    assert store.listdir() == [] and store.find() == {}
    store.write_bytes("d/a.txt", b"a")
    assert store.listdir("missing") == [] and store.find("missing") == {}
    assert store.listdir("d/missing/deeper") == [] and store.find("d/missing/deeper") == {}


def test_find_returns_every_file_below_with_its_size(store: Storage) -> None:
    store.write_bytes("r/run.json", b"{}")
    store.write_bytes("r/metrics/000.parquet", b"x" * 100)
    store.write_bytes("r/models/ckpt/last.ckpt", b"y" * 1000)
    store.write_bytes("r/empty.txt", b"")
    store.write_bytes("beside.txt", b"z")
    expected = {"run.json": 2, "metrics/000.parquet": 100, "models/ckpt/last.ckpt": 1000, "empty.txt": 0}
    assert store.find("r") == expected
    assert store.find("r/models") == {"ckpt/last.ckpt": 1000}
    assert store.find() == {f"r/{k}": v for k, v in store.find("r").items()} | {"beside.txt": 1}


def test_exists_sees_files_and_folders(store: Storage) -> None:
    assert not store.exists("") and not store.exists("d/a.txt")
    store.write_bytes("d/sub/a.txt", b"a")
    assert store.exists("") and store.exists("d") and store.exists("d/sub") and store.exists("d/sub/a.txt")
    assert not store.exists("d/a.txt") and not store.exists("d/sub/a") and not store.exists("e/sub")


def test_read_many_leaves_the_missing_ones_out(store: Storage) -> None:
    store.write_bytes("p/1/run.json", b"one")
    store.write_bytes("p/2/run.json", b"two")
    got = store.read_many(["p/1/run.json", "p/2/run.json", "p/3/run.json", "q/missing/run.json"])
    assert got == {"p/1/run.json": b"one", "p/2/run.json": b"two"}
    assert store.read_many([]) == {}


def test_full_url_is_the_printable_location(store: Storage) -> None:
    assert store.full_url() == store.url
    assert store.full_url("p/r/run.json") == f"{store.url}/p/r/run.json"
    if store.is_local:
        assert store.protocol == "file" and store.url == store.root and os.path.isabs(store.root)
        assert store.full_url("p/r") == store.local_path("p/r")
    else:
        assert store.url == f"{store.protocol}://{store.root}" and not store.root.endswith("/")
    assert repr(store).endswith(f"({store.url!r})")


def test_a_pickled_storage_reads_and_writes_the_same_location(store: Storage) -> None:
    store.write_bytes("a.txt", b"before")
    store.listdir()  # a remote store now holds a live filesystem object
    copy = pickle.loads(pickle.dumps(store))
    assert type(copy) is type(store)
    for name in ("url", "root", "protocol", "is_local"):
        assert getattr(copy, name) == getattr(store, name), name
    assert copy.read_bytes("a.txt") == b"before"
    copy.write_bytes("b.txt", b"from the copy")
    assert store.read_bytes("b.txt") == b"from the copy"


# -- choosing the backend and validating the URL ------------------------------------------
def test_storage_picks_the_backend_like_pathlib(tmp_path: Path) -> None:
    for url in (str(tmp_path), tmp_path, f"file://{tmp_path}", f"local://{tmp_path}"):
        local = Storage(url)
        assert type(local).__name__ == "LocalStorage" and local.is_local
        assert (local.protocol, local.url, local.root) == ("file", str(tmp_path), str(tmp_path))
    remote = Storage("memory://pick/exp/")
    assert type(remote).__name__ == "FsspecStorage" and not remote.is_local
    assert (remote.protocol, remote.root, remote.url) == ("memory", "pick/exp", "memory://pick/exp")
    assert isinstance(local, Storage) and isinstance(remote, Storage)


@pytest.mark.parametrize("bad", ["", None, 3, b"bytes"])
def test_an_invalid_save_dir_names_the_argument(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="save_dir="):
        Storage(bad)  # type: ignore[arg-type]


def test_a_backend_refuses_a_location_it_cannot_open(tmp_path: Path) -> None:
    local_cls = type(Storage(tmp_path))
    remote_cls = type(Storage("memory://x"))
    with pytest.raises(InvalidArgumentError, match="use Storage"):
        local_cls("memory://x")
    with pytest.raises(InvalidArgumentError, match="use Storage"):
        remote_cls(str(tmp_path))


def test_credentials_in_the_url_reach_the_backend_but_never_print(s3_server: Any) -> None:
    bucket = s3_server.new_bucket()
    # the secret carries an unencoded "/" as AWS secrets often do
    store = Storage(f"s3://testing:test/ing@{bucket}/exp", {"endpoint_url": s3_server.endpoint})
    assert store.url == f"s3://{bucket}/exp" and "test/ing" not in repr(store) + store.full_url("a")
    assert (store.fs.key, store.fs.secret) == ("testing", "test/ing")  # type: ignore[attr-defined]
    store.write_bytes("a.txt", b"ok")
    assert store.read_bytes("a.txt") == b"ok"
    assert b"test/ing" in pickle.dumps(store), "a copy in another process still reaches the bucket"


def test_a_missing_backend_package_names_the_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['s3fs'] = None\n"  # as if s3fs were not installed
        "from lightning_tracker.storage import Storage\n"
        "from lightning_tracker.exceptions import MissingDependencyError\n"
        "store = Storage('s3://bucket/exp')\n"
        "try:\n    store.fs\nexcept MissingDependencyError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "'s3fs'" in out and "pip install s3fs" in out, out
    assert issubclass(MissingDependencyError, ModuleNotFoundError)


LIGHT_MODULES = ["lightning_tracker.storage", "lightning_tracker.storage.urls", "lightning_tracker.writers.hyperparams"]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_importing_does_not_import_fsspec(module: str) -> None:
    # a local Storage is built too: only a URL's backend needs fsspec
    code = f"import sys, {module}\nfrom lightning_tracker.storage import Storage\n"
    code += "Storage('.')\nprint('fsspec' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "False"


# -- the local backend --------------------------------------------------------------------
def test_local_put_file_hard_links_and_never_writes_through_an_old_link(tmp_path: Path) -> None:
    store = Storage(tmp_path / "store")
    first, second = tmp_path / "first.ckpt", tmp_path / "second.ckpt"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    store.put_file(str(first), "m/last.ckpt")
    dest = Path(str(store.local_path("m/last.ckpt")))
    assert dest.stat().st_ino == first.stat().st_ino, "same filesystem: a hard link, no copy"
    store.put_file(str(second), "m/last.ckpt")  # the destination is a link to `first`
    assert dest.read_bytes() == b"second" and first.read_bytes() == b"first"
    store.put_file(str(second), "m/last.ckpt")  # onto another name of the same file
    assert os.listdir(dest.parent) == ["last.ckpt"]


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a second filesystem (/dev/shm)")
def test_local_put_file_copies_across_filesystems(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 22) + 5)  # more than one copy chunk
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same filesystem as the temp folder")
        source = os.path.join(other, "blob")
        with open(source, "wb") as f:
            f.write(data)
        store = Storage(tmp_path / "store")
        store.put_file(source, "m/blob")
        assert store.read_bytes("m/blob") == data
        assert os.stat(str(store.local_path("m/blob"))).st_ino != os.stat(source).st_ino
        assert store.listdir("m") == ["blob"]


def test_atomic_write_takes_bytes_or_a_writer_and_leaves_no_temp_on_failure(tmp_path: Path) -> None:
    path = str(tmp_path / "new" / "folder" / "f.bin")
    atomic_write(path, b"old")
    atomic_write(path, lambda f: f.write(b"new"))
    assert open(path, "rb").read() == b"new"

    def fails(f: object) -> None:
        f.write(b"half")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fails)
    assert open(path, "rb").read() == b"new" and os.listdir(os.path.dirname(path)) == ["f.bin"]


def test_a_local_reader_sees_the_old_or_the_new_file_never_half(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    versions = [b"a" * 300_000, b"b" * 10]
    store.write_bytes("f", versions[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(store.read_bytes("f"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            store.write_bytes("f", versions[i % 2])
    finally:
        stop.set()
        reader.join()
    assert seen <= set(versions) and seen
