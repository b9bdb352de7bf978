"""``serve`` under a hostile or careless client, with real sockets and HTTP clients: silent
connections under a low open-file limit neither make the server spin nor starve real requests,
an error answer names no path, every loopback address keeps the DNS-rebinding guard, a
non-loopback bind is refused (no token yet), and ``::1`` binds; ``report -o
s3://KEY:SECRET@… --share`` signs a link that opens (moto S3)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.report import Dashboard
from tests.conftest import S3Server
from tests.helpers import REPO

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
TOKEN = "team-token-0123456789abcdef"


def _store(tmp_path: Path) -> str:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    return save_dir


def _get(host: str, port: int, path: str = "/api/data", host_header: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": host_header} if host_header else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


SERVER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
from lightning_tracker import Store
from lightning_tracker.report import Dashboard
dash = Dashboard(Store({store!r}), port=0, idle_timeout=120)
print(dash.url, flush=True)
dash.serve_forever()
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads the server's CPU time from /proc")
def test_silent_connections_under_a_low_file_limit_neither_spin_the_server_nor_starve_real_requests(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    script = textwrap.dedent(SERVER.format(limit=64, store=store))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    silent: list[socket.socket] = []
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        for _ in range(100):  # more than the 64 descriptors the server may open
            try:
                silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        time.sleep(1.0)  # let the server accept what it will
        before = _cpu_seconds(proc.pid)
        time.sleep(2.0)
        spent = _cpu_seconds(proc.pid) - before
        # a server retrying accept() on EMFILE in a loop burns a core (0.5 s and more here on a loaded VM)
        assert spent < 0.25, f"the server used {spent:.2f} s of CPU in 2 s while clients stayed silent"
        for _ in range(5):  # real requests are answered while the silent connections stay open
            status, body = _get("127.0.0.1", port)
            assert status == 200 and json.loads(body)["version"] == 1
        assert proc.poll() is None
    finally:
        for sock in silent:
            sock.close()
        proc.kill()
        proc.wait()


FULL = """
import os, sys
from lightning_tracker import Store
from lightning_tracker.report import Dashboard
dash = Dashboard(Store({store!r}), port=0).start()
held = []
try:
    while True:  # take every descriptor the process may open
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
os.close(held.pop())  # one left: the next connection is accepted, reading the store then fails
print(dash.url, flush=True)
sys.stdin.read()
"""


def test_an_error_answer_names_the_failure_and_no_path(tmp_path: Path) -> None:
    store = _store(tmp_path)
    script = textwrap.dedent(FULL.format(store=store))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        status, body = _get("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
        assert status == 500, body
        assert body.startswith(b"reading the store failed (OSError)"), body
        assert str(tmp_path).encode() not in body and b"/" not in body, body
    finally:
        proc.kill()
        proc.wait()


def test_every_loopback_address_keeps_the_dns_rebinding_guard() -> None:
    dash = Dashboard(Store("memory://serve-guard"), host="127.0.0.2", port=0).start()
    try:
        port = dash._server.server_address[1]
        assert _get("127.0.0.2", port, host_header=f"evil.example:{port}")[0] == 403
        assert _get("127.0.0.2", port, host_header=f"127.0.0.2:{port}")[0] == 200
        assert _get("127.0.0.2", port, host_header=f"localhost:{port}")[0] == 200
    finally:
        dash.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.0.2.10", "example.com"])
def test_a_bind_that_reaches_the_network_is_refused_without_a_token(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"host={host!r} is not a loopback address"):
        Dashboard(Store("memory://serve-public"), host=host, port=0)
    assert main(["serve", _store(tmp_path), "--host", host, "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a loopback address" in err and "another --port" not in err


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback to bind")
def test_the_ipv6_loopback_binds_and_serves() -> None:
    dash = Dashboard(Store("memory://serve-v6"), host="::1", port=0).start()
    try:
        assert dash.url.startswith("http://[::1]:")
        with urllib.request.urlopen(dash.url + "api/data", timeout=30) as response:
            assert json.loads(response.read())["version"] == 1
    finally:
        dash.stop()


def test_a_bind_that_fails_for_another_reason_than_the_port_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    busy = socket.create_server(("127.0.0.1", 0))
    try:
        port = busy.getsockname()[1]
        assert main(["serve", "memory://serve-busy", "--port", str(port)]) == 2
        assert "pass another --port" in capsys.readouterr().err
    finally:
        busy.close()


def test_a_report_written_to_a_url_with_credentials_is_shared_by_a_link_that_opens(
    s3_server: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path)
    bucket = s3_server.new_bucket()
    url = f"s3://testing:testing@{bucket}/reports/r.html"  # moto's credentials, in the URL only
    options: dict[str, Any] = {"endpoint_url": s3_server.endpoint}
    argv = ["report", "-s", store, "-o", url, "--share", "1", "--storage-options", json.dumps(options)]
    assert main(argv) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())
    assert f"report written to s3://{bucket}/reports/r.html" in out and "testing:testing" not in out
    link = out.split("): ", 1)[1].split()[0]
    with urllib.request.urlopen(link, timeout=30) as response:  # no credentials: the signature is the key
        assert response.read().decode().startswith("<!DOCTYPE html>")


def _trickling(port: int, count: int) -> tuple[list[socket.socket], threading.Event]:
    """``count`` connections that sent a request line and then send one header byte every 0.2 s, and their stop."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    for sock in socks:
        sock.sendall(b"GET /api/data HTTP/1.1\r\nX-Slow: ")
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.2):
            for sock in socks:
                try:
                    sock.sendall(b"x")
                except OSError:
                    pass

    threading.Thread(target=trickle, daemon=True).start()
    return socks, stop


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (waits up to the socket's timeout)."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_slow_unauthorised_requests_at_the_cap_make_room_for_a_real_one(tmp_path: Path) -> None:
    dash = Dashboard(Store(_store(tmp_path)), port=0, token=TOKEN, max_connections=4, idle_timeout=30).start()
    socks, stop = _trickling(dash._server.server_address[1], 4)
    try:
        time.sleep(0.5)  # every slow connection has sent its request line and some header bytes
        conn = http.client.HTTPConnection("127.0.0.1", dash._server.server_address[1], timeout=30)
        conn.request("GET", "/api/data", headers={"Authorization": f"Bearer {TOKEN}"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        dash.stop()


def test_a_connection_that_trickles_its_headers_is_closed_at_the_header_deadline(tmp_path: Path) -> None:
    # each byte comes long before the idle timeout: only a deadline for the whole head ends it
    dash = Dashboard(Store(_store(tmp_path)), port=0, token=TOKEN, idle_timeout=30, header_timeout=1).start()
    socks, stop = _trickling(dash._server.server_address[1], 1)
    try:
        assert _closed(socks[0])
    finally:
        stop.set()
        socks[0].close()
        dash.stop()
    with pytest.raises(InvalidArgumentError, match="header_timeout=0"):
        Dashboard(Store(_store(tmp_path)), port=0, header_timeout=0)
