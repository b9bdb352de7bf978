"""A dashboard a team can open: a token beyond loopback, a reverse proxy's path prefix, a view shared as a link.

Real parts: the dashboard's HTTP server, a real HTTP client, a small real reverse proxy on
127.0.0.1 in front of it, ``lightning-tracker serve`` as a process, and Chromium.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store
from lightning_tracker.cli import main
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.report import Dashboard
from tests.helpers import REPO
from tests.read.test_groups import seeded_sweep
from tests.report.pages import open_page
from tests.report.test_groups import _view
from tests.report.test_serve_hardening import SECURITY_HEADERS

TOKEN = "team-token-0123456789abcdef"
PREFIX = "/team/lt"
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    """One request, redirects not followed: the answer as the server gave it (body read)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = str(tmp_path_factory.mktemp("team") / "runs")
    seeded_sweep(folder)
    return folder


@pytest.fixture
def team(store_dir: str) -> Iterator[Dashboard]:
    dash = Dashboard(Store(store_dir), port=0, refresh=0.5, token=TOKEN).start()
    try:
        yield dash
    finally:
        dash.stop()


class _Proxy(ThreadingHTTPServer):
    """A reverse proxy on 127.0.0.1 serving ``upstream`` under ``PREFIX``, stripping it or forwarding it."""

    daemon_threads = True

    def __init__(self, upstream: str, strip: bool) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.strip = strip
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _Forward)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{PREFIX}/"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Forward(BaseHTTPRequestHandler):
    server: _Proxy

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        whole = not self.server.strip and self.path.split("?")[0] == PREFIX  # forwarded as is, for the server
        if not (self.path.startswith(PREFIX + "/") or whole):
            self.send_error(404)
            return
        path = self.path[len(PREFIX) :] if self.server.strip else self.path
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        headers.update({"X-Forwarded-Prefix": PREFIX, "X-Forwarded-Proto": "http"})
        upstream = http.client.HTTPConnection(
            self.server.upstream.hostname or "127.0.0.1", self.server.upstream.port, timeout=30
        )
        upstream.request("GET", path, headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in _HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _cookie_of(answer: http.client.HTTPResponse) -> tuple[str, str]:
    """``(name, value)`` of the cookie an answer sets."""
    name, _, value = (answer.getheader("Set-Cookie") or "").split(";", 1)[0].partition("=")
    return name, value


def test_serving_beyond_loopback_without_a_token_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LIGHTNING_TRACKER_SERVE_TOKEN", raising=False)
    assert main(["serve", str(tmp_path), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "host='0.0.0.0' is not a loopback address" in err and "--token" in err
    assert "LIGHTNING_TRACKER_SERVE_TOKEN" in err
    with pytest.raises(InvalidArgumentError, match="without a token"):
        Dashboard(Store(str(tmp_path)), host="0.0.0.0", port=0)


def test_a_short_token_is_refused_without_being_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LIGHTNING_TRACKER_SERVE_TOKEN", raising=False)
    assert main(["serve", str(tmp_path), "--port", "0", "--token", "hunter2"]) == 2
    captured = capsys.readouterr()
    assert "token: the value given (not shown) is not 16 characters" in captured.err
    assert "hunter2" not in captured.err + captured.out
    monkeypatch.setenv("LIGHTNING_TRACKER_SERVE_TOKEN", "has spaces in it, 0123456789")
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert "has spaces" not in capsys.readouterr().err


def test_a_base_path_that_is_not_a_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path), "--port", "0", "--base-path", "team lt/../x"]) == 2
    assert "base_path='team lt/../x' is not a URL path of plain segments" in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match="base_path='/a/../b'"):
        Dashboard(Store(str(tmp_path)), port=0, base_path="/a/../b")


