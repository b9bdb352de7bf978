"""The live dashboard: the report's page, served with fresh data while runs train.

A stdlib HTTP server in a thread answers ``/`` (the page), ``/api/data`` (the payload as
JSON, rebuilt at most every ``refresh`` seconds) and the media the page shows:
``/media/<project>/<run id>/<object>`` (an image) and ``/api/table/<project>/<run id>/<object>``
(a text or table as JSON). It serves no other file: a media object is answered only when
the run's media index lists its name (``<sha256>.<ext>``), so no request can reach
another path of the store, and it accepts only ``GET`` and ``HEAD``. It binds
``127.0.0.1`` unless told otherwise, and then answers only requests addressed to a
loopback name (a web page cannot read it by DNS rebinding).

A refresh reads only what is new: the dashboard keeps a
:class:`~lightning_tracker.read.cache.ReadCache` of parsed chunks and of what it drew of
each run (see :func:`~lightning_tracker.report.data.payload_bytes`).
"""

from __future__ import annotations

import copy
import logging
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.layout import validate_path_name
from lightning_tracker.read.cache import ReadCache
from lightning_tracker.read.store import Store
from lightning_tracker.report.data import DEFAULT_MAX_POINTS, payload_bytes, store_name
from lightning_tracker.report.html import render_page
from lightning_tracker.report.media import MediaFiles

__all__ = ["Dashboard"]

_LOOPBACK = ("127.0.0.1", "::1")
log = logging.getLogger(__name__)


# a browser tab closed (or reloaded) while its answer was being sent: routine, not a failure
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_MEDIA_ROUTES = {"/media/": "media", "/api/table/": "table"}
# media objects never change under their name (their sha256): the browser may keep them
_IMMUTABLE = "private, max-age=31536000, immutable"


def _media_request(path: str) -> tuple[str, str, str, str] | None:
    """``(route, project, run id, object name)`` of a media path; None when it is not one.

    Example:
        >>> _media_request("/media/p/r1/ab.png"), _media_request("/media/%2e%2e/r1/ab.png")
        (('media', 'p', 'r1', 'ab.png'), None)
    """
    for prefix, route in _MEDIA_ROUTES.items():
        if path.startswith(prefix):
            parts = [unquote(p) for p in path[len(prefix) :].split("/")]
            if len(parts) != 3:
                return None
            try:  # folder names only: no "..", no "/", nothing hidden
                project, run_id = (validate_path_name("path", p) for p in parts[:2])
            except InvalidArgumentError:
                return None
            return route, project, run_id, parts[2]
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went silent or away mid-answer: logged, never printed (only the CLI prints)
        if isinstance(sys.exc_info()[1], _GONE):
            log.debug("%s closed the connection before the answer was sent", client_address)
            return
        log.debug("connection from %s failed", client_address, exc_info=True)


