"""Media — images, text and tables — as immutable objects and an index of Parquet chunks.

The training thread only hands over a *snapshot* (a host copy of the pixels or the rows;
for a CUDA tensor an asynchronous copy into pinned memory, see
:mod:`lightning_tracker.integration.media`). The run's *media encoder* thread
(:meth:`MediaProducer.serve`) resolves the snapshots, encodes each image (PNG, or lossless
WebP where that is smaller), makes a preview at most ``THUMBNAIL_PX`` wide and high, and
stores every object under its content hash in ``media-files/`` (an image logged twice is
stored once); text and tables become one Parquet object per (key, step) (:data:`ENCODERS`:
an encoder per encoding of :data:`~lightning_tracker.format.layout.MEDIA_ENCODINGS`). The
flusher then writes one row per stored object into the index (``media/``, chunks named and
compacted like metric chunks), after the objects it names; the mirror uploads
``media-files/`` before ``media/`` for the same reason.

Encoding is the one concern that is CPU-bound and unbounded per item (a 16-megapixel image
takes seconds), so it has its own thread: metric points and the heartbeat, written by the
flusher, never wait behind images. Media waiting in memory — snapshots not yet encoded,
encoded objects a full disk refused, stored objects whose index row is not yet written —
is bounded by :data:`MEDIA_MEMORY_BYTES`. The policy is *drop the newest, counted*: a
snapshot that would pass the bound is left out at once (training never waits), and every
item given up, then or at ``finalize`` when its time runs out, is counted by kind with its
bytes in a warning. A full disk is not a loss: the encoded objects are kept (within the
same bound) and written again, oldest first, with back-off until the disk takes them.

This module imports neither torch nor Lightning.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.format.layout import MEDIA_DIR, MEDIA_FILES_DIR, MEDIA_KINDS, media_object_name
from lightning_tracker.format.schemas import MEDIA as SCHEMA
from lightning_tracker.storage import atomic_write
from lightning_tracker.writers.chunks import ChunkFolder
from lightning_tracker.writers.mirror_loops import background_priority

if TYPE_CHECKING:
    from lightning_tracker.writers.tensorboard import TensorBoardWriter

__all__ = [
    "ENCODERS",
    "MEDIA_MEMORY_BYTES",
    "THUMBNAIL_PX",
    "Encoded",
    "MediaItem",
    "MediaProducer",
    "Snapshot",
    "encode_image",
    "table_markdown",
]

log = logging.getLogger(__name__)

THUMBNAIL_PX = 128  # a preview's longest side, in pixels
_WEBP_MAX_PX = 16383  # WebP's largest side
_TB_TABLE_ROWS = 100  # rows of a table shown in TensorBoard's Text tab (the stored table keeps all)
MEDIA_MEMORY_BYTES = 256 * 2**20  # media held in memory between log_* and the index (see the module docstring)
_RETRY_MAX_S = 30.0  # the longest wait between tries of a disk that refused objects


@dataclass
class MediaItem:
    """One image, text or table, resolved to host memory.

    ``pixels`` is ``H×W×C`` uint8 with C = 1, 3 or 4 for an image (or ``H×W×1`` uint16: a
    16-bit grey image); ``frame`` the rows of a text or a table.
    """

    key: str
    step: int
    time: float
    index: int
    kind: str
    caption: str | None = None
    pixels: np.ndarray | None = None
    frame: pa.Table | None = None


class Snapshot(Protocol):
    """What the logger hands over: resolved on the media encoder thread only.

    A snapshot may also have ``key`` and ``kind`` (named in warnings), ``nbytes`` (about
    the memory it holds, counted against :data:`MEDIA_MEMORY_BYTES`; 0 when absent) and
    ``count`` (its items; 1 when absent).
    """

    def resolve(self) -> list[MediaItem]:
        """Waits for the snapshot's device copies and returns its items."""


def _pil(pixels: np.ndarray) -> Any:
    from PIL import Image

    if pixels.dtype == np.uint16:  # mode I;16: saved as a 16-bit grey PNG, every bit kept
        return Image.fromarray(np.ascontiguousarray(pixels[:, :, 0], dtype="<u2"))
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


