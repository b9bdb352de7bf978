"""A moto S3 server in a child process for the benchmarks (in the measuring process its
request threads would compete with the code being measured for the GIL)."""

from __future__ import annotations

import multiprocessing
from typing import Any


def _serve(conn: Any) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(server.get_host_and_port()[1])
    conn.recv()  # until the parent says stop
    server.stop()


class MotoProcess:
    """Starts moto on 127.0.0.1 in a child process; ``endpoint`` is its URL."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._proc = context.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        self.endpoint = f"http://127.0.0.1:{self._conn.recv()}"

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)
