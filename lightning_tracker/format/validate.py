"""What a reader or a writer checks before it trusts a file of a store or a spool: documents and chunks.

A store may hold files no writer of this format wrote whole: a ``run.json`` edited by
hand or by another tool, a chunk cut short by a full disk on a filesystem without atomic
rename, or files planted on purpose. Every document becomes a typed object at the edge,
through :func:`parse_document` (:func:`parse_run` for ``run.json``), the same way for the
readers, for the writer that resumes a run and for ``sync``: what does not fit the format
is returned as a list of problems, so one damaged run reads as damaged while every other
run of the store reads normally. Legacy forms that can be read without losing anything
(``tags`` written as one string) are cast here, in one place, and reported as repairs.
Every chunk goes through :func:`decode_chunk`, which raises. The shapes checked here are
those :mod:`~lightning_tracker.format.documents` builds and ``docs/format.md`` describes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.codec import loads
from lightning_tracker.format.documents import STAGED_CHECKPOINT, STAGING_STATE, VERSIONS
from lightning_tracker.format.layout import (
    ALERTS_FILE,
    CONFIG_FILE,
    META_FILE,
    MIRROR_FILE,
    MODELS_FILE,
    RUN_FILE,
    SPOOL_FILE,
)
from lightning_tracker.format.schemas import CHUNK_VERSION, HISTOGRAMS, METRICS, chunk_version
from lightning_tracker.format.status import STORED
from lightning_tracker.format.summary import SUMMARY_FIELDS

__all__ = [
    "DOCUMENT_FIELDS",
    "RUN_FIELDS",
    "Document",
    "RunDocument",
    "SpoolDocument",
    "check_document",
    "check_manifest",
    "check_run",
    "conform",
    "decode_chunk",
    "parse_document",
    "parse_run",
]


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


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _source(v: Any) -> bool:  # [path, dev, ino, size, mtime_ns] of the file Lightning saved
    return isinstance(v, list) and len(v) == 5 and isinstance(v[0], str) and all(_whole(x) for x in v[1:])


def _signature(v: Any) -> bool:  # [size, mtime_ns] of a file as published
    return isinstance(v, list) and len(v) == 2 and all(_whole(x) for x in v)


def _object_of(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: _object(v) and all(test(x) for x in v.values())


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
    "status": (" or ".join(map(repr, STORED)), lambda v: v in STORED),  # what a writer stores (format/status.py)
    "time": ("a number of Unix seconds from 1970 to 2261", _time),
    "time?": ("a number of Unix seconds from 1970 to 2261, or null", lambda v: v is None or _time(v)),
    "seconds?": ("a positive number or null", lambda v: v is None or (_number(v) and 0 < v < math.inf)),
    "objects": ("a list of objects", lambda v: isinstance(v, list) and all(_object(x) for x in v)),
    "object": ("an object", _object),
    "object?": ("an object or null", lambda v: v is None or _object(v)),
    "count?": ("a whole number or null", _count),
    "writer": ("null or an object of host (text), pid (whole number) and boot (text)", _writer),
    "monitor": ("null or an object of name (text) and mode (text or null)", _monitor),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "count": ("a whole number", _whole),
    "number?": ("a number or null", _stored_number),
    "file name": ("a file name (no '/', not '.' or '..')", _file_name),
    "source": ("a list [path, dev, ino, size, mtime_ns]", _source),
    "sources": ("an object of lists [path, dev, ino, size, mtime_ns]", _object_of(_source)),
    "signatures": ("an object of lists [size, mtime_ns]", _object_of(_signature)),
    "counts": ("an object of whole numbers", _object_of(_whole)),
    "names": ("an object of strings", _object_of(lambda x: isinstance(x, str))),
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
# the fields of the other documents that readers and writers use (models.json: check_manifest)
DOCUMENT_FIELDS: dict[str, dict[str, str]] = {
    RUN_FILE: RUN_FIELDS,
    CONFIG_FILE: {"format_version": "version", "nested": "object", "flat": "object", "history": "objects"},
    ALERTS_FILE: {"format_version": "version", "alerts": "objects"},
    META_FILE: {
        "format_version": "version", "host": "text", "cwd": "text", "user": "text?", "pid": "count?",
        "command": "texts", "versions": "object", "git": "object?", "gpus": "objects", "env": "object",
    },
    SPOOL_FILE: {"format_version": "version", "url": "text", "prefix": "text", "session": "count?", "offline": "bool"},
    MIRROR_FILE: {"format_version": "version", "published": "signatures"},
    STAGED_CHECKPOINT: {
        "format_version": "version", "seq": "count", "file": "file name", "source": "source", "copy": "bool",
        "monitor": "text?", "mode": "text?", "score": "number?", "time": "time?", "step": "count?",
    },
    STAGING_STATE: {
        "format_version": "version", "sources": "sources", "alias_seq": "counts", "keep_all": "bool", "stages": "names",
    },
}  # fmt: skip
# without these a document is not one of its kind (a local document without its version is an older one: 1)
_REQUIRED = {
    RUN_FILE: ("format_version", "status"),
    SPOOL_FILE: ("url", "prefix"),
    MIRROR_FILE: ("published",),
    STAGED_CHECKPOINT: ("file", "source"),
}
# legacy forms read without losing anything, cast in this one place: field -> (it applies, the cast)
_LEGACY: dict[str, dict[str, tuple[Callable[[Any], bool], Callable[[Any], Any]]]] = {
    RUN_FILE: {"tags": (lambda v: isinstance(v, str), lambda v: [v])},  # one tag, never its letters
}
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
    "published": {},
    "sources": {},
    "alias_seq": {},
    "stages": {},
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(name: str, doc: Any) -> tuple[dict[str, Any], list[str], list[str]]:
    """The document cleaned, its problems, and the legacy casts applied to it."""
    if not isinstance(doc, dict):
        return {}, [f"{name} holds {_a(doc)}, not an object"], []
    clean = dict(doc)
    repairs = []
    for key, (applies, cast) in _LEGACY.get(name, {}).items():
        if key in clean and applies(clean[key]):
            clean[key] = cast(clean[key])
            repairs.append(f"field {key!r} is {_shown(doc[key])}; read as {_shown(clean[key])}")
    problems = [f"field {key!r} is missing" for key in _REQUIRED.get(name, ()) if key not in doc]
    for key, kind in DOCUMENT_FIELDS[name].items():
        expected, fits = _KINDS[kind]
        if key in clean and not fits(clean[key]):
            problems.append(f"field {key!r} is {_shown(clean[key])}; expected {expected}")
            clean[key] = _EMPTY.get(key)
    version = clean.get("format_version")
    if isinstance(version, int) and version > VERSIONS[name]:
        problems.append(
            f"format_version {version} is newer than this reader's {VERSIONS[name]}; upgrade "
            "lightning-tracker to read it"
        )
    return clean, problems, repairs


def check_document(name: str, doc: Any) -> tuple[dict[str, Any], list[str]]:
    """Checks a document other than ``models.json`` (``run.json``: see :func:`check_run`).

    Returns:
        The document with every field of the wrong type replaced by its empty value (null,
        ``[]`` or ``{}``) and legacy forms cast (:func:`parse_document` also names those),
        and the problems found. Fields this reader does not know are kept as they are.

    Example:
        >>> check_document("config.json", {"nested": 5, "flat": {"lr": 0.1}})
        ({'nested': {}, 'flat': {'lr': 0.1}}, ["field 'nested' is 5; expected an object"])
    """
    clean, problems, _ = _check(name, doc)
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
    clean, problems, _ = _check(RUN_FILE, doc)
    return clean, problems + _check_summary(clean)


def _check_summary(clean: dict[str, Any]) -> list[str]:
    """Leaves out of ``clean``'s summary each entry that is not an object of numbers; returns the problems."""
    problems = []
    summary = {}
    for key, entry in clean.get("summary", {}).items():
        if _object(entry) and all(_stored_number(entry[f]) for f in SUMMARY_FIELDS if f in entry):
            summary[key] = entry
        else:
            problems.append(f"summary of {key!r} is {_shown(entry)}; expected an object of numbers")
    if "summary" in clean:
        clean["summary"] = summary
    return problems


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


