"""A small media object that decodes to something huge costs only what is shown, or is refused.

A 1.8 MB Parquet object holds 5×10⁸ rows of zeros; an 8 kB PNG claims 2×10⁸ pixels. Both are
stored as the writer stores objects (named by their sha256, listed in a media index chunk),
so the real readers meet them: ``report`` (in a process of its own, whose peak memory is
measured), ``serve``'s table route over HTTP and ``Run.read_media``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.layout import MEDIA_DIR, MEDIA_FILES_DIR, chunk_name
from lightning_tracker.format.schemas import MEDIA, PARQUET_OPTIONS
from tests.conftest import free_port

ROWS = 500_000_000


def _zeros_table() -> bytes:
    """5×10⁸ rows of int8 zeros in a Parquet file of about 1.8 MB."""
    buf = io.BytesIO()
    part = pa.table({"zeros": pa.array(np.zeros(ROWS // 10, np.int8))})
    with pq.ParquetWriter(buf, part.schema, compression="zstd") as writer:
        for _ in range(10):
            writer.write_table(part, row_group_size=ROWS // 10)
    return buf.getvalue()


def _huge_png() -> bytes:
    """A PNG of 20000×10000 pixels (2×10⁸, past Pillow's bomb limit) in a few kB."""
    import struct
    import zlib

    width, height = 20_000, 10_000

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    rows = zlib.compress(b"\x00" * ((width // 8 + 1) * 64), 9)  # 64 rows; a decoder is refused before
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _store_objects(run_dir: str, objects: list[tuple[str, str, bytes, int, int]]) -> None:
    """Stores ``(key, kind, bytes, width, height)`` objects and one index chunk listing them, as the writer does."""
    rows = []
    for key, kind, data, width, height in objects:
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest}.{'parquet' if kind != 'image' else 'png'}"
        os.makedirs(os.path.join(run_dir, MEDIA_FILES_DIR), exist_ok=True)
        with open(os.path.join(run_dir, MEDIA_FILES_DIR, name), "wb") as f:
            f.write(data)
        thumbnail = name if kind == "image" else None
        rows.append(dict(step=0, time=time.time(), key=key, index=0, kind=kind, caption=None, width=width))
        rows[-1].update(height=height, object=name, sha256=digest, thumbnail=thumbnail)
    os.makedirs(os.path.join(run_dir, MEDIA_DIR), exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=MEDIA)
    pq.write_table(table, os.path.join(run_dir, MEDIA_DIR, chunk_name(0, 0, 0, "bombs")), **PARQUET_OPTIONS[MEDIA])


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> str:
    save_dir = str(tmp_path_factory.mktemp("caps") / "runs")
    logger = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    _store_objects(
        os.path.join(save_dir, "p", "r1"),
        [("zeros", "table", _zeros_table(), 1, ROWS), ("huge", "image", _huge_png(), 20_000, 10_000)],
    )
    return save_dir


def test_report_decodes_only_the_rows_it_shows(bombs: str, tmp_path: Any) -> None:
    out = tmp_path / "r.html"
    script = (
        "import sys; from lightning_tracker.cli import main\n"
        "status = main(['report', '-s', sys.argv[1], '-o', sys.argv[2]])\n"
        # the peak of this process's own memory (ru_maxrss would count the test process it was forked from)
        "print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM')) // 1024)\n"
        "sys.exit(status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, bombs, str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split()[-1])
    # decoding every row costs more than 1 GB; the 200 rows shown cost nothing next to the interpreter
    assert peak_mb < 500, f"report peaked at {peak_mb} MB"
    match = re.search(rb'<script id="lt-data" type="application/gzip-base64">([^<]+)</script>', out.read_bytes())
    assert match is not None
    media = json.loads(gzip.decompress(base64.b64decode(match[1])))["media"]
    item = next(iter(media.values()))["zeros"]["items"][0][0]
    assert item["table"]["total"] == ROWS and len(item["table"]["rows"]) == 200


def test_serve_sends_the_first_rows_of_a_huge_table(bombs: str, tmp_path: Any) -> None:
    name = Store(bombs).run("r1").media("zeros").iloc[0]["object"]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_tracker.cli", "serve", bombs, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/table/p/r1/{name}", timeout=120) as resp:
                    body = json.loads(resp.read())
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        with open(f"/proc/{proc.pid}/status") as f:  # the server's peak memory so far
            peak_mb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) // 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert body["total"] == ROWS and len(body["rows"]) == 10_000 and body["rows"][0] == [0]
    assert peak_mb < 500, f"serve peaked at {peak_mb} MB"


def test_read_media_refuses_a_table_past_the_cap_with_a_storage_error(bombs: str) -> None:
    run = Store(bombs).run("r1")
    with pytest.raises(StorageError, match=r"500000000 rows of 1 columns, more than the 100000000 cells"):
        run.read_media("zeros", step=0)


def test_a_decompression_bomb_image_raises_storage_error(bombs: str) -> None:
    with pytest.raises(StorageError, match="too large to open"):
        Store(bombs).run("r1").read_media("huge", step=0)