def encode_image(pixels: np.ndarray) -> tuple[bytes, str, bytes]:
    """Encodes an ``H×W×C`` uint8 image, or an ``H×W×1`` uint16 one, losslessly.

    Returns:
        ``(data, extension, png)``: the smaller of PNG and lossless WebP (WebP only for
        colour images: it has no grey mode, nor 16 bits), and the PNG (TensorBoard shows PNG).

    Example:
        >>> data, ext, png = encode_image(np.zeros((8, 8, 3), np.uint8))
        >>> ext in ("png", "webp"), png[:4]
        (True, b'\\x89PNG')
    """
    image = _pil(pixels)
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=6)
    png = buf.getvalue()
    if (
        pixels.shape[2] == 1
        or max(pixels.shape[:2]) > _WEBP_MAX_PX
        or (pixels.shape[2] == 4 and bool((pixels[:, :, 3] == 255).all()))
    ):
        return png, "png", png  # WebP has no grey mode, no side over 16383 px, and drops an opaque alpha
    buf = io.BytesIO()
    # exact: keep the colour of fully transparent pixels (lossless means every channel)
    image.save(buf, "WEBP", lossless=True, quality=50, method=2, exact=True)  # 6x faster than method 4, 1 % larger
    webp = buf.getvalue()
    return (webp, "webp", png) if len(webp) < len(png) else (png, "png", png)


def _thumbnail(pixels: np.ndarray) -> tuple[bytes, str] | None:
    """A preview at most ``THUMBNAIL_PX`` on its longest side; None when the image is that small already."""
    from PIL import Image

    if max(pixels.shape[:2]) <= THUMBNAIL_PX:
        return None
    if pixels.dtype == np.uint16:  # a preview is 8-bit: the high byte, as a browser shows the 16-bit PNG
        pixels = (pixels >> 8).astype(np.uint8)
    image = _pil(pixels)
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if pixels.shape[2] == 1:
        image.save(buf, "PNG")
        return buf.getvalue(), "png"
    image.save(buf, "WEBP", quality=80)  # a preview: lossy is fine, the object is lossless
    return buf.getvalue(), "webp"


def table_markdown(frame: pa.Table, max_rows: int = _TB_TABLE_ROWS) -> str:
    """A table as Markdown (TensorBoard's Text tab renders it), at most ``max_rows`` rows.

    Example:
        >>> print(table_markdown(pa.table({"text": ["a|b"], "n": [1]})))
        | text | n |
        |---|---|
        | a\\|b | 1 |
    """

    def cell(value: Any) -> str:
        return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.column_names) + " |", "|" + "---|" * frame.num_columns]
    for row in frame.slice(0, max_rows).to_pylist():
        lines.append("| " + " | ".join(cell(v) for v in row.values()) + " |")
    if frame.num_rows > max_rows:
        lines.append(f"\n({frame.num_rows - max_rows} more rows in the stored table)")
    return "\n".join(lines)


@dataclass
class Encoded:
    """One item as stored: its object, its preview, its size and its TensorBoard form."""

    data: bytes  # the object's bytes
    ext: str  # its file extension, one of its encoding's in MEDIA_ENCODINGS
    width: int  # pixels, or columns
    height: int  # pixels, or rows
    # (bytes, extension) of a smaller picture to list it by; True: the object is small
    # enough to be its own; False: the kind has none
    preview: tuple[bytes, str] | bool = False
    tensorboard: Callable[[TensorBoardWriter], None] | None = None  # writes the item's TensorBoard form


def _encode_image(item: MediaItem) -> Encoded:
    pixels = item.pixels
    if pixels is None:
        raise ValueError(f"the image item {item.key!r} has no pixels")
    data, ext, png = encode_image(pixels)
    tag = item.key if item.index == 0 else f"{item.key}/{item.index}"
    shape = pixels.shape  # the TensorBoard form keeps the PNG and the shape, not the pixels
    height, width = shape[:2]
    return Encoded(
        data,
        ext,
        width,
        height,
        preview=_thumbnail(pixels) or True,
        tensorboard=lambda tb: tb.write_image(tag, item.step, item.time, png, *shape),
    )