@dataclass(frozen=True)
class Document:
    """A JSON document of a run as read, checked: what readers, the resuming writer and ``sync`` use.

    Attributes:
        file: which document (``run.json``, ``spool.json``, ...; a key of
            :data:`~lightning_tracker.format.documents.VERSIONS`).
        doc: its fields, each of the wrong type emptied (null, ``[]`` or ``{}``), legacy
            forms cast; fields this version does not know are kept.
        problems: what does not fit the format (a field emptied, not JSON, a newer
            version); empty for a sound document.
        repairs: the legacy forms cast without loss (``tags`` given as one string).
    """

    file: str
    doc: dict[str, Any]
    problems: tuple[str, ...] = ()
    repairs: tuple[str, ...] = ()

    @property
    def damaged(self) -> bool:
        """Whether a field was emptied (or nothing could be read): using ``doc`` as is loses that."""
        return bool(self.problems)

    @property
    def version(self) -> int:
        """The document's ``format_version`` (1 for a local document written before it had one)."""
        version = self.doc.get("format_version")
        return version if isinstance(version, int) else 1


@dataclass(frozen=True)
class RunDocument(Document):
    """A checked ``run.json``: the typed fields the writer and the readers use (``doc`` holds every field)."""

    @property
    def name(self) -> str | None:
        """The readable name (None when missing or damaged)."""
        return self.doc.get("name")

    @property
    def group(self) -> str | None:
        """The group."""
        return self.doc.get("group")

    @property
    def notes(self) -> str | None:
        """The notes."""
        return self.doc.get("notes")

    @property
    def tags(self) -> list[str]:
        """The tags (a legacy single string is one tag)."""
        return list(self.doc.get("tags") or [])

    @property
    def start_time(self) -> float | None:
        """Start of the first session, Unix seconds."""
        return self.doc.get("start_time")

    @property
    def heartbeat(self) -> float | None:
        """Time of the last write, Unix seconds."""
        return self.doc.get("heartbeat")

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """One object per session."""
        return list(self.doc.get("sessions") or [])

    @property
    def writer(self) -> dict[str, Any] | None:
        """``host``, ``pid`` and ``boot`` of the process that wrote it last."""
        return self.doc.get("writer")

    @property
    def monitor(self) -> dict[str, Any] | None:
        """The metric the first monitoring ``ModelCheckpoint`` watches, or None."""
        return self.doc.get("monitor")