def test_requests_without_the_token_get_401_and_a_link_with_it_leaves_a_cookie(team: Dashboard) -> None:
    for path in ("", "api/data", "index.html"):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Cookie": "lt_token=" + TOKEN}):
            answer = _request(team.url + path, headers=headers)
            assert answer.status == 401, (path, headers)
            assert answer.getheader("WWW-Authenticate") == 'Bearer realm="lightning-tracker"'
            assert TOKEN.encode() not in answer.body  # type: ignore[attr-defined]
    assert _request(team.url + "api/data?token=wrong").status == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert _request(team.url + "api/data", headers=bearer).status == 200
    assert _request(team.url, headers=bearer).status == 200
    # a team reaches it by the machine's name: with a token, any Host is answered
    assert _request(team.url + "api/data", headers={**bearer, "Host": "gpu-box.example:8765"}).status == 200
    # a link: the page sends the browser to the same address without the token, with a cookie
    link = _request(team.url + f"?token={TOKEN}&x=1")
    assert link.status == 303 and link.getheader("Location") == "./?x=1"
    name, value = _cookie_of(link)
    assert value != TOKEN and TOKEN not in value
    assert _request(team.url + "api/data", headers={"Cookie": f"{name}={value}"}).status == 200
    # still read-only, token or not
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert _request(team.url + "api/data", method, headers=bearer).status == 405