def _encode_frame(item: MediaItem) -> Encoded:
    frame = item.frame
    if frame is None:
        raise ValueError(f"the {item.kind} item {item.key!r} has no rows")
    buf = io.BytesIO()
    pq.write_table(frame, buf, compression="zstd")
    markdown = table_markdown(frame)  # the TensorBoard form keeps 100 rows as text, not the table
    return Encoded(
        buf.getvalue(),
        "parquet",
        frame.num_columns,
        frame.num_rows,
        tensorboard=lambda tb: tb.write_text(item.key, item.step, item.time, markdown),
    )


# encoding (MediaKind.encoding) -> how an item becomes an object (on the flusher thread);
# one entry per encoding of MEDIA_ENCODINGS
ENCODERS: dict[str, Callable[[MediaItem], Encoded]] = {
    "raster": _encode_image,
    "parquet": _encode_frame,
}


@dataclass
class _Held:
    """An item between its encoding and its index row: its objects (kept while a full disk
    refuses them), then its row and its TensorBoard form."""

    item: MediaItem
    encoded: Encoded
    row: dict[str, Any] = field(default_factory=dict)
    tensorboard_bytes: int = 0  # once stored: about what its TensorBoard form holds until the index is written

    @property
    def nbytes(self) -> int:
        preview = self.encoded.preview
        return len(self.encoded.data) + (len(preview[0]) if isinstance(preview, tuple) else 0) + self.tensorboard_bytes

    def stored(self, row: dict[str, Any], tensorboard: bool) -> None:
        """Its objects are on disk: keeps its row and, for a run with TensorBoard, its TensorBoard form only."""
        form = self.encoded.tensorboard if tensorboard else None
        self.row = row
        self.tensorboard_bytes = len(self.encoded.data) if form is not None else 0  # about a PNG's size
        self.encoded = replace(self.encoded, data=b"", preview=False, tensorboard=form)


