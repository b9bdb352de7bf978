"""What a reader checks before it trusts a file of a store: documents and chunks.

A store may hold files no writer of this format wrote whole: a ``run.json`` edited by
hand or by another tool, a chunk cut short by a full disk on a filesystem without atomic
rename, or files planted on purpose. Readers take every document through
:func:`check_run`, :func:`check_document` or :func:`check_manifest` and every chunk
through :func:`decode_chunk`
before using them: what does not fit the format is returned as a list of problems (or
raised, for a chunk), so one damaged run reads as damaged while every other run of the
store reads normally. The shapes checked here are those
:mod:`~lightning_tracker.format.documents` builds and ``docs/format.md`` describes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.documents import VERSIONS
from lightning_tracker.format.layout import CONFIG_FILE, META_FILE, RUN_FILE
from lightning_tracker.format.schemas import HISTOGRAMS, METRICS
from lightning_tracker.format.summary import SUMMARY_FIELDS

__all__ = [
    "DOCUMENT_FIELDS",
    "RUN_FIELDS",
    "STATUSES",
    "check_document",
    "check_manifest",
    "check_run",
    "conform",
    "decode_chunk",
]

STATUSES = ("running", "finished", "failed")  # written to run.json; "crashed" is derived


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _stored_number(v: Any) -> bool:  # a number field as the codec writes it: NaN and ±inf are strings
    return v is None or _number(v) or v in ("NaN", "Infinity", "-Infinity")


def _object(v: Any) -> bool:
    return isinstance(v, dict)


def _file_name(v: Any) -> bool:  # one name inside models/: never a path that leads elsewhere
    return isinstance(v, str) and v not in ("", ".", "..") and not any(c in v for c in "/\\\0")


def _time(v: Any) -> bool:  # Unix seconds that dates (datetime, pandas) can hold
    return _number(v) and 0 <= v < 9.2e9


def _count(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool))


def _writer(v: Any) -> bool:
    if v is None:
        return True
    texts = _object(v) and isinstance(v.get("host", ""), str) and isinstance(v.get("boot", ""), str)
    return texts and _count(v.get("pid"))


def _monitor(v: Any) -> bool:  # null, or the metric the first ModelCheckpoint monitors
    if v is None:
        return True
    return _object(v) and isinstance(v.get("name"), str) and isinstance(v.get("mode", ""), (str, type(None)))


# a field's kind: what it must be (for the message) and the test
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "version": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "text": ("a string", lambda v: isinstance(v, str)),
    "text?": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "texts": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "status": (" or ".join(map(repr, STATUSES)), lambda v: v in STATUSES),
    "time": ("a number of Unix seconds from 1970 to 2261", _time),
    "time?": ("a number of Unix seconds from 1970 to 2261, or null", lambda v: v is None or _time(v)),
    "seconds?": ("a positive number or null", lambda v: v is None or (_number(v) and 0 < v < math.inf)),
    "objects": ("a list of objects", lambda v: isinstance(v, list) and all(_object(x) for x in v)),
    "object": ("an object", _object),
    "object?": ("an object or null", lambda v: v is None or _object(v)),
    "count?": ("a whole number or null", _count),
    "writer": ("null or an object of host (text), pid (whole number) and boot (text)", _writer),
    "monitor": ("null or an object of name (text) and mode (text or null)", _monitor),
}

# every field new_run writes, with its kind (a test checks the two agree)
RUN_FIELDS: dict[str, str] = {
    "format_version": "version", "id": "text", "project": "text", "name": "text",
    "group": "text?", "notes": "text?", "tags": "texts",
    "status": "status", "start_time": "time", "end_time": "time?",
    "heartbeat": "time?", "heartbeat_interval_s": "seconds?",
    "sessions": "objects", "writer": "writer", "url": "text",
    "params": "object", "summary": "object", "monitor": "monitor",
}  # fmt: skip
# the fields of config.json and meta.json that readers use
DOCUMENT_FIELDS: dict[str, dict[str, str]] = {
    RUN_FILE: RUN_FIELDS,
    CONFIG_FILE: {"format_version": "version", "nested": "object", "flat": "object", "history": "objects"},
    META_FILE: {
        "format_version": "version", "host": "text", "cwd": "text", "user": "text?", "pid": "count?",
        "command": "texts", "versions": "object", "git": "object?", "gpus": "objects", "env": "object",
    },
}  # fmt: skip
_REQUIRED = {RUN_FILE: ("format_version", "status")}  # without these a document is not a run.json
# what a reader uses in place of a field that is wrong (a missing optional field reads alike)
_EMPTY: dict[str, Any] = {
    "tags": [],
    "sessions": [],
    "params": {},
    "summary": {},
    "nested": {},
    "flat": {},
    "history": [],
    "command": [],
    "versions": {},
    "gpus": [],
    "env": {},
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_document(name: str, doc: Any) -> tuple[dict[str, Any], list[str]]:
    """Checks a ``config.json`` or ``meta.json`` (or ``run.json``, see :func:`check_run`) document.

    Returns:
        The document with every field of the wrong type replaced by its empty value (null,
        ``[]`` or ``{}``), and the problems found. Fields this reader does not know are
        kept as they are.

    Example:
        >>> check_document("config.json", {"nested": 5, "flat": {"lr": 0.1}})
        ({'nested': {}, 'flat': {'lr': 0.1}}, ["field 'nested' is 5; expected an object"])
    """
    if not isinstance(doc, dict):
        return {}, [f"{name} holds {_a(doc)}, not an object"]
    clean = dict(doc)
    problems = [f"field {key!r} is missing" for key in _REQUIRED.get(name, ()) if key not in doc]
    for key, kind in DOCUMENT_FIELDS[name].items():
        expected, fits = _KINDS[kind]
        if key in doc and not fits(doc[key]):
            problems.append(f"field {key!r} is {_shown(doc[key])}; expected {expected}")
            clean[key] = _EMPTY.get(key)
    version = clean.get("format_version")
    if isinstance(version, int) and version > VERSIONS[name]:
        problems.append(
            f"format_version {version} is newer than this reader's {VERSIONS[name]}; upgrade "
            "lightning-tracker to read it"
        )
    return clean, problems


def check_run(doc: Any) -> tuple[dict[str, Any], list[str]]:
    """Checks a ``run.json`` document; returns it with every wrong field emptied, and the problems.

    A field of the wrong type reads as its empty value (null, ``[]`` or ``{}``) and a
    summary entry that is not an object of numbers is left out, so the rest of the run
    still reads. Fields this reader does not know are kept and not checked.

    Example:
        >>> from lightning_tracker.format.documents import new_run
        >>> good = new_run("r1", "p", "one", group=None, tags=["a"], notes=None, heartbeat_interval_s=2.0, url="/x")
        >>> check_run(good)[1]
        []
        >>> clean, problems = check_run({**good, "heartbeat": "x", "summary": {"loss": [], "acc": {"last": 0.5}}})
        >>> clean["heartbeat"], clean["summary"]
        (None, {'acc': {'last': 0.5}})
        >>> for problem in problems:
        ...     print(problem)
        field 'heartbeat' is 'x'; expected a number of Unix seconds from 1970 to 2261, or null
        summary of 'loss' is []; expected an object of numbers
        >>> check_run([])
        ({}, ['run.json holds a list, not an object'])
    """
    clean, problems = check_document(RUN_FILE, doc)
    summary = {}
    for key, entry in clean.get("summary", {}).items():
        if _object(entry) and all(_stored_number(entry[f]) for f in SUMMARY_FIELDS if f in entry):
            summary[key] = entry
        else:
            problems.append(f"summary of {key!r} is {_shown(entry)}; expected an object of numbers")
    if "summary" in clean:
        clean["summary"] = summary
    return clean, problems


def _a(value: Any) -> str:
    kind = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value))
    return kind or ("a number" if _number(value) else type(value).__name__)


def check_manifest(doc: Any) -> list[str]:
    """The problems of a checkpoint manifest (``models.json``); empty when a reader can use it.

    Example:
        >>> from lightning_tracker.format.documents import new_manifest
        >>> check_manifest(new_manifest())
        []
        >>> print(*check_manifest({"checkpoints": [{"name": 1}], "aliases": {}}))
        checkpoint 0 has name=1, size=None, sha256=None, seq=None; expected a file name, a sha256, a size and a seq
    """
    if not isinstance(doc, dict):
        return [f"models.json holds {_a(doc)}, not an object"]
    checkpoints, aliases = doc.get("checkpoints"), doc.get("aliases")
    problems = []
    if not isinstance(checkpoints, list):
        problems.append(f"field 'checkpoints' is {_shown(checkpoints)}; expected a list of objects")
        checkpoints = []
    if not (isinstance(aliases, dict) and all(isinstance(v, str) for v in aliases.values())):
        problems.append(f"field 'aliases' is {_shown(aliases)}; expected an object of names")
    for i, entry in enumerate(checkpoints):
        fields = entry if _object(entry) else {}
        if not (
            _file_name(fields.get("name"))
            and isinstance(fields.get("sha256"), str)
            and _number(fields.get("size"))
            and _number(fields.get("seq"))
            and _KINDS["texts"][1](fields.get("aliases", []))
        ):
            shown = ", ".join(f"{f}={_shown(fields.get(f))}" for f in ("name", "size", "sha256", "seq"))
            problems.append(f"checkpoint {i} has {shown}; expected a file name, a sha256, a size and a seq")
    return problems


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly the columns of ``schema``: cast, and null where a chunk lacks one.

    Example:
        >>> t = conform(pa.table({"step": [1], "key": ["a"], "value": [2.0]}), METRICS)
        >>> t.column_names, t.column("time").to_pylist(), t.schema.field("key").type
        (['step', 'time', 'key', 'value'], [None], DictionaryType(dictionary<values=string, indices=int32, ordered=0>))
    """
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


