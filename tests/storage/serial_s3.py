"""A moto S3 server on 127.0.0.1 that applies one request at a time and records its PUTs.

S3 applies a conditional write (``If-None-Match: *``) atomically. moto checks the
condition and then stores the object in two steps, and its threaded server runs requests
side by side, so two conditional PUTs racing could in rare interleavings both pass there,
which S3 itself never lets happen. Applying one request at a time (connections still
open side by side) makes moto what S3 is for this, so a race test measures our side
only: the test checks at the server that each create was one conditional PUT.

``conflict_once`` makes the server answer the first conditional PUT of a key with
S3's ``409 ConditionalRequestConflict``, as AWS does while another conditional write of
the key is in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from tests.conftest import S3Server

_CONFLICT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ConditionalRequestConflict</Code>'
    b"<Message>A conflicting conditional operation is currently in progress against this resource. "
    b"Please try again.</Message></Error>"
)


class SerialS3Server(S3Server):
    """moto's S3 app served on a free port, one request applied at a time; otherwise an
    :class:`~tests.conftest.S3Server` (endpoint, storage options, buckets).

    Attributes:
        puts: ``(path, If-None-Match header or None)`` of every PUT, in order; only in
            the process that started the server.
        requests: ``(method, path, query string)`` of every request, in order (a claim
            about how many requests something takes is checked here).
        conflict_once: paths (``/bucket/key``) whose next conditional PUT gets a 409.
    """

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()
        self.puts: list[tuple[str, str | None]] = []
        self.requests: list[tuple[str, str, str]] = []
        self.conflict_once: set[str] = set()

        def serial(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            with lock:
                path, condition = environ.get("PATH_INFO", ""), environ.get("HTTP_IF_NONE_MATCH")
                self.requests.append((environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", "")))
                if environ["REQUEST_METHOD"] == "PUT":
                    self.puts.append((path, condition))
                    if condition and path in self.conflict_once:
                        self.conflict_once.discard(path)
                        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                        start_response("409 Conflict", [("Content-Type", "application/xml")])
                        return [_CONFLICT]
                return list(app(environ, start_response))

        self._server = make_server("127.0.0.1", 0, serial, threaded=True, request_handler=MotoRequestHandler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