class MediaProducer:
    """Writes the media of one session of a run into its local folder.

    One thread encodes at a time (:meth:`encode`, from :meth:`serve` or a caller that
    waits for it), in the order the snapshots were logged, so a step logged again is
    stored after the first; the flusher writes the index rows of what is stored
    (:meth:`write_index`). See the module docstring for the memory bound and its policy.

    Args:
        run_dir: the run's local folder.
        session: the session number.
        writer: the session's writer key, in its chunk names.
        tensorboard: where images and text also go, or None (written by :meth:`write_index`).
        warn: ``(key, message, *args)``, de-duplicated per key.
        memory_bytes: the bound on media held in memory (:data:`MEDIA_MEMORY_BYTES`).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> producer = MediaProducer(d, session=0, writer="w")
        >>> class Shot:
        ...     def resolve(self):
        ...         return [MediaItem("samples", 3, 0.0, 0, "image", "a cat", pixels=np.zeros((4, 6, 3), np.uint8))]
        >>> producer.add(Shot())
        >>> producer.flush()
        '000-w-00000000-00000000.parquet'
        >>> row = producer.chunks.read().to_pylist()[0]
        >>> row["key"], row["step"], row["width"], row["height"], row["caption"], row["object"].split(".")[1]
        ('samples', 3, 6, 4, 'a cat', 'webp')
    """

    def __init__(
        self,
        run_dir: str,
        session: int,
        writer: str,
        tensorboard: TensorBoardWriter | None = None,
        warn: Callable[..., None] | None = None,
        memory_bytes: int | None = None,
    ) -> None:
        self.files_dir = os.path.join(run_dir, MEDIA_FILES_DIR)
        self.chunks = ChunkFolder(os.path.join(run_dir, MEDIA_DIR), SCHEMA, session, writer)
        self.tensorboard = tensorboard
        self.memory_bytes = MEDIA_MEMORY_BYTES if memory_bytes is None else int(memory_bytes)
        self._warn = warn or (lambda key, msg, *args: log.warning(msg, *args))
        self._state = threading.Condition()  # guards everything below; notified when an item moves on
        self._queue: deque[tuple[Snapshot, int]] = deque()  # logged, not encoded: (snapshot, its bytes)
        self._unwritten: deque[_Held] = deque()  # encoded; the disk refused their objects: retried first
        self._stored: list[_Held] = []  # objects on disk; their index rows not written yet
        self._refused = False  # the disk refused the last write of an object or an index chunk
        self._in_flight: tuple[Snapshot, int] | None = None  # the snapshot being encoded now
        self._held = 0  # bytes of all of the above
        self._left_out: dict[str, dict[str, list[int]]] = {}  # why -> kind -> [items, bytes] given up
        self._encoder = threading.Lock()  # one encoder at a time: items are stored in the order logged
        self._wake = threading.Event()

    # -- the training thread ------------------------------------------------------------
    def add(self, snapshot: Snapshot) -> None:
        """Queues a snapshot (the training thread: memory only, never waits).

        A snapshot that would hold more than :attr:`memory_bytes` with what is already held
        is left out, counted, with a warning (one alone is always taken).
        """
        nbytes = int(getattr(snapshot, "nbytes", 0) or 0)
        with self._state:
            full = self._held + nbytes > self.memory_bytes and self._held > 0
            if not full:
                self._queue.append((snapshot, nbytes))
                self._held += nbytes
        if full:
            self._give_up("queue full", snapshot, nbytes)
            items, size = self._totals("queue full")
            self._warn(
                "media:queue full",
                "media is logged faster than it can be encoded or written: %s is left out to keep media in "
                "memory within %s (%d items, %s left out so far); log media less often or smaller",
                _what(snapshot),
                _mb(self.memory_bytes),
                items,
                _mb(size),
            )
        else:
            self._wake.set()

    # -- the encoder --------------------------------------------------------------------
    def serve(self, stop: threading.Event) -> None:
        """The media encoder thread: encodes what is queued each time a snapshot arrives, until
        ``stop`` is set; while the disk refuses objects it tries again with back-off (at most 30 s)."""
        background_priority()
        delay = 0.0
        while not stop.is_set():
            self._wake.wait(delay or None)
            self._wake.clear()
            if stop.is_set():
                break
            refused = self.encode(stop=stop)
            delay = min(_RETRY_MAX_S, max(1.0, delay * 2)) if refused else 0.0

    def wake(self) -> None:
        """Wakes :meth:`serve` (to see its ``stop``, or to try the disk again now)."""
        self._wake.set()

    def encode(self, until: float | None = None, stop: threading.Event | None = None) -> bool:
        """Writes the objects a full disk refused, then encodes and stores the queued snapshots, oldest first.

        Args:
            until: a ``time.monotonic()`` after which no new item is started (None: no limit);
                waiting for the other encoder counts too.
            stop: no new item is started once it is set.

        Returns:
            Whether the disk refused objects (they are kept and tried again at the next call).
        """
        timeout = -1 if until is None else max(0.0, until - time.monotonic())
        if not self._encoder.acquire(timeout=timeout):
            return False
        try:
            if not self._write_unwritten():
                return True  # the disk is still full: new items would only join the refused ones
            while (until is None or time.monotonic() < until) and not (stop is not None and stop.is_set()):
                with self._state:
                    if not self._queue:
                        break
                    self._in_flight = self._queue.popleft()
                snapshot, nbytes = self._in_flight
                try:
                    held = self._encode_one(snapshot)
                finally:
                    with self._state:
                        self._in_flight = None
                        self._held = max(0, self._held - nbytes)  # 0 already when close gave it up
                        self._state.notify_all()
                refused = self._keep(held)
                if refused:
                    return True
            return False
        finally:
            self._encoder.release()

    def _encode_one(self, snapshot: Snapshot) -> list[_Held]:
        """Resolves and encodes one snapshot; an item that cannot be read or encoded is left out with a warning."""
        try:
            items = snapshot.resolve()
        except Exception as err:  # noqa: BLE001 - one bad snapshot must not cost the others
            key = getattr(snapshot, "key", "?")
            self._warn(
                f"media:{key}", "media %r could not be read (%s: %s); it is left out", key, type(err).__name__, err
            )
            return []
        out = []
        for item in items:
            try:
                known = MEDIA_KINDS.get(item.kind)
                if known is None:
                    raise ValueError(f"kind={item.kind!r} is not a media kind; the kinds are {', '.join(MEDIA_KINDS)}")
                out.append(_Held(item, ENCODERS[known.encoding](item)))
            except Exception as err:  # noqa: BLE001 - one item that cannot be encoded must not cost the others
                self._warn_not_stored(item, err)
        return out

    def _keep(self, held: list[_Held]) -> bool:
        """Stores encoded items, or keeps them for the next try when the disk refuses; returns whether it did."""
        with self._state:
            self._held += sum(h.nbytes for h in held)
            self._unwritten.extend(held)
        refused = not self._write_unwritten()
        with self._state:  # over the bound (encoded items are bigger than announced): the oldest go
            while self._held > self.memory_bytes and len(self._unwritten) > 1:
                oldest = self._unwritten.popleft()
                self._held -= oldest.nbytes
                self._left_out_item("disk full", oldest.item.kind, oldest.nbytes)
                items, size = self._totals("disk full")
                self._warn(
                    "media:disk full",
                    "the disk of %s stays full: media %r at step %d is given up to keep media in memory within "
                    "%s (%d items, %s given up so far); free space on that disk",
                    self.files_dir,
                    oldest.item.key,
                    oldest.item.step,
                    _mb(self.memory_bytes),
                    items,
                    _mb(size),
                )
        return refused

    def _write_unwritten(self) -> bool:
        """Writes the objects of the refused items, oldest first; returns False when the disk refuses again."""
        while True:
            with self._state:
                if not self._unwritten:
                    return True
                held = self._unwritten[0]
            try:
                row = self._store(held)
            except OSError as err:
                with self._state:
                    self._refused = True
                self._warn(
                    "media:write",
                    "could not write media to %s (%s); %d items (%s) are kept in memory and written when the "
                    "disk has room again",
                    self.files_dir,
                    err,
                    len(self._unwritten),
                    _mb(sum(h.nbytes for h in self._unwritten)),
                )
                return False
            except Exception as err:  # noqa: BLE001 - one item that cannot be stored must not cost the others
                self._warn_not_stored(held.item, err)
                row = {}
            with self._state:
                self._refused = False
                self._unwritten.popleft()
                self._held -= held.nbytes
                if row:
                    held.stored(row, self.tensorboard is not None)
                    self._held += held.nbytes
                    self._stored.append(held)

    def _warn_not_stored(self, item: MediaItem, err: Exception) -> None:
        self._warn(
            f"media:{item.key}:store",
            "media %r at step %d could not be stored (%s: %s); it is left out",
            item.key,
            item.step,
            type(err).__name__,
            err,
        )

    def _object(self, data: bytes, ext: str) -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        name = media_object_name(digest, ext)
        path = os.path.join(self.files_dir, name)
        if not os.path.exists(path):  # content-addressed: the same bytes are stored once
            os.makedirs(self.files_dir, exist_ok=True)
            atomic_write(path, data)
        return name, digest

    def _store(self, held: _Held) -> dict[str, Any]:
        """Writes an item's object and preview; returns its index row."""
        item, encoded = held.item, held.encoded
        name, digest = self._object(encoded.data, encoded.ext)
        preview = encoded.preview
        return {
            "step": item.step,
            "time": item.time,
            "key": item.key,
            "index": item.index,
            "kind": item.kind,
            "caption": item.caption,
            "object": name,
            "sha256": digest,
            "thumbnail": self._object(*preview)[0] if isinstance(preview, tuple) else name if preview else None,
            "width": encoded.width,
            "height": encoded.height,
        }

    @property
    def held_bytes(self) -> int:
        """Bytes of media held in memory now (at most :attr:`memory_bytes`, or one snapshot that alone is more)."""
        with self._state:
            return self._held

    # -- the flusher --------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """Whether stored objects wait for their index rows (the flusher's part)."""
        return bool(self._stored)

    def write_index(self) -> str | None:
        """Writes the index rows of the stored objects as one chunk (then their TensorBoard forms); returns its name.

        A disk error keeps the rows for the next call and is raised.
        """
        with self._state:
            done, self._stored = self._stored, []
        if not done:
            return None
        rows = [h.row for h in done]
        columns = {f.name: [r.get(f.name) for r in rows] for f in SCHEMA}
        table = pa.Table.from_pydict(
            {
                name: pa.array(values, pa.string()).dictionary_encode()
                if pa.types.is_dictionary(SCHEMA.field(name).type)
                else pa.array(values, SCHEMA.field(name).type)
                for name, values in columns.items()
            }
        ).cast(SCHEMA)
        try:
            name = self.chunks.write(table)
        except BaseException as err:
            with self._state:
                self._stored[:0] = done  # kept, in order, for the next flush
                self._refused = isinstance(err, OSError)
            raise
        with self._state:
            self._refused = False
            self._held -= sum(h.nbytes for h in done)
        if self.tensorboard is not None:
            for held in done:  # after the index: an item that could not be stored is not shown
                if held.encoded.tensorboard is not None:
                    held.encoded.tensorboard(self.tensorboard)
        return name

    def flush(self) -> str | None:
        """Encodes and stores every queued snapshot (waiting for the encoder thread's item), then writes the index.

        Returns:
            The index chunk's name, or None when there was nothing to index.
        """
        self.encode()
        return self.write_index()

    def compact(self, final: bool = False) -> list[str]:
        """Merges this session's index chunks (see :meth:`ChunkFolder.compact`)."""
        return self.chunks.compact(final)

    # -- what was given up --------------------------------------------------------------
    def give_up(self, why: str) -> None:
        """Gives up everything still held, counted: what is not encoded yet, or encoded but not written
        or indexed yet, under ``why`` (``finalize`` ran out of time); what the disk refused under "disk full"."""
        with self._state:
            left = [(s, n) for s, n in self._queue]
            if self._in_flight is not None:
                left.append(self._in_flight)
            kept = list(self._unwritten) + self._stored
            refused = self._refused  # else they were only on their way when the time ran out
            self._queue.clear()
            self._unwritten.clear()
            self._stored = []
            self._held = 0
        for snapshot, nbytes in left:
            self._give_up(why, snapshot, nbytes)
        for held in kept:
            self._left_out_item("disk full" if refused else why, held.item.kind, held.nbytes)

    def left_out(self) -> dict[str, dict[str, list[int]]]:
        """What was given up so far: ``{why: {kind: [items, bytes]}}`` (a copy).

        Example:
            >>> MediaProducer("/nonexistent", session=0, writer="w").left_out()
            {}
        """
        with self._state:
            return {why: {kind: list(n) for kind, n in kinds.items()} for why, kinds in self._left_out.items()}

    def describe_left_out(self) -> str | None:
        """What was given up, as a sentence for a warning (None: nothing).

        Example:
            >>> producer = MediaProducer("/nonexistent", session=0, writer="w")
            >>> producer._left_out_item("queue full", "image", 3 * 2**20)
            >>> producer.describe_left_out()
            'queue full: 1 image (3.0 MB)'
        """
        parts = []
        for why, kinds in self.left_out().items():
            counts = ", ".join(f"{n} {kind}{'' if n == 1 else 's'} ({_mb(size)})" for kind, (n, size) in kinds.items())
            parts.append(f"{why}: {counts}")
        return "; ".join(parts) or None

    def _give_up(self, why: str, snapshot: Snapshot, nbytes: int) -> None:
        kind = str(getattr(snapshot, "kind", "media"))
        count = int(getattr(snapshot, "count", 1) or 1)
        with self._state:
            tally = self._left_out.setdefault(why, {}).setdefault(kind, [0, 0])
            tally[0] += count
            tally[1] += nbytes

    def _left_out_item(self, why: str, kind: str, nbytes: int) -> None:
        with self._state:
            tally = self._left_out.setdefault(why, {}).setdefault(kind, [0, 0])
            tally[0] += 1
            tally[1] += nbytes

    def _totals(self, why: str) -> tuple[int, int]:
        with self._state:
            kinds = self._left_out.get(why, {})
            return sum(n for n, _ in kinds.values()), sum(b for _, b in kinds.values())


def _what(snapshot: Snapshot) -> str:
    return f"{getattr(snapshot, 'kind', 'media')} {getattr(snapshot, 'key', '?')!r}"


def _mb(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MB"
