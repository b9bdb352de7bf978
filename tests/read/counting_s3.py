"""A moto S3 server on 127.0.0.1 that counts the requests it answers, and can refuse every write.

The claims of the project index are about requests, so they are counted where they
arrive: at the server, whatever the client (s3fs, botocore) does under the hood.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from tests.conftest import S3Server

_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
)


class CountingS3Server(S3Server):
    """moto's S3 app served on a free port; otherwise an :class:`~tests.conftest.S3Server`.

    Attributes:
        requests: ``(method, path?query)`` of every request answered, in order.
        read_only: when True, every PUT, POST and DELETE is answered ``403 AccessDenied``
            (an account that may only read).
    """

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        self.requests: list[tuple[str, str]] = []
        self.read_only = False
        lock = threading.Lock()

        def counting(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            method = environ["REQUEST_METHOD"]
            query = environ.get("QUERY_STRING", "")
            with lock:
                self.requests.append((method, environ.get("PATH_INFO", "") + (f"?{query}" if query else "")))
            if self.read_only and method in ("PUT", "POST", "DELETE"):
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [_DENIED]
            return app(environ, start_response)

        self._server = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def count(self, since: int = 0) -> int:
        """Requests answered since the ``since``-th (``len(server.requests)`` taken before)."""
        return len(self.requests) - since

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
