"""Where a run's files live and what their names mean: the layout, chunk names, coverage.

A run is the folder ``<save_dir>/<project>/<run_id>/``. Writers and readers import every
name and naming rule from here; ``docs/format.md`` is the same page for people.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from lightning_tracker.exceptions import InvalidArgumentError

__all__ = [
    "ALERTS_FILE",
    "CHANGES_DIR",
    "CONFIG_FILE",
    "ChunkId",
    "DATA_DIRS",
    "DOCUMENTS",
    "EDITS_DIR",
    "EVENTS_PREFIX",
    "GIT_DIFF_FILE",
    "HISTOGRAMS_DIR",
    "INDEX_DIR",
    "META_FILE",
    "MEDIA_DIR",
    "MEDIA_ENCODINGS",
    "MEDIA_FILES_DIR",
    "MEDIA_KINDS",
    "MEDIA_OBJECT_RE",
    "METRICS_DIR",
    "MIRROR_FILE",
    "MODELS_DIR",
    "MODELS_FILE",
    "MediaKind",
    "RUN_FILE",
    "SPOOL_FILE",
    "STAGING_DIR",
    "STAGING_STATE_FILE",
    "TOMBSTONE_FILE",
    "change_name",
    "chunk_name",
    "covered_chunks",
    "digest_of",
    "edit_name",
    "is_private",
    "live_chunks",
    "media_object_name",
    "new_run_id",
    "new_run_name",
    "new_writer_key",
    "parse_chunk_name",
    "parse_staged_name",
    "staged_names",
    "validate_path_name",
]

# -- published files (what a reader of the store sees) --------------------------------
RUN_FILE = "run.json"  # identity, status, heartbeat, sessions, params, summary
META_FILE = "meta.json"  # environment of the first session (written once)
CONFIG_FILE = "config.json"  # hyperparameters: nested, flat, change history
ALERTS_FILE = "alerts.json"  # the run's alerts (logger.alert and the automatic ones), newest last
GIT_DIFF_FILE = "git.diff"  # uncommitted changes when started in a dirty repository
METRICS_DIR = "metrics"  # immutable Parquet chunks of metric points
HISTOGRAMS_DIR = "histograms"  # immutable Parquet chunks of histograms (GradientMonitor)
MODELS_DIR = "models"  # stored checkpoints (log_model), one immutable object each
MEDIA_DIR = "media"  # immutable Parquet chunks of the media index (log_image, log_text, log_table)
# the media objects the index names, content-addressed (<sha256>.<ext>); the name sorts
# before MEDIA_DIR, so a mirror round (which uploads in name order) stores an image
# before the index chunk that lists it
MEDIA_FILES_DIR = "media-files"
MODELS_FILE = "models.json"  # the checkpoint manifest
EVENTS_PREFIX = "events.out.tfevents."  # TensorBoard event files, in the run folder itself

DATA_DIRS = (METRICS_DIR, HISTOGRAMS_DIR, MEDIA_DIR)  # folders of chunk files, compacted alike

# -- the project index (derived from the run folders, always rebuildable) ---------------
# in a project folder; the leading dot keeps it out of Store.run_ids
INDEX_DIR = ".index"
# in INDEX_DIR: small immutable objects, one per change of a run (its start, end, resume,
# an edit, a deletion), named by time so that a reader lists what came after its watermark
CHANGES_DIR = "changes"
# edits after the run (tags, note, name, archive) and deletion marks: <project>/.edits/<run id>/,
# outside the run folder so that no writer of the run (its mirror, a resume, sync) ever
# touches them, and one listing of the project finds every run's edits
EDITS_DIR = ".edits"
# in EDITS_DIR/<run id>/: the run is being deleted; written first and removed last by ``rm``
TOMBSTONE_FILE = "deleted.json"
# the mutable documents, in the order they are committed after the objects they describe
DOCUMENTS = (CONFIG_FILE, RUN_FILE, MODELS_FILE)


# -- media kinds ------------------------------------------------------------------------
_PARQUET = "application/vnd.apache.parquet"
# encoding -> the formats its objects are stored in: file extension -> media type (what a
# server answers with). Each encoding has one encoder (writers/media.py ``ENCODERS``) and
# one decoder (read/media.py ``READERS``), whatever kinds use it.
MEDIA_ENCODINGS: dict[str, Mapping[str, str]] = {
    "raster": {"png": "image/png", "webp": "image/webp"},  # lossless pixels; previews are rasters too
    "parquet": {"parquet": _PARQUET},  # rows: a Parquet table
}


class MediaKind(NamedTuple):
    """What one kind of logged media is: how its objects are stored and how they are shown.

    The index's ``kind`` column holds a key of :data:`MEDIA_KINDS`. Both fields are names:
    ``encoding`` a key of :data:`MEDIA_ENCODINGS` (the writer's encoder and the reader's
    decoder are keyed by it), ``renderer`` a function of ``report/assets/media.js`` that
    draws it (``image``: a preview and the picture; ``table``: sortable rows), keyed in
    ``report/media.py`` ``RENDERERS`` too. ``tests/format/test_media_kinds.py`` checks
    that every layer has every piece.

    A kind whose objects have the form of an existing one (a segmentation mask is a
    raster shown as an image) is a line in :data:`MEDIA_KINDS` plus, in
    ``integration/media.py``, its snapshot in ``SNAPSHOTS`` and a ``log_<kind>`` method on
    ``TrackerLogger`` (``integration/logger.py``) that calls ``_log_media``.

    A kind with a new encoding (audio) also needs an entry in :data:`MEDIA_ENCODINGS`, its
    encoder (``writers/media.py`` ``ENCODERS``) and decoder (``read/media.py``
    ``READERS``); a new way of showing it (a player) also a route in ``report/media.py``
    ``RENDERERS`` and a renderer of that name in ``report/assets/media.js``.

    Example:
        >>> MEDIA_KINDS["image"].content_types["webp"], MEDIA_KINDS["table"].renderer
        ('image/webp', 'table')
    """

    encoding: str  # how its objects are stored: a key of MEDIA_ENCODINGS
    renderer: str  # how the page shows them: a name of RENDERERS in report/media.py and media.js

    @property
    def content_types(self) -> Mapping[str, str]:
        """Object file extension -> media type, the formats of its encoding."""
        return MEDIA_ENCODINGS[self.encoding]


MEDIA_KINDS: dict[str, MediaKind] = {
    "image": MediaKind("raster", "image"),
    "text": MediaKind("parquet", "table"),  # a table whose every cell is a string
    "table": MediaKind("parquet", "table"),
}
_EXTENSIONS = sorted({ext for types in MEDIA_ENCODINGS.values() for ext in types})
MEDIA_OBJECT_RE = re.compile(rf"[0-9a-f]{{64}}\.({'|'.join(_EXTENSIONS)})")  # <sha256 of the bytes>.<extension>

# -- local-only files (in the run's local folder, never published) ----------------------
SPOOL_FILE = "spool.json"  # in a spool folder: where the run is uploaded to
MIRROR_FILE = ".mirror.json"  # what the mirror has uploaded (size and mtime per file)
STAGING_DIR = ".checkpoints"  # checkpoint snapshots waiting to be stored, and their state
STAGING_STATE_FILE = "state.json"  # in STAGING_DIR: what only this machine knows (local sources, alias targets)
_STAGED_RE = re.compile(r"^(\d+)\.json\Z")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK_RE = re.compile(r"^(\d{3,})-(?:([a-z]{1,16})-)?(\d{8,})-(\d{8,})\.parquet\Z")

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


def is_private(name: str) -> bool:
    """Whether a file or folder name is local bookkeeping that is never published or read.

    Temporary files (``.tmp-*.part``), the staging folder and the mirror's state start
    with a dot; ``spool.json`` names the remote copy and stays in the spool.

    Example:
        >>> is_private(".tmp-x.part"), is_private("spool.json"), is_private("run.json")
        (True, True, False)
    """
    return name.startswith(".") or name == SPOOL_FILE or name.endswith(".part")


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
    if not isinstance(text, str) or not _NAME_RE.fullmatch(text):  # match's $ accepts a final newline
        raise InvalidArgumentError(
            f"{arg}={value!r} cannot be used as a folder name inside save_dir; use 1 to 128 "
            "letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(for example 'mnist-baseline')."
        )
    return text


# -- checkpoint staging -----------------------------------------------------------------
def staged_names(seq: int) -> tuple[str, str]:
    """The names in ``STAGING_DIR`` of staged checkpoint ``seq``: ``(snapshot, sidecar)``.

    Six digits or more, so name order is staging order.

    Example:
        >>> staged_names(7)
        ('000007.ckpt', '000007.json')
    """
    return f"{seq:06d}.ckpt", f"{seq:06d}.json"


def parse_staged_name(name: str) -> int | None:
    """The staging number of a sidecar's name in ``STAGING_DIR``; None for other files.

    Example:
        >>> parse_staged_name("000007.json"), parse_staged_name(STAGING_STATE_FILE), parse_staged_name("000007.ckpt")
        (7, None, None)
    """
    match = _STAGED_RE.match(name)
    return None if match is None else int(match[1])


# -- chunks -----------------------------------------------------------------------------
class ChunkId(NamedTuple):
    """What a chunk's name says: its session, its flush sequence range, and its writer's key."""

    session: int
    first: int
    last: int
    writer: str = ""


def change_name(time_ns: int, run_id: str, token: str) -> str:
    """The name of a change object in ``<project>/.index/changes/``: time first, so names sort by time.

    ``token`` (a few random characters) keeps two changes of one run in one nanosecond apart.

    Example:
        >>> change_name(1_700_000_000_123_456_789, "20231114-abcd", "k3x9")
        '01700000000123456789-20231114-abcd-k3x9.json'
    """
    return f"{time_ns:020d}-{run_id}-{token}.json"


def edit_name(time_ns: int, token: str) -> str:
    """The name of an edit document in ``<project>/.edits/<run id>/``: time first, so name order is fold order.

    ``token`` (a few random characters) keeps two edits made in one nanosecond apart.

    Example:
        >>> edit_name(1_700_000_000_123_456_789, "k3x9")
        '01700000000123456789-k3x9.json'
    """
    return f"{time_ns:020d}-{token}.json"


def new_writer_key() -> str:
    """A session's writer key: 8 random letters in its chunk names, so two processes that
    open the same session of a run at once never write the same name. Letters sort after
    the digits of a name without a key, so name order stays read order.

    Example:
        >>> len(new_writer_key())
        8
    """
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))


def chunk_name(session: int, first: int, last: int, writer: str = "") -> str:
    """File name of a chunk holding flush sequence numbers ``first..last`` of a session's writer.

    Example:
        >>> chunk_name(0, 3, 3, "kqfbxzab"), chunk_name(1, 0, 15)
        ('000-kqfbxzab-00000003-00000003.parquet', '001-00000000-00000015.parquet')
    """
    return f"{session:03d}-{writer + '-' if writer else ''}{first:08d}-{last:08d}.parquet"


def parse_chunk_name(name: str) -> ChunkId | None:
    """Returns the :class:`ChunkId` of a chunk file name, or None for other files.

    Example:
        >>> parse_chunk_name("001-kqfbxzab-00000002-00000017.parquet"), parse_chunk_name("run.json")
        (ChunkId(session=1, first=2, last=17, writer='kqfbxzab'), None)
    """
    match = _CHUNK_RE.match(name)
    if match is None:
        return None
    return ChunkId(int(match[1]), int(match[3]), int(match[4]), match[2] or "")


def _split(names: list[str]) -> tuple[list[str], list[str]]:
    """The coverage rule, the only copy: (live chunks in read order, covered chunks).

    Chunk X covers chunk Y when both belong to the same session and writer and X's range
    contains Y's. A compacted chunk is written before the chunks it replaces are
    deleted, so a listing taken at any moment, without its covered chunks, holds every
    point once. Read order: session, then writer, then range.
    """
    parsed = [(p, n) for n in names if (p := parse_chunk_name(n)) is not None]
    live: list[tuple[tuple[int, str, int, int], str]] = []
    covered: list[str] = []
    # widest ranges first, so a chunk is kept only if nothing wider covers it
    for c, name in sorted(parsed, key=lambda x: (x[0].session, x[0].writer, x[0].first, -x[0].last)):
        if any(s == c.session and w == c.writer and lo <= c.first and c.last <= hi for (s, w, lo, hi), _ in live):
            covered.append(name)
        else:
            live.append(((c.session, c.writer, c.first, c.last), name))
    return [name for _, name in sorted(live)], sorted(covered)


def live_chunks(names: list[str]) -> list[str]:
    """The chunks a reader reads, in read order: every chunk no other chunk covers.

    Other names in ``names`` are ignored.

    Example:
        >>> live_chunks([chunk_name(0, 1, 1), chunk_name(0, 0, 1), chunk_name(0, 2, 2), "x.json"])
        ['000-00000000-00000001.parquet', '000-00000002-00000002.parquet']
    """
    return _split(names)[0]


def covered_chunks(names: list[str]) -> list[str]:
    """The chunks another chunk in ``names`` covers: garbage, safe to delete.

    Example:
        >>> covered_chunks([chunk_name(0, 1, 1), chunk_name(0, 0, 1), chunk_name(1, 1, 1)])
        ['000-00000001-00000001.parquet']
    """
    return _split(names)[1]


def media_object_name(digest: str, ext: str) -> str:
    """The name of a media object in ``media-files/``: the sha256 of its bytes (hex) and its extension.

    Example:
        >>> media_object_name("ab" * 32, "png") == "ab" * 32 + ".png"
        True
    """
    return f"{digest}.{ext}"


def digest_of(name: str) -> str | None:
    """The sha256 (hex) a media object's name says its bytes have; None for other names.

    Example:
        >>> digest_of(media_object_name("ab" * 32, "webp")) == "ab" * 32, digest_of("notes.txt")
        (True, None)
    """
    return name.split(".", 1)[0] if MEDIA_OBJECT_RE.fullmatch(name) else None
