"""The live dashboard: the report's page, served with fresh data while runs train.

A stdlib HTTP server in a thread answers ``/`` (the page), ``/api/data`` (the payload as
JSON, rebuilt at most every ``refresh`` seconds) and the media the page shows:
``/media/<project>/<run id>/<object>`` (an image) and ``/api/table/<project>/<run id>/<object>``
(a text or table as JSON), and ``/api/points`` (the points of one metric of one run between
two steps, for a zoomed chart: :func:`~lightning_tracker.report.data.points_answer`). It
serves no other file: a media object is answered only when
the run's media index lists its name (``<sha256>.<ext>``), so no request can reach
another path of the store, and it accepts only ``GET`` and ``HEAD``.

**Who may read it.** Without a token it binds only a loopback address (``127.0.0.1``
unless told otherwise; any of ``127.0.0.0/8``, ``::1``, ``localhost``) and answers only
requests addressed to a loopback name (a web page cannot read it by DNS rebinding). With a
``token`` it may bind any address (a team's dashboard), and every request must carry the
token: ``Authorization: Bearer <token>``, or ``?token=<token>`` in a link to the page (only
the page: the data and media routes ignore it), which the page answers with a redirect to
the same address without it and a cookie that stands for it from then on, so the token never
stays in the address bar, in a link shared from it, or in any redirect. The cookie holds an
HMAC of the token, never the token (a browser sends a host's cookies to each of its ports and
apps), is limited to the dashboard's path (``Path=<base_path>/``), is ``HttpOnly`` and
``SameSite=Lax`` (a link clicked in a chat opens the page; the server only reads), and is
``Secure`` with ``secure_cookie`` or when the proxy says the request came over https
(``X-Forwarded-Proto``). Anything else gets ``401``. Tokens and cookies are compared in
constant time; the token is kept in memory only, never logged. The token travels in the clear
without TLS: serve a team's dashboard on its own hostname, behind a TLS proxy.

Every answer forbids framing (``X-Frame-Options``, ``frame-ancestors``) and referrers, and
names no version of the server or of Python.

**Compression.** The page and the JSON answers (``/api/data``, ``/api/points``,
``/api/table/...``) are sent gzip-compressed to a client that accepts it, with ``Vary:
Accept-Encoding`` (:mod:`~lightning_tracker.report.encoding` says when and why it is safe);
``/api/data`` is compressed once per rebuild, whatever the number of clients.

**Behind a reverse proxy.** Every URL the page requests is relative to the page, so a
proxy that serves the dashboard under a path prefix (``/team/lt/``) and strips it works as
is; one that forwards the prefix works with ``base_path="/team/lt"`` (both forms are
answered). Redirects are relative, so they stay under the prefix.

Connections are capped (a quarter of the open-file limit, at most 256) so that silent
clients cannot take the descriptors reading the store needs: a connection is *waiting*
until a request of it is authorised (its headers read, its token or Host checked); at the
cap, the connection waiting longest is closed to make room, and when none waits the new one
gets ``503``. A connection must send its whole head within ``header_timeout`` of being
accepted (a client that sends a byte now and then never meets the per-read idle timeout),
else it is closed. Running out of descriptors anyway pauses accepting
briefly instead of spinning. An error answer names the failure's type, never a path.

A refresh reads only what is new: the dashboard keeps a
:class:`~lightning_tracker.read.cache.ReadCache` of parsed chunks and of what it drew of
each run (see :func:`~lightning_tracker.report.data.payload_bytes`).
"""

from __future__ import annotations

import copy
import errno
import hashlib
import hmac
import ipaddress
import logging
import re
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.layout import validate_path_name
from lightning_tracker.read.cache import ReadCache
from lightning_tracker.read.store import Store
from lightning_tracker.report.data import DEFAULT_MAX_POINTS, payload_bytes, points_answer, store_name
from lightning_tracker.report.encoding import GZIP_MIN_BYTES, accepts_gzip, gzip_bytes
from lightning_tracker.report.html import render_page
from lightning_tracker.report.media import MediaFiles

__all__ = ["Dashboard"]

log = logging.getLogger(__name__)

_MAX_CONNECTIONS = 256
_ACCEPT_BACKOFF_S = 0.2  # out of descriptors: wait this long for connections to close before accepting again
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# on every answer: no page may frame the dashboard (clickjacking), and no link leaks its address
_SECURITY_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
)
_BUSY = (
    "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n"
    + "".join(f"{key}: {value}\r\n" for key, value in _SECURITY_HEADERS)
    + "\r\n"
).encode()
_SERVER = "lightning-tracker"  # no version of the package or of Python: nothing to match a known flaw against
_PAGES = ("/", "/index.html")  # the only routes a ?token= link opens
_COOKIE_KEY = b"lightning-tracker cookie"