@dataclass(frozen=True)
class SpoolDocument(Document):
    """A checked ``spool.json``: where a spooled run is uploaded to."""

    @property
    def url(self) -> str:
        """The store's URL, without credentials."""
        return str(self.doc.get("url") or "")

    @property
    def prefix(self) -> str:
        """The run's path in the store, ``<project>/<run_id>``."""
        return str(self.doc.get("prefix") or "")

    @property
    def offline(self) -> bool:
        """Whether the run was written with ``offline=True``."""
        return bool(self.doc.get("offline"))


_TYPES: dict[str, type[Document]] = {RUN_FILE: RunDocument, SPOOL_FILE: SpoolDocument}


def parse_document(file: str, data: bytes | Any) -> Document:
    """Turns a document as read (its bytes, or its decoded JSON) into a checked, typed object.

    The one entry for every JSON document of the format: ``run.json`` (a
    :class:`RunDocument`, also checked by :func:`check_run`), ``spool.json`` (a
    :class:`SpoolDocument`), ``config.json``, ``meta.json``, ``models.json`` (checked by
    :func:`check_manifest`), ``.mirror.json`` and the checkpoint staging files.

    Args:
        file: which document (a key of :data:`~lightning_tracker.format.documents.VERSIONS`).
        data: the file's bytes, or the JSON value decoded from them.

    Example:
        >>> run = parse_document("run.json", b'{"format_version": 3, "status": "running", "tags": "baseline"}')
        >>> run.tags, run.damaged, run.repairs
        (['baseline'], False, ("field 'tags' is 'baseline'; read as ['baseline']",))
        >>> parse_document("spool.json", b"{").problems  # doctest: +ELLIPSIS
        ('not JSON (...)',)
        >>> parse_document("spool.json", {"url": "s3://b/x", "prefix": "p/r", "offline": "no"}).problems
        ("field 'offline' is 'no'; expected true or false",)
    """
    kind = _TYPES.get(file, Document)
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = loads(bytes(data))
        except ValueError as err:  # not JSON, or not UTF-8
            return kind(file, {}, (f"not JSON ({err})",))
        except RecursionError:  # nested deeper than Python's recursion limit
            return kind(file, {}, ("not JSON this reader can read (nested too deep)",))
    if file == MODELS_FILE:
        problems = check_manifest(data)
        doc = data if isinstance(data, dict) and not problems else {}
        version = doc.get("format_version")
        if isinstance(version, int) and version > VERSIONS[MODELS_FILE]:
            problems.append(
                f"format_version {version} is newer than this reader's {VERSIONS[MODELS_FILE]}; upgrade "
                "lightning-tracker to read it"
            )
        return kind(file, doc, tuple(problems))
    clean, problems, repairs = _check(file, data)
    if file == RUN_FILE:
        problems += _check_summary(clean)
    return kind(file, clean, tuple(problems), tuple(repairs))