class Dashboard:
    """Serves the live dashboard of a store over HTTP, in a background thread.

    Args:
        store: the store to show.
        project: only this project (default: every project).
        host: the address to bind (default ``127.0.0.1``: this machine only).
        port: the port (0 picks a free one).
        refresh: seconds between page reloads and between rebuilds of the data.
        max_points: the most points drawn per line.
        idle_timeout: seconds a connection may stay silent (mid-request or before one)
            before it is closed, so idle or stalled clients cannot hold a thread each.

    Raises:
        InvalidArgumentError: ``refresh`` or ``idle_timeout`` is not positive.

    Example:
        >>> import urllib.request
        >>> dash = Dashboard(Store("memory://doc-dash"), port=0).start()
        >>> urllib.request.urlopen(dash.url + "api/data").read()[:12]
        b'{"version":1'
        >>> dash.stop()
    """

    def __init__(
        self,
        store: Store,
        *,
        project: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8765,
        refresh: float = 5.0,
        max_points: int = DEFAULT_MAX_POINTS,
        idle_timeout: float = 30.0,
    ) -> None:
        if not refresh > 0:
            raise InvalidArgumentError(f"refresh={refresh!r} must be a positive number of seconds, e.g. 5")
        if not idle_timeout > 0:
            raise InvalidArgumentError(f"idle_timeout={idle_timeout!r} must be a positive number of seconds, e.g. 30")
        self.idle_timeout = idle_timeout
        self.store = store
        # a copy that shares the storage and carries the cache: the caller's store stays as it was
        self._reader = copy.copy(store)
        self._reader.cache = store.cache if store.cache is not None else ReadCache()
        self.project = project
        self.refresh = refresh
        self.max_points = max_points
        self._page = render_page(None, live_interval=refresh, title=f"Live: {store_name(store)}").encode("utf-8")
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None
        self.media = MediaFiles(self._reader, project)
        self._server = _Server((host, port), self._handler())
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}/"

    def data(self) -> bytes:
        """The payload as JSON bytes, rebuilt when older than ``refresh`` seconds."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.refresh:
                self._cached = (now, payload_bytes(self._reader, project=self.project, max_points=self.max_points))
            return self._cached[1]

    def _host_allowed(self, host_header: str) -> bool:
        bound = self._server.server_address[0]
        if bound not in _LOOPBACK:
            return True  # bound to a public address on purpose: any name may reach it
        host = urlsplit(f"//{host_header}").hostname or ""
        return host in _LOOPBACK or host == "localhost"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "lightning-tracker"
            timeout = dashboard.idle_timeout  # the socket timeout: a silent client is disconnected

            def _send(
                self, status: HTTPStatus, body: bytes, kind: str, head: bool = False, cache: str = "no-store"
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache)
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _route(self, head: bool) -> None:
                path = urlsplit(self.path).path
                if not dashboard._host_allowed(self.headers.get("Host", "")):
                    # DNS rebinding: a web page must not read a localhost dashboard through its own name
                    self._send(HTTPStatus.FORBIDDEN, b"unexpected Host header", "text/plain; charset=utf-8", head)
                elif path in ("/", "/index.html"):
                    self._send(HTTPStatus.OK, dashboard._page, "text/html; charset=utf-8", head)
                elif path == "/api/data":
                    try:
                        body = dashboard.data()
                    except Exception as exc:  # noqa: BLE001 - shown in the page; the server keeps serving
                        msg = f"reading {dashboard.store.storage.url} failed: {exc}".encode()
                        self._send(HTTPStatus.INTERNAL_SERVER_ERROR, msg, "text/plain; charset=utf-8", head)
                        return
                    self._send(HTTPStatus.OK, body, "application/json", head)
                elif path.startswith(tuple(_MEDIA_ROUTES)):
                    self._media(path, head)
                else:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8", head)

            def _media(self, path: str, head: bool) -> None:
                request = _media_request(path)
                try:
                    found = dashboard.media.answer(*request[1:], route=request[0]) if request else None
                except Exception as exc:  # noqa: BLE001 - a damaged object; the server keeps serving
                    msg = f"reading {path} from {dashboard.store.storage.url} failed: {exc}".encode()
                    self._send(HTTPStatus.INTERNAL_SERVER_ERROR, msg, "text/plain; charset=utf-8", head)
                    return
                if found is None:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8", head)
                else:
                    self._send(HTTPStatus.OK, found[0], found[1], head, cache=_IMMUTABLE)

            def do_GET(self) -> None:  # the stdlib's naming
                self._route(head=False)

            def do_HEAD(self) -> None:
                self._route(head=True)

            def _read_only(self) -> None:
                self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only", "text/plain; charset=utf-8")

            do_POST = do_PUT = do_DELETE = do_PATCH = _read_only

            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
                pass  # only the CLI prints

        return Handler

    def start(self) -> Dashboard:
        """Starts serving in a daemon thread; returns self."""
        self._serving = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="lt-dashboard", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serves in the calling thread until interrupted."""
        self._serving = True
        self._server.serve_forever()

    def stop(self) -> None:
        """Stops serving and closes the socket (also when it never served)."""
        if self._serving:  # shutdown() waits for a serve_forever loop: without one it never returns
            self._server.shutdown()
            self._serving = False
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
