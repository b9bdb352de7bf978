"""The mirror, a run's one upload engine: what a round sends, in which order, and when.

Every test runs rounds of the real :class:`Mirror` against a real target: a local folder,
or the moto S3 server on 127.0.0.1, where a wrapper around the server's WSGI application
records every request the server answers for the run.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import manifest_entry, new_manifest, resolve_aliases
from lightning_tracker.format.layout import (
    CONFIG_FILE,
    EVENTS_PREFIX,
    HISTOGRAMS_DIR,
    MEDIA_DIR,
    MEDIA_FILES_DIR,
    METRICS_DIR,
    MIRROR_FILE,
    MODELS_DIR,
    MODELS_FILE,
    RUN_FILE,
    chunk_name,
)
from lightning_tracker.storage import Storage, atomic_write
from lightning_tracker.writers.mirror import Mirror
from lightning_tracker.writers.mirror_loops import serve, upload_until
from tests.conftest import S3Server

PREFIX = "p/r1"  # the run's path in the store
CHUNK_0, CHUNK_1, CHUNK_0_1 = chunk_name(0, 0, 0), chunk_name(0, 1, 1), chunk_name(0, 0, 1)


class _Requests:
    """The requests the S3 server answers under one run's prefix, recorded inside the server.

    Counting at the server, rather than by patching ``Storage``, sees every request the
    backend really sends. ``on_put(rel)`` runs before the server stores a PUT, while the
    mirror waits for the answer: a producer writing in the middle of a round.
    """

    def __init__(self, server: S3Server, bucket: str) -> None:
        self.server = server
        self.path = f"/{bucket}/exp/{PREFIX}/"
        self.log: list[tuple[str, str, bytes]] = []  # (method, path in the run, body of a PUT)
        self.on_put: Callable[[str], None] | None = None
        self._app: Any = None

    def install(self) -> None:
        """Wraps the running server's application (again after ``server.start()``)."""
        wsgi = self.server._server._server  # ThreadedMotoServer -> werkzeug's server
        self._app, wsgi.app = wsgi.app, self

    def uninstall(self) -> None:
        wsgi = self.server._server._server if self.server._server is not None else None
        if wsgi is not None and wsgi.app is self:
            wsgi.app = self._app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if path.startswith(self.path):
            body = b""
            if method == "PUT":
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                environ["wsgi.input"] = io.BytesIO(body)
            rel = path[len(self.path) :]
            self.log.append((method, rel, body))
            if method == "PUT" and self.on_put is not None:
                self.on_put(rel)
        return self._app(environ, start_response)

    def puts(self) -> list[str]:
        return [rel for method, rel, _ in self.log if method == "PUT"]

    def bodies(self, rel: str) -> list[bytes]:
        """What each PUT of ``rel`` stored, in order."""
        return [body for method, r, body in self.log if method == "PUT" and r == rel]

    def take(self) -> list[tuple[str, str]]:
        """``(method, rel)`` of each request since the last call."""
        out = [(method, rel) for method, rel, _ in self.log]
        self.log.clear()
        return out


@pytest.fixture
def s3_run(s3_server: S3Server) -> Iterator[tuple[Storage, _Requests]]:
    """A store in a fresh bucket of the shared S3 server, and the requests it answers for the run."""
    bucket = s3_server.new_bucket()
    requests = _Requests(s3_server, bucket)
    requests.install()
    try:
        yield Storage(f"s3://{bucket}/exp", s3_server.storage_options), requests
    finally:
        requests.uninstall()