def parse_run(data: bytes | Any) -> RunDocument:
    """A ``run.json`` as read (bytes or decoded JSON), checked: :func:`parse_document` for ``run.json``.

    Example:
        >>> from lightning_tracker.format.documents import new_run
        >>> run = parse_run(new_run("r1", "p", "one", group=None, tags=["a"], notes=None, heartbeat_interval_s=2.0,
        ...                         url="/x"))
        >>> run.name, run.tags, run.damaged
        ('one', ['a'], False)
        >>> parse_run({**run.doc, "start_time": "yesterday"}).problems
        ("field 'start_time' is 'yesterday'; expected a number of Unix seconds from 1970 to 2261",)
    """
    parsed = parse_document(RUN_FILE, data)
    assert isinstance(parsed, RunDocument)
    return parsed


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly the columns of ``schema``: cast, and null where a chunk lacks one.

    Example:
        >>> t = conform(pa.table({"step": [1], "key": ["a"], "value": [2.0]}), METRICS)
        >>> t.column_names, t.column("time").to_pylist(), t.schema.field("key").type
        (['step', 'time', 'key', 'value'], [None], DictionaryType(dictionary<values=string, indices=int32, ordered=0>))
    """
    names = set(table.column_names)
    columns = [
        _cast(table.column(f.name), f.type) if f.name in names else pa.nulls(table.num_rows, f.type) for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _cast(column: pa.ChunkedArray, to: pa.DataType) -> pa.ChunkedArray:
    return column if column.type == to else column.cast(to)  # most chunks are written in the schema's types


# the columns without which a row means nothing; any other column may be missing (null)
_REQUIRED_COLUMNS = {METRICS: ("step", "key"), HISTOGRAMS: ("step", "tensor", "kind", "edges", "counts")}


_THREADED_BYTES = 4 << 20


def decode_chunk(data: bytes, schema: pa.Schema) -> pa.Table:
    """A chunk file's bytes as a table of ``schema`` (see :func:`conform`).

    Raises:
        StorageError: the bytes are not a Parquet file (truncated, overwritten), the chunk
            was written by a newer lightning-tracker (its format version, see
            :func:`~lightning_tracker.format.schemas.chunk_version`, is above
            :data:`~lightning_tracker.format.schemas.CHUNK_VERSION`), a column cannot be
            cast to the schema, or a row lacks a column it cannot do without.

    Example:
        >>> import io
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
        # one file in memory: read it directly (pq.read_table builds a dataset and a scanner for it,
        # which cost more than decoding a rollup); Arrow's thread pool costs more than it saves on a
        # small chunk (a flush, a rollup)
        raw = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=len(data) > _THREADED_BYTES)
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as err:  # any parse failure
        raise StorageError(f"not a readable Parquet file ({type(err).__name__}: {err})") from None
    try:
        version = chunk_version(raw.schema.metadata)
    except ValueError as err:
        raise StorageError(str(err)) from None
    if version > CHUNK_VERSION:
        raise StorageError(
            f"chunk format version {version} was written by a newer lightning-tracker (this one reads up to "
            f"{CHUNK_VERSION}); upgrade lightning-tracker to read it"
        )
    try:
        table = conform(raw, schema)
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as err:  # any parse failure
        raise StorageError(f"not a readable Parquet file ({type(err).__name__}: {err})") from None
    for name in _REQUIRED_COLUMNS.get(schema, ()):
        if table.column(name).null_count:
            raise StorageError(f"{table.column(name).null_count} of {table.num_rows} rows have no {name!r}")
    return table