def test_a_team_dashboard_serves_any_store_to_the_token_only(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    seeded_sweep(save_dir, options)
    dash = Dashboard(Store(save_dir, options), port=0, token=TOKEN).start()
    try:
        assert _request(dash.url + "api/data").status == 401
        answer = _request(dash.url + "api/data", headers={"Authorization": f"Bearer {TOKEN}"})
        runs = json.loads(answer.body)["runs"]  # type: ignore[attr-defined]
        assert answer.status == 200 and sorted({r["group"] for r in runs}) == ["lr=0.01", "lr=0.02"] and len(runs) == 6
    finally:
        dash.stop()


def test_the_token_reaches_no_log_no_output_and_no_file(
    store_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dash = Dashboard(Store(store_dir), port=0, token=TOKEN).start()
    try:
        _request(dash.url + f"?token={TOKEN}")
        _request(dash.url + "api/data", headers={"Authorization": f"Bearer {TOKEN}"})
        _request(dash.url + "media/sweep/nope/x.png", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        dash.stop()
    assert TOKEN not in caplog.text
    env = {**os.environ, "LIGHTNING_TRACKER_SERVE_TOKEN": TOKEN, "PYTHONPATH": REPO, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_tracker.cli", "serve", store_dir, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        url = first.split(" at ", 1)[1].split(" ", 1)[0]
        assert _request(url + f"?token={TOKEN}").status == 303 and _request(url).status == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "needs the token" in out and TOKEN not in first + out + err
    written = [p for p in Path(store_dir).rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert written == [] and not [p for p in tmp_path.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]


@pytest.mark.parametrize("strip", [True, False], ids=["proxy-strips-prefix", "proxy-keeps-prefix"])
def test_the_page_works_behind_a_reverse_proxy_under_a_path_prefix(store_dir: str, chromium: Any, strip: bool) -> None:
    dash = Dashboard(Store(store_dir), port=0, refresh=0.5, token=TOKEN, base_path="" if strip else PREFIX).start()
    proxy = _Proxy(dash.url, strip)
    context = chromium.new_context(viewport={"width": 1400, "height": 1800})
    try:
        if not strip:  # the prefix without its "/": sent to the page's folder, under the prefix
            bare = _request(proxy.url.rstrip("/"), headers={"Authorization": f"Bearer {TOKEN}"})
            assert bare.status == 303 and bare.getheader("Location") == "lt/"
            proxy.seen.clear()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        open_page(page, proxy.url + f"?token={TOKEN}#group=seed")
        assert page.url == proxy.url + "#group=seed", "the token left the address; the view stayed"
        assert page.input_value("#group-by") == "seed"
        assert page.locator("#runs-table tbody tr").count() == 6
        page.wait_for_timeout(1_200)  # a live refresh goes through the proxy too
        assert proxy.seen and all(p.startswith(PREFIX + "/") for p in proxy.seen), proxy.seen
        assert any(p.startswith(f"{PREFIX}/api/data") for p in proxy.seen)
        assert errors == []
    finally:
        context.close()
        proxy.close()
        dash.stop()


def test_a_view_shared_as_a_link_opens_the_same_for_a_teammate(team: Dashboard, chromium: Any) -> None:
    mine = chromium.new_context(viewport={"width": 1400, "height": 1800})
    theirs = chromium.new_context(viewport={"width": 1400, "height": 1800})
    try:
        page = mine.new_page()
        open_page(page, team.url + f"?token={TOKEN}")
        page.fill("#filter", "seed<=1")
        page.select_option("#group-by", "lr")
        page.select_option("#xaxis", "t")
        page.locator("#runs-table tbody tr").last.locator("input[type=checkbox]").uncheck()
        link, view = page.url, _view(page)
        assert TOKEN not in link and "#" in link
        again = mine.new_page()  # the same browser: the cookie carries the token
        open_page(again, link)
        assert _view(again) == view
        fresh = theirs.new_page()  # a teammate: no cookie yet
        assert fresh.goto(link).status == 401
        address, fragment = link.split("#", 1)
        open_page(fresh, f"{address}?token={TOKEN}#{fragment}")
        assert _view(fresh) == view and fresh.url == link
        assert view["group"] == "lr" and view["x"] == "t" and len(view["selected"]) == 3
    finally:
        mine.close()
        theirs.close()


@pytest.mark.parametrize("base", ["", PREFIX])
def test_the_cookie_holds_no_token_and_stays_on_the_dashboards_path(store_dir: str, base: str) -> None:
    dash = Dashboard(Store(store_dir), port=0, token=TOKEN, base_path=base).start()
    try:
        link = _request(dash.url.rstrip("/") + base + f"/?token={TOKEN}")
        assert link.status == 303
        attributes = [a.strip() for a in (link.getheader("Set-Cookie") or "").split(";")[1:]]
        assert attributes == [f"Path={base}/", "HttpOnly", "SameSite=Lax"]
        name, value = _cookie_of(link)
        assert TOKEN not in value and len(value) >= 32
        headers = {"Cookie": f"{name}={value}"}
        assert _request(dash.url.rstrip("/") + base + "/api/data", headers=headers).status == 200
        # the raw token is no cookie: a cookie that leaked to another app on this host would be the token
        assert _request(dash.url.rstrip("/") + base + "/api/data", headers={"Cookie": f"{name}={TOKEN}"}).status == 401
    finally:
        dash.stop()


def test_a_link_to_the_bare_prefix_leaves_a_cookie_other_apps_on_the_host_never_see(
    store_dir: str, chromium: Any
) -> None:
    class _Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    seen: list[str | None] = []
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    dash = Dashboard(Store(store_dir), port=0, token=TOKEN, base_path=PREFIX).start()
    context = chromium.new_context()
    try:
        page = context.new_page()
        open_page(page, dash.url.rstrip("/") + PREFIX + f"?token={TOKEN}")
        assert page.url == dash.url.rstrip("/") + PREFIX + "/"
        assert [(c["path"], TOKEN in c["value"]) for c in context.cookies()] == [(PREFIX + "/", False)]
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/team/other-app/")
        assert seen and all(cookie is None for cookie in seen), seen  # the page, and maybe its favicon
    finally:
        context.close()
        other.shutdown()
        other.server_close()
        dash.stop()


def test_a_cookie_header_with_a_malformed_cookie_before_ours_still_authorises(team: Dashboard) -> None:
    name, value = _cookie_of(_request(team.url + f"?token={TOKEN}"))
    for header in (f'a=b"c; {name}={value}', f"x=[1]; {name}={value}", f"{name}x=1;{name}={value}; z"):
        assert _request(team.url + "api/data", headers={"Cookie": header}).status == 200, header
    for header in (f"{name}x={value}", f"x{name}={value}", f'{name}="{value}"x'):
        assert _request(team.url + "api/data", headers={"Cookie": header}).status == 401, header


def test_a_shared_link_clicked_on_another_site_opens_the_dashboard(team: Dashboard, chromium: Any) -> None:
    class _Chat(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f'<a id="link" href="{team.url}#group=seed">the view</a>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    chat = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=chat.serve_forever, daemon=True).start()
    context = chromium.new_context()
    try:
        page = context.new_page()
        open_page(page, team.url + f"?token={TOKEN}")
        page.goto(f"http://localhost:{chat.server_address[1]}/")  # another site: a chat, a wiki
        with page.expect_navigation():
            page.click("#link")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        assert page.input_value("#group-by") == "seed"
    finally:
        context.close()
        chat.shutdown()
        chat.server_close()


@pytest.mark.parametrize("base", ["", PREFIX])
def test_the_token_in_a_link_opens_only_the_page_and_no_redirect_carries_it(store_dir: str, base: str) -> None:
    dash = Dashboard(Store(store_dir), port=0, token=TOKEN, base_path=base).start()
    root = dash.url.rstrip("/") + base
    try:
        for path in ("/api/data", "/media/sweep/nope/x.png", "/api/table/sweep/nope/x"):
            assert _request(root + path + f"?token={TOKEN}").status == 401, path
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/", "/index.html") + (("",) if base else ()):  # "": the bare prefix
            answer = _request(root + path + f"?a=1&token={TOKEN}&b=2", headers=bearer)
            assert answer.status == 303 and TOKEN not in (answer.getheader("Location") or ""), path
            assert "token" not in (answer.getheader("Location") or "") and "a=1&b=2" in answer.getheader("Location")
        if base:
            bare = _request(root + "?a=1&token=wrong-token-0123456789")
            assert bare.status in (303, 401) and "token" not in (bare.getheader("Location") or "")
    finally:
        dash.stop()


def test_the_cookie_is_secure_when_asked_or_when_the_proxy_saw_https(store_dir: str, tmp_path: Path) -> None:
    dash = Dashboard(Store(store_dir), port=0, token=TOKEN, secure_cookie=True).start()
    try:
        assert "; Secure" in (_request(dash.url + f"?token={TOKEN}").getheader("Set-Cookie") or "")
    finally:
        dash.stop()
    dash = Dashboard(Store(store_dir), port=0, token=TOKEN).start()
    try:
        assert "Secure" not in (_request(dash.url + f"?token={TOKEN}").getheader("Set-Cookie") or "")
        https = _request(dash.url + f"?token={TOKEN}", headers={"X-Forwarded-Proto": "https"})
        assert "; Secure" in (https.getheader("Set-Cookie") or "")
    finally:
        dash.stop()
    env = {**os.environ, "LIGHTNING_TRACKER_SERVE_TOKEN": TOKEN, "PYTHONPATH": REPO, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_tracker.cli", "serve", store_dir, "--port", "0", "--secure-cookie"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        url = (proc.stdout.readline() if proc.stdout else "").split(" at ", 1)[1].split(" ", 1)[0]
        assert "; Secure" in (_request(url + f"?token={TOKEN}").getheader("Set-Cookie") or "")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_every_answer_of_a_team_dashboard_forbids_framing_and_referrers(store_dir: str) -> None:
    dash = Dashboard(Store(store_dir), port=0, token=TOKEN, base_path=PREFIX).start()
    root = dash.url.rstrip("/")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    try:
        answers = [
            _request(root + PREFIX + "/", headers=bearer),  # 200
            _request(root + PREFIX + "/"),  # 401
            _request(root + PREFIX + f"/?token={TOKEN}"),  # 303 with the cookie
            _request(root + PREFIX, headers=bearer),  # 303 to the folder
            _request(root + PREFIX + "/nope", headers=bearer),  # 404
            _request(root + PREFIX + "/api/data", "POST", headers=bearer),  # 405
            _request(root + PREFIX + "/", "OPTIONS", headers=bearer),  # 501, the stdlib's error page
        ]
        assert [a.status for a in answers] == [200, 401, 303, 303, 404, 405, 501]
        for answer in answers:
            assert {k: answer.getheader(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, answer.status
            assert answer.getheader("Server") == "lightning-tracker", answer.getheader("Server")
    finally:
        dash.stop()
