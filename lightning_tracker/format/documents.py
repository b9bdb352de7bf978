"""The JSON documents of a run, each with its own ``format_version``, and the status rule.

A document is a plain dict written with :func:`lightning_tracker.format.codec.dumps`.
The constructors here are the only place each shape is spelled out, for the documents of
the store and for the local ones (``spool.json``, ``.mirror.json``, the checkpoint staging
files); ``docs/format.md`` lists the same fields and
:mod:`~lightning_tracker.format.validate` checks them and turns what is read into typed
objects. Readers ignore fields they do not know; a change that breaks
existing readers increments that document's version in :data:`VERSIONS`. A new optional
field (null or absent when unknown, such as ``run.json``'s ``monitor``) breaks no reader
and keeps the version: an older reader ignores it, a newer one reads its absence as null.
"""

from __future__ import annotations

import json
import os
import socket
import time
from itertools import islice
from typing import Any

from lightning_tracker.format.codec import dumps, loads
from lightning_tracker.format.layout import (
    ALERTS_FILE,
    CONFIG_FILE,
    META_FILE,
    MIRROR_FILE,
    MODELS_FILE,
    RUN_FILE,
    SPOOL_FILE,
    STAGING_DIR,
    STAGING_STATE_FILE,
)
from lightning_tracker.format.status import CRASHED, RUNNING

__all__ = [
    "ELLIPSIS",
    "LIVE_FIELDS",
    "fixed_fields",
    "PARAM_MAX_CHARS",
    "STAGED_CHECKPOINT",
    "STAGING_STATE",
    "VERSIONS",
    "manifest_entry",
    "manifest_without",
    "new_alerts",
    "new_config",
    "new_manifest",
    "new_meta",
    "new_mirror_state",
    "new_run",
    "heartbeat_refresh_s",
    "stale_after_s",
    "new_spool",
    "new_staged_checkpoint",
    "new_staging_state",
    "resolve_aliases",
    "run_params",
    "run_state",
    "writer_identity",
]

# the checkpoint staging files (local only): a sidecar per snapshot, and what only this machine knows
STAGED_CHECKPOINT = f"{STAGING_DIR}/<n>.json"  # <n>: layout.staged_names
STAGING_STATE = f"{STAGING_DIR}/{STAGING_STATE_FILE}"

