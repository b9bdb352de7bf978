"""Which backend opens a protocol: the registry, the protocol families, local detection.

A backend registered for a made-up protocol (``dictfs://``, a dict in this process) is
driven through the primitives, a whole Lightning run and a ``Store`` read, the way a
third party's backend would be.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from lightning_tracker.exceptions import InvalidArgumentError, TrackerError
from lightning_tracker.storage import Storage, protocol_family, register_storage, registry
from lightning_tracker.storage.failures import OPTIONS, describe
from lightning_tracker.storage.registry import install_hint, storage_class
from lightning_tracker.storage.urls import parse_url
from lightning_tracker.writers.spool import spool_dir_for
from tests.helpers import REPO

FAMILIES = {"s3": ("s3", "s3a"), "gs": ("gs", "gcs"), "az": ("az", "abfs", "abfss")}


class DictStorage(Storage):
    """A backend a third party could write: every object in one dict, shared by all instances."""

    objects: dict[str, bytes] = {}
    lock = threading.Lock()

    def _key(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.objects[self._key(rel)]
        except KeyError:
            raise FileNotFoundError(self.full_url(rel)) from None

    def open(self, rel: str) -> IO[bytes]:
        return io.BytesIO(self.read_bytes(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.lock:
            self.objects[self._key(rel)] = bytes(data)

    def put_file(self, local_path: str, rel: str) -> None:
        with open(local_path, "rb") as f:
            self.write_bytes(rel, f.read())

    def rm(self, rel: str) -> None:
        with self.lock:
            self.objects.pop(self._key(rel), None)

    def find(self, rel: str = "") -> dict[str, int]:
        base = self._key(rel) + "/"
        with self.lock:
            return {k[len(base) :]: len(v) for k, v in self.objects.items() if k.startswith(base)}

    def listdir(self, rel: str = "") -> list[str]:
        return sorted({path.split("/", 1)[0] for path in self.find(rel)})


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # each test registers on a copy: the built-in table is back afterwards
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    DictStorage.objects.clear()
    yield


# -- a registered backend -----------------------------------------------------------------
def test_storage_opens_a_registered_protocol_with_its_backend() -> None:
    register_storage("dictfs", DictStorage)
    store = Storage("dictfs://bucket/exp/", {"token": "t"})
    assert type(store) is DictStorage and isinstance(store, Storage)
    assert (store.protocol, store.root, store.url) == ("dictfs", "bucket/exp", "dictfs://bucket/exp")
    assert store.storage_options == {"token": "t"}
    store.write_bytes("p/r/run.json", b"{}")
    store.write_bytes("p/r/metrics/0.parquet", b"xyz")
    assert store.read_bytes("p/r/run.json") == b"{}" and store.open("p/r/run.json").read() == b"{}"
    assert store.listdir("p") == ["r"] and store.find("p") == {"r/run.json": 2, "r/metrics/0.parquet": 3}
    assert store.exists("p/r/run.json") and not store.exists("p/q")
    assert store.read_many(["p/r/run.json", "p/missing"]) == {"p/r/run.json": b"{}"}
    store.rm("p/r/run.json")
    assert store.find("p") == {"r/metrics/0.parquet": 3}


def test_a_primitive_a_backend_left_out_is_named_when_an_operation_needs_it() -> None:
    class WriteOnly(Storage):
        def write_bytes(self, rel: str, data: bytes) -> None:
            pass

    register_storage("writeonly", WriteOnly)
    store = Storage("writeonly://b")
    store.write_bytes("a", b"x")
    with pytest.raises(
        NotImplementedError, match=r"^WriteOnly does not implement Storage.listdir\(\), .*read_bytes, open"
    ):
        store.listdir("")


def test_a_backend_registered_by_path_is_imported_on_first_use() -> None:
    register_storage(["lazyfs", "lazyfs2"], "tests.storage.test_registry:DictStorage")
    assert registry._BACKENDS["lazyfs"] == "tests.storage.test_registry:DictStorage"
    assert type(Storage("lazyfs://b")) is DictStorage and type(Storage("lazyfs2://b")) is DictStorage
    assert registry._BACKENDS["lazyfs"] is DictStorage, "loaded once, then kept"


def test_a_registered_backend_needs_no_fsspec() -> None:
    code = (
        "import sys\n"
        "from lightning_tracker.storage import register_storage, Storage\n"
        "register_storage('dictfs', 'tests.storage.test_registry:DictStorage')\n"
        "Storage('dictfs://b/exp').write_bytes('a', b'1')\n"
        "print('fsspec' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "False"


def test_a_training_run_on_a_registered_backend_reads_back_through_store(tmp_path: Path) -> None:
    from lightning_tracker import Store, TrackerLogger
    from tests.helpers import tiny_model, trainer

    register_storage("dictfs", DictStorage)
    logger = TrackerLogger("dictfs://bucket/exp", name="p", spool_dir=tmp_path / "spool", flush_interval=0.2)
    trainer(logger, max_epochs=2).fit(tiny_model())
    logger.finalize("success")
    assert any(k.startswith("bucket/exp/p/") for k in DictStorage.objects), "the run was uploaded"
    shutil.rmtree(tmp_path / "spool")  # the store alone holds the run now

    store = Store("dictfs://bucket/exp")
    assert type(store.storage) is DictStorage and store.projects() == ["p"]
    run = store.run(logger.version, "p")
    assert run.status == "finished" and run.config["lr"] == 0.05
    history = run.metrics()
    assert len(history["train/loss"].dropna()) == 16 and len(history["val/loss"].dropna()) == 2


def test_an_unknown_protocol_is_one_line_naming_the_url_and_the_fix() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Storage("nosuchfs://user:secret@bucket/exp")
    message = str(caught.value)
    assert "\n" not in message and "secret" not in message
    assert "save_dir='nosuchfs://bucket/exp'" in message
    assert "register_storage('nosuchfs', YourStorage)" in message and "install" in message
    assert isinstance(caught.value, (ValueError, TrackerError))


def test_register_storage_refuses_a_taken_protocol_unless_replaced(tmp_path: Path) -> None:
    register_storage("dictfs", DictStorage)
    register_storage("dictfs", DictStorage)  # the same backend again is no change
    other = type("OtherStorage", (DictStorage,), {})
    with pytest.raises(InvalidArgumentError, match="protocols='dictfs' is already opened by .*replace=True"):
        register_storage("dictfs", other)
    with pytest.raises(InvalidArgumentError, match="protocols='file' is already opened by .*LocalStorage"):
        register_storage("file", other)
    register_storage("dictfs", other, replace=True)
    assert type(Storage("dictfs://b")) is other
    assert type(Storage(tmp_path)).__name__ == "LocalStorage"


@pytest.mark.parametrize("bad", ["", "s3://", "9fs", "has space", "local", 3])
def test_register_storage_refuses_what_is_not_a_url_scheme(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"protocols=.* is not a URL scheme"):
        register_storage(bad, DictStorage)


def test_a_backend_built_directly_refuses_a_protocol_registered_to_another() -> None:
    register_storage("dictfs", DictStorage)
    with pytest.raises(InvalidArgumentError, match="cannot be opened by FsspecStorage; use Storage"):
        type(Storage("memory://x"))("dictfs://b")
    with pytest.raises(InvalidArgumentError, match="cannot be opened by DictStorage; use Storage"):
        DictStorage("memory://x")


# -- protocol families ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_alias_maps_to_one_backend_one_extra_and_one_credentials_hint(name: str) -> None:
    aliases = FAMILIES[name]
    families = {protocol_family(alias) for alias in aliases}
    assert len(families) == 1 and None not in families
    family = families.pop()
    assert family is not None and family.name == name and family.protocols == aliases
    assert {storage_class(alias).__name__ for alias in aliases} == {"FsspecStorage"}
    assert {install_hint(alias) for alias in aliases} == {(family.package, family.install)}
    assert family.install == f"pip install {family.package}"

    class NoCredentialsError(Exception):
        pass

    hints = {describe(NoCredentialsError("no keys"), "the store", alias).split("; ", 1)[1] for alias in aliases}
    assert hints == {f"{family.credentials_env}, or pass '{family.credentials_options}' in {OPTIONS}"}
    names = {tuple(parse_url(f"{alias}://me:pw@bucket/exp").credentials) for alias in aliases}
    assert names == {family.url_credentials}


def test_a_lone_protocol_has_no_family_and_installs_its_own_package() -> None:
    assert protocol_family("memory") is None and protocol_family("file") is None
    assert install_hint("hf") == ("hf", "pip install hf")
    assert parse_url("https://me:pw@example.com/runs").credentials == {"username": "me", "password": "pw"}


# -- is this store local -------------------------------------------------------------------
def test_local_path_is_the_one_way_to_ask_whether_a_store_is_local(tmp_path: Path) -> None:
    register_storage("dictfs", DictStorage)
    local = Storage(tmp_path)
    assert local.is_local and local.local_path() == str(tmp_path)
    assert local.local_path("p/r") == os.path.join(str(tmp_path), "p", "r")
    for remote in (Storage("memory://x/exp"), Storage("dictfs://b/exp")):
        assert not remote.is_local and remote.local_path() is None and remote.local_path("p/r") is None


def test_a_local_store_writes_the_run_in_place_and_a_remote_one_spools(tmp_path: Path) -> None:
    from lightning_tracker import TrackerLogger

    register_storage("dictfs", DictStorage)
    local = TrackerLogger(tmp_path / "runs", name="p")
    assert local.save_dir == str(tmp_path / "runs")
    remote = TrackerLogger("dictfs://b/exp", name="p", spool_dir=tmp_path / "spool")
    assert remote.save_dir == spool_dir_for(Storage("dictfs://b/exp"), str(tmp_path / "spool"))
    assert os.path.basename(remote.save_dir).startswith("b_exp-")
    for logger in (local, remote):
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
    assert (tmp_path / "runs" / "p" / local.version / "run.json").is_file()
    assert f"b/exp/p/{remote.version}/run.json" in DictStorage.objects
