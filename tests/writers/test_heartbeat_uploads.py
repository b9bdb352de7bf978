"""``run.json`` of a live run with many hyperparameters: uploaded at a bounded rate, the run still reads as alive.

The requests are counted at a real moto S3 server on 127.0.0.1: a WSGI layer in front of
moto's own application records each PUT's path and size.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.documents import heartbeat_refresh_s, run_state, stale_after_s
from tests.servers import free_port


class CountingS3:
    """A moto S3 server that records every PUT (path, bytes) it answers."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        self.puts: list[tuple[str, int]] = []
        self._lock = threading.Lock()

        def counting(environ: dict[str, Any], start_response: Any) -> Any:
            if environ["REQUEST_METHOD"] == "PUT":
                with self._lock:
                    self.puts.append((environ["PATH_INFO"], int(environ.get("CONTENT_LENGTH") or 0)))
            return app(environ, start_response)

        self.port = free_port()
        self._server = make_server("127.0.0.1", self.port, counting, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"key": "testing", "secret": "testing", "endpoint_url": f"http://127.0.0.1:{self.port}"}

    def puts_of(self, suffix: str) -> list[int]:
        with self._lock:
            return [size for path, size in self.puts if path.endswith(suffix)]

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


@pytest.fixture
def counting_s3() -> Iterator[CountingS3]:
    server = CountingS3()
    try:
        yield server
    finally:
        server.stop()


def test_a_live_run_with_30000_hyperparameters_uploads_run_json_at_a_bounded_rate_and_reads_as_alive(
    counting_s3: CountingS3,
) -> None:
    import s3fs

    bucket = f"b-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(**counting_s3.storage_options, skip_instance_cache=True)
    fs.mkdir(bucket)
    url, options, interval = f"s3://{bucket}/exp", counting_s3.storage_options, 0.25
    logger = TrackerLogger(url, name="p", storage_options=options, flush_interval=interval, tensorboard=False)
    logger.log_hyperparams({f"layer{i}.scale": i * 0.5 for i in range(30_000)})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.flush()
    run_json = f"/{bucket}/exp/p/{logger.version}/run.json"
    while not counting_s3.puts_of(run_json):  # the first upload: the run exists in the store
        time.sleep(0.05)
    first = len(counting_s3.puts_of(run_json))
    seen: list[str] = []
    started, step = time.monotonic(), 1
    window = stale_after_s(interval) + 3  # longer than a reader waits for a heartbeat: one refresh is needed
    while (elapsed := time.monotonic() - started) < window:
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)  # the summary changes at every flush
        step += 1
        time.sleep(0.05)
        if step % 20 == 0:  # the stored document, judged by the readers' rule
            seen.append(run_state(json.loads(fs.cat(run_json.lstrip("/")))))
    sizes = counting_s3.puts_of(run_json)[first:]
    flushes = elapsed / interval
    logger.finalize("success")
    assert seen and set(seen) == {"running"}, seen  # the stored heartbeat never grew stale
    assert 1 <= len(sizes) <= elapsed / heartbeat_refresh_s(interval) + 2, (len(sizes), flushes)
    assert min(sizes) > 500_000  # each upload is the whole document, so the count is the cost
    run = Store(url, options).run(logger.version)
    assert run.status == "finished" and len(run.flat_config) == 30_000
    assert run.summary["loss"]["last"] == 1.0 / step  # the final summary is complete