# a browser tab closed (or reloaded) while its answer was being sent: routine, not a failure
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_MEDIA_ROUTES = {"/media/": "media", "/api/table/": "table"}
# media objects never change under their name (their sha256): the browser may keep them
_IMMUTABLE = "private, max-age=31536000, immutable"
MIN_TOKEN_LENGTH = 16  # shorter tokens can be guessed over the network
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")  # unreserved in a URL and plain in a cookie: it travels unchanged


def _same(given: str, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in time that does not tell how much of it matched."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def _has_token(query: str) -> bool:
    """Whether ``query`` has a ``token`` parameter."""
    return any(key == "token" for key, _ in parse_qsl(query, keep_blank_values=True))


def _without_token(query: str) -> str:
    """``query`` without its ``token`` parameters: no redirect carries the token on."""
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"])


def _check_token(token: str | None) -> str | None:
    """``token`` as the dashboard keeps it; a short one is refused without being repeated."""
    if token is None:
        return None
    token = token.strip() if isinstance(token, str) else ""
    if len(token) < MIN_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        raise InvalidArgumentError(
            f"token: the value given (not shown) is not {MIN_TOKEN_LENGTH} characters or more of letters, digits "
            "and ._~- (a short token can be guessed); pass a random one, e.g. $(openssl rand -hex 16)"
        )
    return token


def _check_base_path(base_path: str) -> str:
    """``base_path`` without its trailing ``/`` (``""`` for none)."""
    base = base_path.rstrip("/")
    if base and (not _BASE_PATH.fullmatch(base) or {".", ".."} & set(base.split("/"))):
        raise InvalidArgumentError(
            f"base_path={base_path!r} is not a URL path of plain segments; pass the prefix the proxy serves "
            "the dashboard under, such as --base-path /team/lightning"
        )
    return base


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


def _loopback_addresses(host: str) -> list[str] | None:
    """The addresses ``host`` names when every one of them is a loopback address, else None.

    Example:
        >>> _loopback_addresses("127.0.0.2"), _loopback_addresses("::1"), _loopback_addresses("0.0.0.0")
        (['127.0.0.2'], ['::1'], None)
    """
    try:
        return [host] if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    found = sorted({str(info[4][0]) for info in infos})
    return found if found and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found) else None