@pytest.fixture(params=["folder", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each kind of store a spool folder is mirrored to: another local folder, an S3 bucket."""
    if request.param == "folder":
        return Storage(str(tmp_path / "store"))
    server = request.getfixturevalue("s3_server")
    return Storage(f"s3://{server.new_bucket()}/exp", server.storage_options)


def _write(folder: Path, rel: str, data: bytes) -> None:
    """Writes a file of the run the way producers do (whole or not at all)."""
    atomic_write(str(folder.joinpath(*rel.split("/"))), data)


def _manifest(*names: str) -> bytes:
    """A ``models.json`` listing the checkpoints ``names`` (seq in the given order)."""
    manifest = new_manifest()
    for seq, name in enumerate(names):
        entry = manifest_entry(
            name,
            name,
            seq,
            step=seq,
            epoch=0,
            monitor=None,
            mode=None,
            score=None,
            size=4,
            sha256="0" * 64,
            saved_time=1.0,
        )
        manifest["checkpoints"].append(entry)
    resolve_aliases(manifest, {})
    return dumps(manifest)


def _listed(manifest: bytes) -> list[str]:
    return [e["name"] for e in json.loads(manifest)["checkpoints"]]


def _spool(tmp_path: Path) -> Path:
    """A run's spool folder with one metrics chunk and its two documents."""
    folder = tmp_path / "spool" / PREFIX
    _write(folder, f"{METRICS_DIR}/{CHUNK_0}", b"chunk 0")
    _write(folder, CONFIG_FILE, b'{"lr": 0.1}')
    _write(folder, RUN_FILE, b'{"status": "running"}')
    return folder


def _stored(storage: Storage) -> dict[str, bytes]:
    """Every file of the run in the store, with its content."""
    return {rel: storage.read_bytes(f"{PREFIX}/{rel}") for rel in storage.find(PREFIX)}


# -- once, and only what changed ----------------------------------------------------------
def test_a_finished_file_is_copied_once_and_not_again_while_unchanged(target: Storage, tmp_path: Path) -> None:
    folder = _spool(tmp_path)
    mirror = Mirror(str(folder), target, PREFIX)
    first = mirror.run_once()
    assert sorted(first.uploaded) == [CONFIG_FILE, f"{METRICS_DIR}/{CHUNK_0}", RUN_FILE] and first.complete
    assert _stored(target) == {
        f"{METRICS_DIR}/{CHUNK_0}": b"chunk 0",
        CONFIG_FILE: b'{"lr": 0.1}',
        RUN_FILE: b'{"status": "running"}',
    }
    assert mirror.run_once().uploaded == []
    _write(folder, f"{METRICS_DIR}/{CHUNK_1}", b"chunk 1")
    assert mirror.run_once().uploaded == [f"{METRICS_DIR}/{CHUNK_1}"], "only the new chunk"
    assert target.read_bytes(f"{PREFIX}/{METRICS_DIR}/{CHUNK_1}") == b"chunk 1"


def test_an_unchanged_folder_costs_no_request_and_a_new_chunk_costs_one(
    s3_run: tuple[Storage, _Requests], tmp_path: Path
) -> None:
    storage, requests = s3_run
    folder = _spool(tmp_path)
    mirror = Mirror(str(folder), storage, PREFIX)
    assert mirror.run_once().complete
    requests.take()
    for _ in range(3):
        assert mirror.run_once().complete
    assert requests.take() == [], "an unchanged folder is not even listed remotely"
    _write(folder, f"{METRICS_DIR}/{CHUNK_1}", b"chunk 1")
    mirror.run_once()
    assert requests.take() == [("PUT", f"{METRICS_DIR}/{CHUNK_1}")]


def test_a_rewritten_document_is_committed_again_and_alone(s3_run: tuple[Storage, _Requests], tmp_path: Path) -> None:
    storage, requests = s3_run
    folder = _spool(tmp_path)
    mirror = Mirror(str(folder), storage, PREFIX)
    mirror.run_once()
    requests.take()
    _write(folder, RUN_FILE, b'{"status": "finished"}')
    assert mirror.run_once().uploaded == [RUN_FILE]
    assert requests.bodies(RUN_FILE) == [b'{"status": "finished"}']
    assert requests.take() == [("PUT", RUN_FILE)]


def test_a_run_folder_inside_a_local_store_is_already_published(tmp_path: Path) -> None:
    store = Storage(str(tmp_path / "runs"))
    folder = tmp_path / "runs" / PREFIX
    _write(folder, f"{METRICS_DIR}/{CHUNK_0}", b"chunk 0")
    _write(folder, RUN_FILE, b"{}")
    mirror = Mirror(str(folder), store, PREFIX)
    report = mirror.run_once()
    assert report.uploaded == [] and report.complete and mirror.pending() == []
    assert sorted(os.listdir(folder)) == [METRICS_DIR, RUN_FILE], "no state file in the user's own folder"


# -- the order a reader relies on -------------------------------------------------------
def test_objects_reach_the_store_before_the_documents_that_describe_them(
    s3_run: tuple[Storage, _Requests], tmp_path: Path
) -> None:
    storage, requests = s3_run
    folder = _spool(tmp_path)
    image = f"{MEDIA_FILES_DIR}/{'a' * 64}.png"
    events = f"{EVENTS_PREFIX}1700000000.host.1.0"
    for rel in (f"{HISTOGRAMS_DIR}/{CHUNK_0}", f"{MEDIA_DIR}/{CHUNK_0}", image, events):
        _write(folder, rel, rel.encode())
    for name in ("a.ckpt", "b.ckpt", "c.ckpt"):
        _write(folder, f"{MODELS_DIR}/{name}", name.encode())
    _write(folder, MODELS_FILE, _manifest("a.ckpt", "b.ckpt"))  # c.ckpt: the flusher is still hashing it
    report = Mirror(str(folder), storage, PREFIX).run_once()
    assert report.error is None
    assert requests.puts() == [
        # 1. immutable files, in name order: an image before the media index chunk that names it
        events,
        f"{HISTOGRAMS_DIR}/{CHUNK_0}",
        image,
        f"{MEDIA_DIR}/{CHUNK_0}",
        f"{METRICS_DIR}/{CHUNK_0}",
        # 2. the documents, after every chunk they describe
        CONFIG_FILE,
        RUN_FILE,
        # 3. each listed checkpoint, then a manifest naming only checkpoints already stored
        f"{MODELS_DIR}/a.ckpt",
        MODELS_FILE,
        f"{MODELS_DIR}/b.ckpt",
        MODELS_FILE,
        f"{MODELS_DIR}/c.ckpt",  # not listed yet: uploaded last, the manifest stays as it is
    ]
    assert [_listed(body) for body in requests.bodies(MODELS_FILE)] == [["a.ckpt"], ["a.ckpt", "b.ckpt"]]
    # the store keeps the listed checkpoints: their local copies are gone, the unlisted one stays
    assert os.listdir(folder / MODELS_DIR) == ["c.ckpt"]
    assert report.pending == [], "c.ckpt is stored; listing it is the next manifest's job"


def test_a_chunk_written_during_a_round_is_sent_by_the_next_round_with_the_run_json_naming_it(
    s3_run: tuple[Storage, _Requests], tmp_path: Path
) -> None:
    storage, requests = s3_run
    folder = _spool(tmp_path)

    def producer_flushes(rel: str) -> None:  # while the round uploads chunk 0
        if rel == f"{METRICS_DIR}/{CHUNK_0}":
            _write(folder, f"{METRICS_DIR}/{CHUNK_1}", b"chunk 1")
            _write(folder, RUN_FILE, b'{"status": "finished", "chunks": 2}')

    requests.on_put = producer_flushes
    mirror = Mirror(str(folder), storage, PREFIX)
    first = mirror.run_once()
    requests.on_put = None
    assert first.uploaded == [f"{METRICS_DIR}/{CHUNK_0}", CONFIG_FILE, RUN_FILE]
    # the run.json read before the listing: the store never shows the one that counts chunk 1
    assert requests.bodies(RUN_FILE) == [b'{"status": "running"}']
    assert first.pending == [f"{METRICS_DIR}/{CHUNK_1}", RUN_FILE]
    requests.take()
    second = mirror.run_once()
    assert requests.take() == [("PUT", f"{METRICS_DIR}/{CHUNK_1}"), ("PUT", RUN_FILE)]
    assert second.complete
    assert storage.read_bytes(f"{PREFIX}/{RUN_FILE}") == b'{"status": "finished", "chunks": 2}'


# -- retiring what is gone --------------------------------------------------------------
def test_covered_chunks_leave_the_store_after_the_chunk_that_covers_them_arrives(
    s3_run: tuple[Storage, _Requests], tmp_path: Path
) -> None:
    storage, requests = s3_run
    folder = _spool(tmp_path)
    _write(folder, f"{METRICS_DIR}/{CHUNK_1}", b"chunk 1")
    mirror = Mirror(str(folder), storage, PREFIX)
    mirror.run_once()
    requests.take()
    _write(folder, f"{METRICS_DIR}/{CHUNK_0_1}", b"chunks 0 and 1")  # a compaction, its inputs still local
    report = mirror.run_once()
    assert requests.take() == [
        ("PUT", f"{METRICS_DIR}/{CHUNK_0_1}"),
        ("DELETE", f"{METRICS_DIR}/{CHUNK_0}"),
        ("DELETE", f"{METRICS_DIR}/{CHUNK_1}"),
    ]
    assert report.deleted == [f"{METRICS_DIR}/{CHUNK_0}", f"{METRICS_DIR}/{CHUNK_1}"]
    assert sorted(storage.find(f"{PREFIX}/{METRICS_DIR}")) == [CHUNK_0_1]


def test_a_checkpoint_dropped_from_the_manifest_leaves_the_store_after_the_new_manifest(
    s3_run: tuple[Storage, _Requests], tmp_path: Path
) -> None:
    storage, requests = s3_run
    folder = _spool(tmp_path)
    for name in ("a.ckpt", "b.ckpt"):
        _write(folder, f"{MODELS_DIR}/{name}", name.encode())
    _write(folder, MODELS_FILE, _manifest("a.ckpt", "b.ckpt"))
    mirror = Mirror(str(folder), storage, PREFIX)
    assert mirror.run_once().complete
    requests.take()
    _write(folder, MODELS_FILE, _manifest("b.ckpt"))  # retention drops a.ckpt
    report = mirror.run_once()
    assert requests.take() == [("PUT", MODELS_FILE), ("DELETE", f"{MODELS_DIR}/a.ckpt")]
    assert report.deleted == [f"{MODELS_DIR}/a.ckpt"]
    assert sorted(storage.find(f"{PREFIX}/{MODELS_DIR}")) == ["b.ckpt"]


# -- outages and restarts ----------------------------------------------------------------
def test_an_outage_is_retried_by_the_mirror_thread_and_loses_nothing(tmp_path: Path) -> None:
    server = S3Server()  # its own server: this test stops it
    try:
        # one attempt per request: the retrying under test is the mirror's, not botocore's
        options = {**server.storage_options, "config_kwargs": {"retries": {"max_attempts": 1}}}
        storage = Storage(f"s3://{server.new_bucket()}/exp", options)
        folder = _spool(tmp_path)
        _write(folder, f"{MODELS_DIR}/a.ckpt", b"weights")
        _write(folder, MODELS_FILE, _manifest("a.ckpt"))
        everything = {rel: (folder / rel).read_bytes() for rel in Mirror(str(folder), storage, PREFIX).pending()}
        mirror = Mirror(str(folder), storage, PREFIX)
        server.stop()
        down = mirror.run_once()
        assert down.error is not None and down.uploaded == [] and down.pending == sorted(everything)
        assert (folder / MODELS_DIR / "a.ckpt").exists(), "a checkpoint leaves the folder only once stored"

        warnings: list[str] = []
        stop, wake = threading.Event(), threading.Event()
        thread = threading.Thread(target=serve, args=(mirror, stop, wake, lambda key, *_: warnings.append(key)))
        thread.start()
        try:
            wake.set()
            deadline = time.monotonic() + 30
            while not warnings and time.monotonic() < deadline:
                time.sleep(0.05)
            assert warnings == ["upload"], "a failed round is reported, then retried after a back-off"
            server.start()
            while mirror.pending() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            wake.set()
            thread.join(30)
        assert mirror.pending() == []
        assert _stored(storage) == everything
        assert not (folder / MODELS_DIR / "a.ckpt").exists(), "stored and listed: evicted from the spool"
    finally:
        server.stop()


def test_the_published_state_survives_a_restart(s3_run: tuple[Storage, _Requests], tmp_path: Path) -> None:
    storage, requests = s3_run
    folder = _spool(tmp_path)
    assert Mirror(str(folder), storage, PREFIX).run_once().complete
    assert (folder / MIRROR_FILE).exists() and MIRROR_FILE not in storage.find(PREFIX)
    requests.take()
    restarted = Mirror(str(folder), storage, PREFIX)  # a new process on the same spool folder
    assert restarted.pending() == []
    assert restarted.run_once().uploaded == [] and requests.take() == []
    _write(folder, f"{METRICS_DIR}/{CHUNK_1}", b"chunk 1")
    assert Mirror(str(folder), storage, PREFIX).run_once().uploaded == [f"{METRICS_DIR}/{CHUNK_1}"]


def test_without_its_state_file_a_round_given_the_remote_listing_resends_only_the_documents(
    s3_run: tuple[Storage, _Requests], tmp_path: Path
) -> None:
    storage, requests = s3_run
    folder = _spool(tmp_path)
    Mirror(str(folder), storage, PREFIX).run_once()
    os.remove(folder / MIRROR_FILE)  # a crash before the state was saved, as `lightning-tracker sync` meets it
    _write(folder, f"{METRICS_DIR}/{CHUNK_1}", b"chunk 1")
    requests.take()
    report = Mirror(str(folder), storage, PREFIX).run_once(remote_listing=storage.find(PREFIX))
    # chunks are immutable: one of the same size is there already; documents may have changed
    assert requests.puts() == [f"{METRICS_DIR}/{CHUNK_1}", CONFIG_FILE, RUN_FILE]
    assert report.complete


def test_a_spooled_run_uploaded_until_a_deadline_reads_back_as_it_reads_locally(s3_server: S3Server) -> None:
    url = f"s3://{s3_server.new_bucket()}/exp"
    logger = TrackerLogger(url, name="p", storage_options=s3_server.storage_options, offline=True)
    for step in range(20):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    logger.finalize("success")
    mirror = Mirror(logger.log_dir, Storage(url, s3_server.storage_options), f"p/{logger.version}")
    report, complete = upload_until(mirror, time.monotonic() + 30)
    assert complete and report.complete
    remote = Store(url, s3_server.storage_options).run(logger.version)
    local = Store(logger.save_dir).run(logger.version)
    assert remote.status == local.status == "finished"
    assert remote.metrics()["loss"].tolist() == local.metrics()["loss"].tolist() == [1.0 / (s + 1) for s in range(20)]


@pytest.mark.parametrize("state", [b'{"published": {"run.js', b'{"published": "everything"}'], ids=["cut", "wrong"])
def test_a_damaged_state_file_is_not_trusted(state: bytes, s3_run: tuple[Storage, _Requests], tmp_path: Path) -> None:
    storage, _ = s3_run
    folder = _spool(tmp_path)
    _write(folder, MIRROR_FILE, state)
    mirror = Mirror(str(folder), storage, PREFIX)
    assert mirror.pending() == [CONFIG_FILE, f"{METRICS_DIR}/{CHUNK_0}", RUN_FILE], "nothing counts as published"
    assert mirror.run_once().complete
    assert _stored(storage) == {
        rel: (folder / rel).read_bytes() for rel in (CONFIG_FILE, f"{METRICS_DIR}/{CHUNK_0}", RUN_FILE)
    }
