"""The run layout: ids, names, file names and the small JSON documents of a run.

Everything here is pure Python (no torch, no fsspec) so the read side can share it.
``docs/format.md`` describes the same layout for people; keep the two in step.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import time
from datetime import datetime, timezone
from typing import Any

from lightning_tracker.exceptions import InvalidArgumentError

__all__ = [
    "FORMAT_VERSION",
    "chunk_name",
    "dumps",
    "live_chunks",
    "loads",
    "new_run_id",
    "new_run_name",
    "parse_chunk_name",
    "run_state",
    "validate_path_name",
    "writer_identity",
]

FORMAT_VERSION = 2  # 2: the summary and the flat hyperparameters moved into run.json

RUN_FILE = "run.json"  # identity, status, heartbeat, sessions, params, summary (rewritten in one put)
META_FILE = "meta.json"  # environment of the first session (written once)
CONFIG_FILE = "config.json"  # hyperparameters, nested + flat + change history
SUMMARY_FILE = "summary.json"  # format 1 only: per-metric summary (now in run.json)
GIT_DIFF_FILE = "git.diff"  # uncommitted changes when started in a dirty repository
METRICS_DIR = "metrics"  # immutable parquet chunks of metric points
HISTOGRAMS_DIR = "histograms"  # immutable parquet chunks of histograms (GradientMonitor)
DATA_DIRS = (METRICS_DIR, HISTOGRAMS_DIR)  # folders of chunk files, mirrored and compacted alike
SPOOL_FILE = "spool.json"  # in a spool folder only: where the run is uploaded to
MODELS_DIR = "models"  # stored checkpoints (log_model), one immutable object each
MODELS_FILE = "models.json"  # the checkpoint manifest, rewritten in one put after each change

MUTABLE_FILES = (CONFIG_FILE, SUMMARY_FILE, RUN_FILE)
TERMINAL_STATES = ("finished", "failed")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK_RE = re.compile(r"^(\d{3,})-(\d{8,})-(\d{8,})\.parquet$")

_ADJECTIVES = (
    "amber bold brave bright calm clever cosmic crisp daring dawn eager early fancy fierce "
    "fluent gentle glad golden grand happy hardy hidden honest humble icy jolly keen kind "
    "lively lucky lunar merry misty noble odd patient plucky polar proud quick quiet rapid "
    "rare rosy royal rustic shiny silent silver sleek smooth snowy solar spry stellar "
    "sunny swift tidy vivid warm wild wise witty young zesty"
).split()
_NOUNS = (
    "aurora badger bay breeze brook canyon cedar cloud comet coral crane dawn delta dune "
    "eagle ember falcon fern field fjord flame forest galaxy glade grove harbor hawk heron "
    "hill island lake lark leaf meadow mesa moon mountain nebula oak ocean orbit otter "
    "owl pine planet pond prairie quasar rain reef river sea shadow sky snow spark star "
    "stone storm sun thunder tide valley wave willow wind"
).split()


def new_run_id(now: float | None = None) -> str:
    """Returns a new run id: UTC start time plus 8 random base-36 characters (about 41 bits).

    Ids sort by start time and need no coordination between processes or machines
    (no "list the folder and take max + 1" race).

    Example:
        >>> len(new_run_id(0.0)), new_run_id(0.0)[:15]
        (24, '19700101-000000')
    """
    stamp = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    suffix = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{stamp:%Y%m%d-%H%M%S}-{suffix}"


def new_run_name() -> str:
    """Returns a readable random name such as ``"swift-otter-42"``."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(100)}"


def validate_path_name(arg: str, value: Any) -> str:
    """Checks that ``value`` can be a single folder name inside ``save_dir``.

    Raises:
        InvalidArgumentError: ``value`` is empty, too long, contains ``/``, ``..``,
            control characters or starts with a dot.

    Example:
        >>> validate_path_name("name", "mnist")
        'mnist'
        >>> validate_path_name("name", "../etc")
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: name='../etc' ...
    """
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _NAME_RE.match(text):
        raise InvalidArgumentError(
            f"{arg}={value!r} cannot be used as a folder name inside save_dir; use 1 to 128 "
            "letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(for example 'mnist-baseline')."
        )
    return text


def chunk_name(session: int, first: int, last: int) -> str:
    """File name of a metrics chunk holding flush sequence numbers ``first..last``.

    Example:
        >>> chunk_name(0, 3, 3)
        '000-00000003-00000003.parquet'
    """
    return f"{session:03d}-{first:08d}-{last:08d}.parquet"


def parse_chunk_name(name: str) -> tuple[int, int, int] | None:
    """Returns ``(session, first, last)`` of a chunk file name, or None for other files."""
    match = _CHUNK_RE.match(name)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3])


def live_chunks(names: list[str]) -> list[str]:
    """Drops chunks that a compacted chunk of the same session covers, in read order.

    A compacted chunk is written before the chunks it replaces are deleted, so a
    listing taken at any moment, filtered by this function, holds every point once.

    Example:
        >>> live_chunks([chunk_name(0, 1, 1), chunk_name(0, 0, 1), chunk_name(0, 2, 2)])
        ['000-00000000-00000001.parquet', '000-00000002-00000002.parquet']
    """
    parsed = sorted((p, n) for n in names if (p := parse_chunk_name(n)) is not None)
    keep: list[str] = []
    covers: list[tuple[int, int, int]] = []
    # widest ranges first, so a chunk is kept only if nothing wider covers it
    for (session, first, last), name in sorted(parsed, key=lambda x: (x[0][0], x[0][1], -x[0][2])):
        if any(s == session and f <= first and last <= l for s, f, l in covers):
            continue
        covers.append((session, first, last))
        keep.append(name)
    return sorted(keep, key=lambda n: parse_chunk_name(n))  # type: ignore[arg-type, return-value]


# -- JSON ---------------------------------------------------------------------------
def _encode_floats(obj: Any) -> Any:
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, dict):
        return {k: _encode_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_encode_floats(v) for v in obj]
    return obj


def dumps(obj: Any) -> bytes:
    """Serializes a document as strict JSON (NaN and ±inf become strings)."""
    return json.dumps(_encode_floats(obj), indent=1, ensure_ascii=False, allow_nan=False).encode()


def loads(data: bytes | str) -> Any:
    """Parses a document written by :func:`dumps`."""
    return json.loads(data)


# -- status ---------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_state(run: dict[str, Any], now: float | None = None) -> str:
    """The status a reader should show for a ``run.json`` document.

    ``running`` turns into ``crashed`` when the writing process is gone (same host) or its
    heartbeat is older than three heartbeat intervals plus ten seconds.

    Example:
        >>> run_state({"status": "finished"})
        'finished'
        >>> run_state({"status": "running", "heartbeat": 0.0, "heartbeat_interval_s": 2.0}, now=100.0)
        'crashed'
    """
    status = run.get("status", "running")
    if status != "running":
        return status
    now = time.time() if now is None else now
    beat = float(run.get("heartbeat") or run.get("start_time") or 0.0)
    interval = float(run.get("heartbeat_interval_s") or 10.0)
    if now - beat > 3 * interval + 10.0:
        return "crashed"
    writer = run.get("writer") or {}
    if writer.get("host") == socket.gethostname() and writer.get("pid") and writer.get("boot") == _boot_id():
        if not _pid_alive(int(writer["pid"])):
            return "crashed"
    return "running"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def writer_identity() -> dict[str, Any]:
    """Who writes the run now: host, pid and boot id (for crash detection)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot": _boot_id()}