def _default_max_connections() -> int:
    """A quarter of the soft open-file limit, at least 8 and at most 256: the rest is for reading the store."""
    try:
        import resource
    except ImportError:  # not on this platform (Windows): no limit to share
        return _MAX_CONNECTIONS
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS
    return max(8, min(_MAX_CONNECTIONS, soft // 4))


class _Connections:
    """The open connections, at most ``cap``: the one waiting longest makes room for a new one.

    A connection waits from its accept until a request of it is authorised; one that waits
    longer than ``deadline`` seconds is closed by :meth:`close_late`.
    """

    def __init__(self, cap: int, deadline: float) -> None:
        self.cap = cap
        self.deadline = deadline
        self._lock = threading.Lock()
        self._open = 0
        # not authorised yet, oldest first, with the time of their accept
        self._silent: OrderedDict[socket.socket, float] = OrderedDict()

    def admit(self, conn: socket.socket) -> bool:
        with self._lock:
            if self._open >= self.cap:
                if not self._silent:
                    return False
                _close(self._silent.popitem(last=False)[0])
            self._open += 1
            self._silent[conn] = time.monotonic()
            return True

    def close_late(self) -> None:
        """Closes the connections that have waited past the deadline without an authorised request."""
        late = time.monotonic() - self.deadline
        with self._lock:
            while self._silent and next(iter(self._silent.values())) <= late:
                _close(self._silent.popitem(last=False)[0])

    def spoke(self, conn: socket.socket) -> None:
        with self._lock:
            self._silent.pop(conn, None)

    def release(self, conn: socket.socket) -> None:
        with self._lock:
            self._silent.pop(conn, None)
            self._open -= 1


def _close(conn: socket.socket) -> None:
    """Ends ``conn`` from here: its handler's read returns at once and its thread ends, releasing its slot."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, family: int, connections: _Connections) -> None:
        self.address_family = family  # read by the constructor when it makes the socket: ::1 needs AF_INET6
        self.connections = connections
        self._admitted: set[Any] = set()
        super().__init__(address, handler)

    def get_request(self) -> tuple[Any, Any]:
        try:
            return super().get_request()
        except OSError as err:
            if err.errno in _OUT_OF_DESCRIPTORS:  # the listening socket stays readable: without a pause this spins
                log.warning("out of file descriptors (%s); pausing new connections", err.strerror)
                time.sleep(_ACCEPT_BACKOFF_S)
            raise

    def service_actions(self) -> None:  # called by serve_forever at least every poll interval (0.5 s)
        super().service_actions()
        self.connections.close_late()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.connections.admit(request):
            self._admitted.add(request)
            return True
        try:  # every connection is busy answering: the client may retry
            request.setblocking(False)
            request.send(_BUSY)
        except OSError:
            pass
        return False

    def shutdown_request(self, request: Any) -> None:
        if request in self._admitted:
            self._admitted.discard(request)
            self.connections.release(request)
        super().shutdown_request(request)

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
        header_timeout: seconds from a connection's accept to the end of its request's
            headers; a slower client is closed (one that trickles bytes never goes idle).
        max_connections: the most connections open at once (default: a quarter of the
            open-file limit, at most 256).
        token: the secret every request must carry (16 characters or more): required to
            bind an address other than loopback; see the module's docstring.
        base_path: the path prefix a reverse proxy forwards unstripped (``"/team/lt"``).
        secure_cookie: mark the token's cookie ``Secure`` (sent over https only) also when
            the proxy does not say ``X-Forwarded-Proto: https``.

    Raises:
        InvalidArgumentError: ``refresh``, ``idle_timeout``, ``header_timeout`` or ``max_connections`` is not
            positive, ``host`` is not a loopback address and there is no ``token``
            (serving runs to the network needs one), the token is short, or
            ``base_path`` is not a path.

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
        max_connections: int | None = None,
        token: str | None = None,
        base_path: str = "",
        header_timeout: float = 10.0,
        secure_cookie: bool = False,
    ) -> None:
        if not refresh > 0:
            raise InvalidArgumentError(f"refresh={refresh!r} must be a positive number of seconds, e.g. 5")
        if not idle_timeout > 0:
            raise InvalidArgumentError(f"idle_timeout={idle_timeout!r} must be a positive number of seconds, e.g. 30")
        if not header_timeout > 0:
            raise InvalidArgumentError(
                f"header_timeout={header_timeout!r} must be a positive number of seconds, e.g. 10"
            )
        if max_connections is not None and (not isinstance(max_connections, int) or max_connections < 1):
            raise InvalidArgumentError(f"max_connections={max_connections!r} must be a positive integer, e.g. 64")
        self._token = _check_token(token)
        # what the cookie holds: it proves the token was given without being it
        self._cookie_value = (
            hmac.new(self._token.encode(), _COOKIE_KEY, hashlib.sha256).hexdigest() if self._token else None
        )
        self.secure_cookie = secure_cookie
        self.base_path = _check_base_path(base_path)
        addresses = _loopback_addresses(host)
        if addresses is None and self._token is None:
            raise InvalidArgumentError(
                f"host={host!r} is not a loopback address, and without a token the dashboard would serve every "
                "run to the network; pass a token (--token, or $LIGHTNING_TRACKER_SERVE_TOKEN) or --host 127.0.0.1"
            )
        self.idle_timeout = idle_timeout
        self.store = store
        # a copy that shares the storage and carries the cache: the caller's store stays as it was
        self._reader = copy.copy(store)
        self._reader.cache = store.cache if store.cache is not None else ReadCache()
        self.project = project
        self.refresh = refresh
        self.max_points = max_points
        self._page = render_page(None, live_interval=refresh, title=f"Live: {store_name(store)}").encode("utf-8")
        self._page_gzip: bytes | None = None  # made at the first request that accepts it
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None
        self._cached_gzip: bytes | None = None  # the compressed _cached[1], made at most once per rebuild
        self.media = MediaFiles(self._reader, project)
        family = socket.AF_INET6 if ":" in (addresses[0] if addresses else host) else socket.AF_INET
        cap = max_connections if max_connections is not None else _default_max_connections()
        self._server = _Server((host, port), self._handler(), family, _Connections(cap, header_timeout))
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def data(self) -> bytes:
        """The payload as JSON bytes, rebuilt when older than ``refresh`` seconds."""
        with self._lock:
            return self._data()

    def _data(self) -> bytes:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] >= self.refresh:
            self._cached = (now, payload_bytes(self._reader, project=self.project, max_points=self.max_points))
            self._cached_gzip = None
        return self._cached[1]

    def _data_gzip(self) -> tuple[bytes, bytes]:
        """The payload as JSON bytes and gzip-compressed: compressed once per rebuild, for every client."""
        with self._lock:
            body = self._data()
            if self._cached_gzip is None:
                self._cached_gzip = gzip_bytes(body)
            return body, self._cached_gzip

    def _page_gzipped(self) -> bytes:
        with self._lock:
            if self._page_gzip is None:  # once per server: the page never changes, so a better level
                self._page_gzip = gzip_bytes(self._page, 6)
            return self._page_gzip

    @property
    def needs_token(self) -> bool:
        """Whether every request must carry the token."""
        return self._token is not None

    @property
    def _cookie(self) -> str:
        # one per port: the browser sends a host's cookies to each of its ports
        return f"lt_token_{self._server.server_address[1]}"

    def _authorisation(self, headers: Any, query: str, page: bool) -> str:
        """How a request proves it has the token: ``"header"``, ``"query"`` (a link to a page),
        ``"cookie"``, or ``""`` when it does not. Compared in constant time."""
        if self._token is None or self._cookie_value is None:
            return ""
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return "header" if _same(value.strip(), self._token) else ""
        found = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "token"]
        if found and page:  # elsewhere a token in the address would stay there: only a page redirects it away
            return "query" if _same(found[-1], self._token) else ""
        # by hand, not SimpleCookie: it stops at the first cookie it cannot parse, dropping ours after it
        cookies = (part.partition("=") for part in (headers.get("Cookie") or "").split(";"))
        given = [v.strip() for k, _, v in cookies if k.strip() == self._cookie]
        return "cookie" if any([_same(v, self._cookie_value) for v in given]) else ""

    def _host_allowed(self, host_header: str) -> bool:
        """Whether a request names this server by a loopback name (DNS rebinding names it otherwise)."""
        try:
            host = urlsplit(f"//{host_header}").hostname or ""
        except ValueError:  # a malformed Host header ("[::1")
            return False
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            server_version = _SERVER
            timeout = dashboard.idle_timeout  # the socket timeout: a silent client is disconnected

            def version_string(self) -> str:  # the stdlib's adds Python's version
                return _SERVER

            def end_headers(self) -> None:  # every answer, the stdlib's error pages included
                for key, value in _SECURITY_HEADERS:
                    self.send_header(key, value)
                super().end_headers()

            def _failed(self, what: str, exc: Exception, head: bool) -> None:
                # the details go to the log; the answer names the failure's type, never a path of this machine
                log.warning("dashboard: %s failed", what, exc_info=exc)
                body = f"{what} failed ({type(exc).__name__}); the server's log has the details".encode()
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, body, "text/plain; charset=utf-8", head)

            def _send(
                self,
                status: HTTPStatus,
                body: bytes,
                kind: str,
                head: bool = False,
                cache: str = "no-store",
                packed: Callable[[], bytes] | None = None,
            ) -> None:
                """Answers ``body``; with ``packed`` (its gzip-compressed bytes, when asked for) the answer
                may be compressed, and says that it depends on the request's ``Accept-Encoding``."""
                gzipped = (
                    packed is not None
                    and len(body) >= GZIP_MIN_BYTES
                    and accepts_gzip(self.headers.get("Accept-Encoding"))
                )
                if gzipped and packed is not None:
                    body = packed()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if gzipped:
                    self.send_header("Content-Encoding", "gzip")
                if packed is not None:
                    self.send_header("Vary", "Accept-Encoding")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache)
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _send_json(
                self, body: bytes, head: bool, cache: str = "no-store", kind: str = "application/json"
            ) -> None:
                self._send(HTTPStatus.OK, body, kind, head, cache, packed=lambda: gzip_bytes(body))

            def _route(self, head: bool) -> None:
                split = urlsplit(self.path)
                path = split.path
                base = dashboard.base_path
                if base and (path == base or path.startswith(base + "/")):  # a proxy that keeps its prefix
                    path = path[len(base) :] or "/"
                bare = bool(base) and split.path == base  # "/team/lt": the page's relative URLs need "/team/lt/"
                if not dashboard.needs_token and not dashboard._host_allowed(self.headers.get("Host", "")):
                    # DNS rebinding: a web page must not read a localhost dashboard through its own name
                    self._send(HTTPStatus.FORBIDDEN, b"unexpected Host header", "text/plain; charset=utf-8", head)
                    return
                if bare and not _has_token(split.query):
                    # before the token: the cookie's path is the folder, so the browser sends none here
                    self._redirect(base.rsplit("/", 1)[-1] + "/", split.query, head)
                    return
                if dashboard.needs_token and not self._authorised(split.path, split.query, path, head):
                    return
                # authorised: no longer a connection that may be closed to make room, or for being slow
                dashboard._server.connections.spoke(self.connection)
                if path in _PAGES:
                    page = dashboard._page
                    self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", head, packed=dashboard._page_gzipped)
                elif path == "/api/data":
                    gzipped = accepts_gzip(self.headers.get("Accept-Encoding"))
                    try:  # compressed only for a client that takes it: none pays for another's encoding
                        body, packed = dashboard._data_gzip() if gzipped else (dashboard.data(), b"")
                    except Exception as exc:  # noqa: BLE001 - shown in the page; the server keeps serving
                        self._failed("reading the store", exc, head)
                        return
                    self._send(HTTPStatus.OK, body, "application/json", head, packed=lambda: packed)
                elif path == "/api/points":
                    self._points(urlsplit(self.path).query, head)
                elif path.startswith(tuple(_MEDIA_ROUTES)):
                    self._media(path, head)
                else:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8", head)

            def _points(self, query: str, head: bool) -> None:
                try:
                    body = points_answer(dashboard._reader, query, dashboard.project)
                except InvalidArgumentError as exc:
                    self._send(HTTPStatus.BAD_REQUEST, str(exc).encode(), "text/plain; charset=utf-8", head)
                    return
                except Exception as exc:  # noqa: BLE001 - shown in the page; the server keeps serving
                    self._failed("reading points", exc, head)
                    return
                if body is None:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8", head)
                else:
                    self._send_json(body, head)

            def _authorised(self, asked: str, query: str, path: str, head: bool) -> bool:
                """Whether the request carries the token; else answers 401. A page asked for with ``?token=``
                is sent to the same address without it, with the cookie that stands for it when that token
                is what authorised it."""
                where = dashboard._authorisation(self.headers, query, page=path in _PAGES)
                if not where:
                    self.send_response(HTTPStatus.UNAUTHORIZED)
                    body = (
                        b"this dashboard needs its token: open the link with ?token=<token>, "
                        b"or send the header Authorization: Bearer <token>"
                    )
                    self.send_header("WWW-Authenticate", 'Bearer realm="lightning-tracker"')
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    if not head:
                        self.wfile.write(body)
                    return False
                if path in _PAGES and _has_token(query):
                    base = dashboard.base_path
                    # to the page's folder when asked for the bare prefix: the cookie's path ends in "/"
                    page = base.rsplit("/", 1)[-1] + "/" if base and asked == base else asked.rsplit("/", 1)[-1]
                    self._redirect(page or "./", query, head, cookie=where == "query")
                    return False
                return True

            def _redirect(self, location: str, query: str, head: bool, cookie: bool = False) -> None:
                """``303`` to ``location``, relative to the page (so it stays under a proxy's prefix), without
                the token in its query; with ``cookie``, sets the cookie that stands for the token."""
                query = _without_token(query)
                self.send_response(HTTPStatus.SEE_OTHER)
                self.send_header("Location", location + (f"?{query}" if query else ""))
                if cookie:
                    https = dashboard.secure_cookie or self.headers.get("X-Forwarded-Proto", "").lower() == "https"
                    flags = f"; Path={dashboard.base_path}/; HttpOnly; SameSite=Lax" + ("; Secure" if https else "")
                    self.send_header("Set-Cookie", f"{dashboard._cookie}={dashboard._cookie_value}{flags}")
                self.send_header("Content-Length", "0")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def _media(self, path: str, head: bool) -> None:
                request = _media_request(path)
                try:
                    found = dashboard.media.answer(*request[1:], route=request[0]) if request else None
                except Exception as exc:  # noqa: BLE001 - a damaged object; the server keeps serving
                    self._failed("reading a media object", exc, head)
                    return
                if found is None:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8", head)
                elif found[1].startswith("application/json"):  # a table or a text: compressible
                    self._send_json(found[0], head, cache=_IMMUTABLE, kind=found[1])
                else:  # an image: already compressed
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