VERSIONS = {
    RUN_FILE: 3,  # 3: one summary algorithm live and final (adds high_step); per-document versions
    CONFIG_FILE: 1,
    META_FILE: 1,
    MODELS_FILE: 1,
    SPOOL_FILE: 1,
    MIRROR_FILE: 1,
    STAGED_CHECKPOINT: 1,
    STAGING_STATE: 1,
    ALERTS_FILE: 1,
}
RESERVED_ALIASES = ("best", "latest")  # maintained by the writer, with "best:<monitor>"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def writer_identity() -> dict[str, Any]:
    """Who writes the run now: host, pid and boot id (for crash detection)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot": _boot_id()}


# -- run.json -----------------------------------------------------------------------------
def new_run(
    run_id: str,
    project: str,
    name: str,
    *,
    group: str | None,
    tags: list[str],
    notes: str | None,
    heartbeat_interval_s: float,
    url: str,
) -> dict[str, Any]:
    """A new ``run.json``: status ``running``, no sessions yet, empty params and summary, no monitor.

    ``monitor`` becomes ``{"name": <metric>, "mode": "min" | "max"}`` when the first
    ``ModelCheckpoint`` that monitors a metric saves (``RunInfo.record_monitor``).

    Example:
        >>> doc = new_run("r1", "p", "first", group=None, tags=[], notes=None, heartbeat_interval_s=2.0, url="/x")
        >>> doc["format_version"], doc["status"], doc["summary"]
        (3, 'running', {})
    """
    return {
        "format_version": VERSIONS[RUN_FILE],
        "id": run_id,
        "name": name,
        "project": project,
        "group": group,
        "tags": list(tags),
        "notes": notes,
        "status": RUNNING,
        "start_time": time.time(),
        "end_time": None,
        "heartbeat": None,
        "heartbeat_interval_s": heartbeat_interval_s,
        "sessions": [],
        "writer": writer_identity(),
        "url": url,
        "params": {},
        "summary": {},
        "monitor": None,
    }


PARAM_MAX_CHARS = 256  # a value in run.json's params; config.json keeps the whole value
ELLIPSIS = "\u2026"


def run_params(flat: dict[str, Any]) -> dict[str, Any]:
    """``run.json``'s ``params``: the flat hyperparameters, each value capped for a runs table.

    A string longer than :data:`PARAM_MAX_CHARS` characters is cut to its first 255 and
    ``…`` (U+2026); a list or object whose JSON text (``json.dumps``, non-finite numbers
    as the strings the codec writes) is longer becomes that text, cut the same way.
    ``run.json`` is rewritten at every flush; ``config.json`` keeps every value whole.

    Example:
        >>> p = run_params({"lr": 0.1, "prompt": "x" * 1000, "layers": list(range(500))})
        >>> p["lr"], len(p["prompt"]), p["prompt"][-2:], p["layers"][:12]
        (0.1, 256, 'x…', '[0, 1, 2, 3,')
    """
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, (list, dict)):
            # the first PARAM_MAX_CHARS items already give more text than is kept
            head = value[:PARAM_MAX_CHARS] if isinstance(value, list) else dict(islice(value.items(), PARAM_MAX_CHARS))
            text = json.dumps(loads(dumps(head)), ensure_ascii=False)  # NaN as the documents write it
            if len(head) < len(value) or len(text) > PARAM_MAX_CHARS:
                value = text
        if isinstance(value, str) and len(value) > PARAM_MAX_CHARS:
            value = value[: PARAM_MAX_CHARS - 1] + ELLIPSIS
        out[key] = value
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


LIVE_FIELDS = ("heartbeat", "summary")  # the fields of run.json that change at every flush of a live run


def fixed_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """``run.json`` without what changes at every flush of a live run: :data:`LIVE_FIELDS`
    and each session's own ``heartbeat``. Two documents with equal fixed fields differ only
    in liveness, which :func:`heartbeat_refresh_s` paces.

    Example:
        >>> a = {"status": "running", "heartbeat": 1.0, "sessions": [{"pid": 7, "heartbeat": 1.0}]}
        >>> b = {"status": "running", "heartbeat": 3.0, "sessions": [{"pid": 7, "heartbeat": 3.0}]}
        >>> fixed_fields(a) == fixed_fields(b), fixed_fields(a)["sessions"]
        (True, [{'pid': 7}])
    """
    fixed = {k: v for k, v in doc.items() if k not in LIVE_FIELDS}
    sessions = fixed.get("sessions")
    if isinstance(sessions, list):
        fixed["sessions"] = [
            {k: v for k, v in s.items() if k != "heartbeat"} if isinstance(s, dict) else s for s in sessions
        ]
    return fixed


def stale_after_s(interval: Any) -> float:
    """How old a running run's heartbeat may be before readers show it ``crashed``: three
    heartbeat intervals plus ten seconds (interval missing or not a number: 10 s).

    Example:
        >>> stale_after_s(2.0), stale_after_s(None)
        (16.0, 40.0)
    """
    seconds = float(interval) if isinstance(interval, (int, float)) and not isinstance(interval, bool) else 10.0
    return 3 * seconds + 10.0


def heartbeat_refresh_s(interval: Any) -> float:
    """How often a store's copy of a live ``run.json`` is refreshed at least when only its
    :data:`LIVE_FIELDS` changed: one interval plus five seconds.

    The mirror checks after each flush, so a stored heartbeat is at most about two intervals
    plus five seconds old, which leaves one interval plus five seconds of the reader's
    :func:`stale_after_s` for the upload itself.

    Example:
        >>> heartbeat_refresh_s(2.0), heartbeat_refresh_s(2.0) + 2.0 < stale_after_s(2.0)
        (7.0, True)
    """
    seconds = float(interval) if isinstance(interval, (int, float)) and not isinstance(interval, bool) else 10.0
    return seconds + 5.0


def run_state(run: dict[str, Any], now: float | None = None) -> str:
    """The status a reader shows for a ``run.json`` document.

    ``running`` turns into ``crashed`` when the writing process is gone (same host) or its
    heartbeat is older than three heartbeat intervals plus ten seconds.

    Example:
        >>> run_state({"status": "finished"})
        'finished'
        >>> run_state({"status": "running", "heartbeat": 0.0, "heartbeat_interval_s": 2.0}, now=100.0)
        'crashed'
    """
    status = run.get("status", RUNNING)
    if status != RUNNING:
        return str(status)
    now = time.time() if now is None else now
    beat = float(run.get("heartbeat") or run.get("start_time") or 0.0)
    if now - beat > stale_after_s(float(run.get("heartbeat_interval_s") or 10.0)):
        return CRASHED
    writer = run.get("writer") or {}
    if writer.get("host") == socket.gethostname() and writer.get("pid") and writer.get("boot") == _boot_id():
        if not _pid_alive(int(writer["pid"])):
            return CRASHED
    return RUNNING


# -- config.json ------------------------------------------------------------------------
def new_config() -> dict[str, Any]:
    """An empty ``config.json``: nested and flat hyperparameters and their change history."""
    return {"format_version": VERSIONS[CONFIG_FILE], "nested": {}, "flat": {}, "history": []}


# -- alerts.json ------------------------------------------------------------------------
def new_alerts(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """``alerts.json``: the run's alerts, oldest first (``time``, ``level``, ``title``, ``text``, ``event``, ``step``).

    Example:
        >>> new_alerts([])
        {'format_version': 1, 'alerts': []}
    """
    return {"format_version": VERSIONS[ALERTS_FILE], "alerts": alerts}


# -- meta.json --------------------------------------------------------------------------
def new_meta(environment: dict[str, Any]) -> dict[str, Any]:
    """``meta.json``: the environment of the first session (``writers.environment.collect``).

    Example:
        >>> new_meta({"host": "h", "cwd": "/w"})
        {'format_version': 1, 'host': 'h', 'cwd': '/w'}
    """
    return {"format_version": VERSIONS[META_FILE], **environment}


# -- models.json ------------------------------------------------------------------------
def new_manifest() -> dict[str, Any]:
    """An empty checkpoint manifest ``models.json``."""
    return {"format_version": VERSIONS[MODELS_FILE], "next_seq": 0, "checkpoints": [], "aliases": {}}


def manifest_entry(
    name: str,
    file: str,
    seq: int,
    *,
    step: int | None,
    epoch: int | None,
    monitor: str | None,
    mode: str | None,
    score: float | None,
    size: int,
    sha256: str,
    saved_time: float | None,
) -> dict[str, Any]:
    """One stored checkpoint in ``models.json`` (its aliases are filled by :func:`resolve_aliases`).

    Example:
        >>> e = manifest_entry("last.ckpt", "last.ckpt", 0, step=10, epoch=0, monitor=None, mode=None,
        ...                    score=None, size=7, sha256="ab", saved_time=1.0)
        >>> e["state"], e["aliases"]
        ('stored', [])
    """
    return {
        "name": name,
        "file": file,
        "seq": seq,
        "step": step,
        "epoch": epoch,
        "monitor": monitor,
        "mode": mode,
        "score": score,
        "size": size,
        "sha256": sha256,
        "saved_time": saved_time,
        "stored_time": time.time(),
        "state": "stored",
        "aliases": [],
    }


def resolve_aliases(manifest: dict[str, Any], wanted: dict[str, str]) -> None:
    """Sets the manifest's aliases: ``wanted`` (alias → name) where that name is listed,
    earlier aliases whose checkpoint is still listed, and ``latest`` = the newest entry.

    Example:
        >>> m = new_manifest()
        >>> m["checkpoints"] = [{"name": "a", "seq": 0}, {"name": "b", "seq": 1}]
        >>> resolve_aliases(m, {"best": "a", "prod": "gone"})
        >>> m["aliases"], m["checkpoints"][0]["aliases"]
        ({'best': 'a', 'latest': 'b'}, ['best'])
    """
    names = {e["name"] for e in manifest["checkpoints"]}
    aliases = {a: n for a, n in manifest.get("aliases", {}).items() if n in names}
    aliases.update({a: n for a, n in wanted.items() if n in names})
    aliases.pop("latest", None)
    if manifest["checkpoints"]:
        aliases["latest"] = max(manifest["checkpoints"], key=lambda e: e["seq"])["name"]
    manifest["aliases"] = dict(sorted(aliases.items()))
    for entry in manifest["checkpoints"]:
        entry["aliases"] = sorted(a for a, n in aliases.items() if n == entry["name"])


def manifest_without(manifest: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The manifest as a store may show it while the objects ``names`` are not in it yet:
    without their entries, and without aliases that name them.

    Example:
        >>> m = new_manifest()
        >>> m["checkpoints"] = [{"name": "a", "seq": 0}, {"name": "b", "seq": 1}]
        >>> resolve_aliases(m, {"best": "b"})
        >>> partial = manifest_without(m, {"b"})
        >>> [e["name"] for e in partial["checkpoints"]], partial["aliases"]
        (['a'], {'latest': 'a'})
    """
    out = {**manifest, "checkpoints": [dict(e) for e in manifest["checkpoints"] if e["name"] not in names]}
    out["aliases"] = {a: n for a, n in manifest.get("aliases", {}).items() if n not in names}
    resolve_aliases(out, {})
    return out