# the columns without which a row means nothing; any other column may be missing (null)
_REQUIRED_COLUMNS = {METRICS: ("step", "key"), HISTOGRAMS: ("step", "tensor", "kind", "edges", "counts")}


def decode_chunk(data: bytes, schema: pa.Schema) -> pa.Table:
    """A chunk file's bytes as a table of ``schema`` (see :func:`conform`).

    Raises:
        StorageError: the bytes are not a Parquet file (truncated, overwritten), a column
            cannot be cast to the schema, or a row lacks a column it cannot do without.

    Example:
        >>> buf = io.BytesIO()
        >>> pq.write_table(pa.table({"step": [0], "key": ["loss"], "value": [1.0]}), buf)
        >>> decode_chunk(buf.getvalue(), METRICS).num_rows
        1
        >>> decode_chunk(buf.getvalue()[:40], METRICS)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.StorageError: not a readable Parquet file (...)
    """
    try:
        table = conform(pq.read_table(io.BytesIO(data)), schema)
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as err:  # any parse failure
        raise StorageError(f"not a readable Parquet file ({type(err).__name__}: {err})") from None
    for name in _REQUIRED_COLUMNS.get(schema, ()):
        if table.column(name).null_count:
            raise StorageError(f"{table.column(name).null_count} of {table.num_rows} rows have no {name!r}")
    return table
