"""Media and documents against the flusher: what the training thread, the heartbeat and the store pay.

Three measurements, each on a fresh run:

- ``log_table(dataframe=…)`` of 1,000,000 rows × 4 columns: training-thread seconds per call
  (median of 5); the conversion to Arrow happens later, on the flusher;
- an image backlog: 40 images of 768×768 noise logged at once on a local store with
  ``flush_interval=0.5``: the oldest the local ``run.json`` heartbeat got while the backlog
  was encoded (readers call a run ``crashed`` past 3 × 0.5 + 10 = 11.5 s), and how long
  ``finalize`` took with ``finalize_timeout=3`` (what it left out is in its warning);
- ``run.json`` uploads of a live run with 30,000 hyperparameters on a moto S3 server
  (in this process; the requests are counted by a WSGI layer in front of moto), logging a
  metric every 50 ms for 20 s with ``flush_interval=0.5``: PUT requests and bytes per second.

Usage: python benchmarks/writer_backlog.py
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")
logging.getLogger("werkzeug").setLevel(logging.ERROR)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lightning_tracker import TrackerLogger  # noqa: E402


def log_table_seconds() -> float:
    rng = np.random.default_rng(0)
    n = 1_000_000
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "score": rng.random(n),
            "label": rng.integers(0, 10, n),
            "name": [f"s{i % 1000}" for i in range(n)],
        }
    )
    times = []
    with tempfile.TemporaryDirectory() as folder:
        logger = TrackerLogger(folder, name="bench", flush_interval=300, tensorboard=False)
        for step in range(5):
            t0 = time.perf_counter()
            logger.log_table("rows", dataframe=frame, step=step)
            times.append(time.perf_counter() - t0)
        logger.finalize("success")
    return statistics.median(times)


def image_backlog() -> tuple[float, float]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (768, 768, 3), dtype=np.uint8) for _ in range(40)]
    with tempfile.TemporaryDirectory() as folder:
        logger = TrackerLogger(folder, name="bench", flush_interval=0.5, tensorboard=False, finalize_timeout=3)
        logger.log_metrics({"a": 0.0}, step=0)
        logger.flush()
        path = os.path.join(logger.log_dir, "run.json")
        for step, image in enumerate(images):
            logger.log_image("noise", [image], step=step)
        oldest, end = 0.0, time.monotonic() + 8.0
        while time.monotonic() < end:
            with open(path) as f:
                oldest = max(oldest, time.time() - json.load(f)["heartbeat"])
            time.sleep(0.05)
        t0 = time.perf_counter()
        logging.disable(logging.WARNING)
        logger.finalize("success")
        logging.disable(logging.NOTSET)
        return oldest, time.perf_counter() - t0


def run_json_uploads(seconds: float = 20.0) -> tuple[float, float]:
    import s3fs
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    puts: list[tuple[str, int]] = []

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "PUT":
            puts.append((environ["PATH_INFO"], int(environ.get("CONTENT_LENGTH") or 0)))
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = {"key": "k", "secret": "s", "endpoint_url": f"http://127.0.0.1:{server.server_address[1]}"}
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**options, skip_instance_cache=True).mkdir(bucket)
    with tempfile.TemporaryDirectory() as spool:
        logger = TrackerLogger(
            f"s3://{bucket}/exp", name="bench", storage_options=options, flush_interval=0.5, spool_dir=spool
        )
        logger.log_hyperparams({f"layer{i}.scale": i * 0.5 for i in range(30_000)})
        logger.log_metrics({"loss": 1.0}, step=0)
        time.sleep(2.0)  # the first upload
        path = f"/{bucket}/exp/bench/{logger.version}/run.json"
        first = len([p for p in puts if p[0] == path])
        t0, step = time.monotonic(), 1
        while time.monotonic() - t0 < seconds:
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            step += 1
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        sizes = [size for p, size in puts if p == path][first:]
        logger.finalize("success")
    server.shutdown()
    return len(sizes) / elapsed, sum(sizes) / elapsed


def main() -> None:
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"log_table(dataframe=1,000,000 x 4): {log_table_seconds() * 1000:.1f} ms on the training thread (median)")
    oldest, finalize_s = image_backlog()
    print(
        f"image backlog (40 x 768x768 noise): oldest local heartbeat {oldest:.1f} s; "
        f"finalize(timeout=3) {finalize_s:.1f} s"
    )
    rate, nbytes = run_json_uploads()
    print(f"run.json with 30,000 hyperparameters, flush_interval=0.5: {rate:.2f} PUT/s, {nbytes / 1024:.0f} KB/s")


if __name__ == "__main__":
    main()