# -- local documents: never uploaded ----------------------------------------------------
def new_spool(url: str, prefix: str, session: int, offline: bool) -> dict[str, Any]:
    """``spool.json``: where a spooled run is uploaded to (the store's URL, never its credentials).

    Example:
        >>> new_spool("s3://bucket/exp", "p/r1", 0, False)
        {'format_version': 1, 'url': 's3://bucket/exp', 'prefix': 'p/r1', 'session': 0, 'offline': False}
    """
    return {
        "format_version": VERSIONS[SPOOL_FILE],
        "url": url,
        "prefix": prefix,
        "session": session,
        "offline": offline,
    }


def new_mirror_state(published: dict[str, list[int]]) -> dict[str, Any]:
    """``.mirror.json``: each published file (relative path) with its size and mtime (ns) as published.

    Example:
        >>> new_mirror_state({"run.json": [120, 1700000000000000000]})["published"]
        {'run.json': [120, 1700000000000000000]}
    """
    return {"format_version": VERSIONS[MIRROR_FILE], "published": published}


def new_staged_checkpoint(
    seq: int,
    file: str,
    source: list[Any],
    *,
    copy: bool,
    monitor: str | None,
    mode: str | None,
    score: float | None,
    saved_time: float,
    step: int | None,
) -> dict[str, Any]:
    """A staging sidecar ``.checkpoints/<n>.json``: one snapshot of a save, not stored yet.

    Args:
        seq: the staging number ``<n>`` (the snapshot is ``<n>.ckpt`` beside it).
        file: the file name ``ModelCheckpoint`` gave it.
        source: ``[path, dev, ino, size, mtime_ns]`` of the file Lightning saved.
        copy: the flusher copies the source (a hard link was impossible).
        monitor: the callback's monitored metric, or None.
        mode: the callback's mode, or None.
        score: its top-k score, or None.
        saved_time: when it was staged, Unix seconds.
        step: the callback's last saved global step, or None.

    Example:
        >>> doc = new_staged_checkpoint(0, "last.ckpt", ["/c/last.ckpt", 1, 2, 3, 4], copy=False, monitor=None,
        ...                             mode=None, score=None, saved_time=1.0, step=7)
        >>> doc["format_version"], doc["time"], doc["step"]
        (1, 1.0, 7)
    """
    return {
        "format_version": VERSIONS[STAGED_CHECKPOINT],
        "seq": seq,
        "file": file,
        "source": list(source),
        "copy": copy,
        "monitor": monitor,
        "mode": mode,
        "score": score,
        "time": saved_time,
        "step": step,
    }


def new_staging_state(
    sources: dict[str, list[Any]], alias_seq: dict[str, int], keep_all: bool, stages: dict[int, str]
) -> dict[str, Any]:
    """``.checkpoints/state.json``: what only this machine knows of the stored checkpoints.

    Args:
        sources: stored name → ``[path, dev, ino, size, mtime_ns]`` of the file Lightning saved.
        alias_seq: alias → staging number of the save it names.
        keep_all: ``log_model="all"``.
        stages: staging number → stored name.

    Example:
        >>> new_staging_state({}, {"latest": 0}, False, {0: "last.ckpt"})["stages"]
        {'0': 'last.ckpt'}
    """
    return {
        "format_version": VERSIONS[STAGING_STATE],
        "sources": sources,
        "alias_seq": alias_seq,
        "keep_all": keep_all,
        "stages": {str(k): v for k, v in stages.items()},
    }
