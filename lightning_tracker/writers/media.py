"""Media — images, text and tables — as immutable objects and an index of Parquet chunks.

The training thread only hands over a *snapshot* (a host copy of the pixels or the rows;
for a CUDA tensor an asynchronous copy into pinned memory, see
:mod:`lightning_tracker.integration.media`). On the flusher thread this producer resolves the
snapshots, encodes each image (PNG, or lossless WebP where that is smaller), makes a
preview at most ``THUMBNAIL_PX`` wide and high, and stores every object under its content
hash in ``media-files/`` (an image logged twice is stored once); text and tables become
one Parquet object per (key, step) (:data:`ENCODERS`: an encoder per encoding of
:data:`~lightning_tracker.format.layout.MEDIA_ENCODINGS`). One row per
object goes into the index (``media/``, chunks named and compacted like metric chunks),
written after the objects it names; the mirror uploads ``media-files/`` before ``media/``
for the same reason.

This module imports neither torch nor Lightning.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.format.layout import MEDIA_DIR, MEDIA_FILES_DIR, MEDIA_KINDS
from lightning_tracker.format.schemas import MEDIA as SCHEMA
from lightning_tracker.storage import atomic_write
from lightning_tracker.writers.chunks import ChunkFolder

if TYPE_CHECKING:
    from lightning_tracker.writers.tensorboard import TensorBoardWriter

__all__ = [
    "ENCODERS",
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
    """What the logger hands over: resolved on the flusher thread only."""

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
    height, width = pixels.shape[:2]
    return Encoded(
        data,
        ext,
        width,
        height,
        preview=_thumbnail(pixels) or True,
        tensorboard=lambda tb: tb.write_image(tag, item.step, item.time, png, *pixels.shape),
    )


def _encode_frame(item: MediaItem) -> Encoded:
    frame = item.frame
    if frame is None:
        raise ValueError(f"the {item.kind} item {item.key!r} has no rows")
    buf = io.BytesIO()
    pq.write_table(frame, buf, compression="zstd")
    return Encoded(
        buf.getvalue(),
        "parquet",
        frame.num_columns,
        frame.num_rows,
        tensorboard=lambda tb: tb.write_text(item.key, item.step, item.time, table_markdown(frame)),
    )


# encoding (MediaKind.encoding) -> how an item becomes an object (on the flusher thread);
# one entry per encoding of MEDIA_ENCODINGS
ENCODERS: dict[str, Callable[[MediaItem], Encoded]] = {
    "raster": _encode_image,
    "parquet": _encode_frame,
}


class MediaProducer:
    """Writes the media of one session of a run into its local folder.

    Args:
        run_dir: the run's local folder.
        session: the session number.
        writer: the session's writer key, in its chunk names.
        tensorboard: where images and text also go, or None.
        warn: ``(key, message, *args)``, de-duplicated per key.

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
    ) -> None:
        self.files_dir = os.path.join(run_dir, MEDIA_FILES_DIR)
        self.chunks = ChunkFolder(os.path.join(run_dir, MEDIA_DIR), SCHEMA, session, writer)
        self.tensorboard = tensorboard
        self._warn = warn or (lambda key, msg, *args: log.warning(msg, *args))
        self._queue: list[Snapshot] = []

    def add(self, snapshot: Snapshot) -> None:
        """Queues a snapshot (the training thread: memory only)."""
        self._queue.append(snapshot)

    @property
    def pending(self) -> bool:
        """Whether snapshots wait for the next flush."""
        return bool(self._queue)

    def _object(self, data: bytes, ext: str) -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest}.{ext}"
        path = os.path.join(self.files_dir, name)
        if not os.path.exists(path):  # content-addressed: the same bytes are stored once
            os.makedirs(self.files_dir, exist_ok=True)
            atomic_write(path, data)
        return name, digest

    def _store(self, item: MediaItem) -> dict[str, Any]:
        known = MEDIA_KINDS.get(item.kind)
        if known is None:
            raise ValueError(f"kind={item.kind!r} is not a media kind; the kinds are {', '.join(MEDIA_KINDS)}")
        encoded = ENCODERS[known.encoding](item)
        name, digest = self._object(encoded.data, encoded.ext)
        preview = encoded.preview
        row: dict[str, Any] = {
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
        if self.tensorboard is not None and encoded.tensorboard is not None:
            encoded.tensorboard(self.tensorboard)  # after the objects: an item that could not be stored is not shown
        return row

    def flush(self) -> str | None:
        """Resolves and stores the queued snapshots, then writes their index chunk; returns its name.

        A snapshot that fails (a device error) is left out with a warning naming its key.
        """
        n = len(self._queue)
        snapshots, self._queue[:n] = self._queue[:n], []
        rows = []
        for snapshot in snapshots:
            try:
                items = snapshot.resolve()
            except Exception as err:  # noqa: BLE001 - one bad snapshot must not cost the others
                key = getattr(snapshot, "key", "?")
                self._warn(
                    f"media:{key}", "media %r could not be read (%s: %s); it is left out", key, type(err).__name__, err
                )
                continue
            for item in items:
                try:
                    rows.append(self._store(item))
                except Exception as err:  # noqa: BLE001 - one item that cannot be stored must not cost the others
                    self._warn(
                        f"media:{item.key}:store",
                        "media %r at step %d could not be stored (%s: %s); it is left out",
                        item.key,
                        item.step,
                        type(err).__name__,
                        err,
                    )
        if not rows:
            return None
        columns = {f.name: [r.get(f.name) for r in rows] for f in SCHEMA}
        table = pa.Table.from_pydict(
            {
                name: pa.array(values, pa.string()).dictionary_encode()
                if pa.types.is_dictionary(SCHEMA.field(name).type)
                else pa.array(values, SCHEMA.field(name).type)
                for name, values in columns.items()
            }
        ).cast(SCHEMA)
        return self.chunks.write(table)

    def compact(self, final: bool = False) -> list[str]:
        """Merges this session's index chunks (see :meth:`ChunkFolder.compact`)."""
        return self.chunks.compact(final)
