"""Reading a run's media: the index as a DataFrame, and one image, text or table.

The index is read with the same coverage rule as metrics, and the same "last one wins"
rule per (key, step, index) (:func:`~lightning_tracker.format.summary.keep_last`): an
image logged again for a step (a resumed run) replaces the earlier one. Imports neither
torch nor Lightning; Pillow is imported only to open an image.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.exceptions import MediaNotFoundError, ObjectMissingError, StorageError
from lightning_tracker.format.layout import MEDIA_FILES_DIR, MEDIA_KINDS, MEDIA_OBJECT_RE, digest_of
from lightning_tracker.format.summary import keep_last

if TYPE_CHECKING:
    from lightning_tracker.storage import Storage

__all__ = [
    "COLUMNS", "MAX_OBJECT_BYTES", "MAX_PREVIEW_BYTES", "MAX_TABLE_BYTES", "MAX_TABLE_CELLS", "READERS",
    "media_index", "object_bytes", "pick", "read_object", "read_objects", "read_rows",
]  # fmt: skip

COLUMNS = ["step", "key", "index", "kind", "caption", "width", "height"]  # what Run.media() shows
# the largest object read: a bigger file in media-files/ is refused unread (the writer's
# objects are far smaller: images within Pillow's pixel limit, tables of what fits in memory)
MAX_OBJECT_BYTES = 1 << 30
MAX_PREVIEW_BYTES = 4 << 20  # a preview is at most 128 px a side: a few kB
# what a text or table may decode to, as Pillow caps an image's pixels: the rows shown are
# decoded batch by batch, so a small object of billions of rows costs only what is shown
MAX_TABLE_CELLS = 100_000_000  # rows × columns decoded
MAX_TABLE_BYTES = 1 << 30  # bytes decoded (Arrow buffers), whatever the file's metadata claims
_BATCH_ROWS = 4096


def media_index(table: pa.Table, key: str | None = None) -> pd.DataFrame:
    """The index rows (last one per key, step and index), sorted by key, step and index.

    Besides :data:`COLUMNS`, keeps ``time``, ``object``, ``sha256`` and ``thumbnail`` for
    the readers that fetch objects (the report, :func:`read_object`).
    """
    frame = table.to_pandas()
    if key is not None:
        frame = frame[frame["key"].astype(str) == key]
    if frame.empty:
        empty = pd.DataFrame(
            {
                c: pd.Series([], dtype="int64" if c in ("step", "index", "width", "height") else object)
                for c in [*COLUMNS, "time", "object", "sha256", "thumbnail"]
            }
        )
        return empty
    keys = frame["key"].astype(str).to_numpy()
    codes = np.unique(keys, return_inverse=True)[1]
    keep = keep_last([codes, frame["index"].to_numpy()], frame["step"].to_numpy())
    frame = frame[keep].copy()
    for col in ("key", "kind"):
        frame[col] = frame[col].astype(str)
    frame["caption"] = frame["caption"].astype(object).where(frame["caption"].notna(), None)
    frame = frame.sort_values(["key", "step", "index"], kind="stable").reset_index(drop=True)
    return frame[[*COLUMNS, "time", "object", "sha256", "thumbnail"]]


def object_bytes(
    storage: Storage, run_path: str, name: Any, sha256: str | None, max_bytes: int = MAX_OBJECT_BYTES
) -> bytes:
    """The bytes of the media object ``name`` of a run, checked against its name and ``sha256``.

    An object's name is the sha256 of its bytes, so every object is checked, a preview (no
    recorded ``sha256``: None) included: a file planted in ``media-files/`` is never
    returned. At most ``max_bytes + 1`` bytes are read.

    Raises:
        StorageError: ``name`` is not an object name, the object is damaged (its bytes do
            not match), larger than ``max_bytes``, or not a regular file of the store.
        ObjectMissingError: the object is missing (a :class:`StorageError` too).
    """
    rel = _object_path(run_path, name)
    try:
        data = storage.read_head(rel, max_bytes + 1)
    except FileNotFoundError:
        raise ObjectMissingError(f"{storage.full_url(rel)} is listed in the media index but missing") from None
    except (PermissionError, IsADirectoryError) as err:
        raise StorageError(f"{storage.full_url(rel)} cannot be read: {err.strerror or err}") from None
    return _checked(storage, rel, data, sha256, max_bytes)


def read_objects(
    storage: Storage, run_path: str, names: Mapping[str, str | None], max_bytes: int
) -> dict[str, bytes | StorageError]:
    """Many objects of a run at once (concurrently where the store can), each checked as :func:`object_bytes` does.

    Args:
        names: object name -> its recorded sha256 (None for a preview).
        max_bytes: the largest object accepted.

    Returns:
        Each name's bytes, or the :class:`StorageError` that says why it cannot be shown.
    """
    rels = {_object_path(run_path, name): name for name in names}
    try:
        found = storage.read_many(list(rels), max_bytes=max_bytes + 1)
    except (PermissionError, IsADirectoryError, StorageError):  # one bad file: read them one by one
        found = None
    out: dict[str, bytes | StorageError] = {}
    for rel, name in rels.items():
        try:
            if found is None:
                out[name] = object_bytes(storage, run_path, name, names[name], max_bytes)
            elif rel not in found:
                raise ObjectMissingError(f"{storage.full_url(rel)} is listed in the media index but missing")
            else:
                out[name] = _checked(storage, rel, found[rel], names[name], max_bytes)
        except StorageError as err:
            out[name] = err
    return out


def _object_path(run_path: str, name: Any) -> str:
    if not isinstance(name, str) or not MEDIA_OBJECT_RE.fullmatch(name):
        raise StorageError(f"the media index of {run_path} names {name!r}, not a media object name")
    return f"{run_path}/{MEDIA_FILES_DIR}/{name}"


def _checked(storage: Storage, rel: str, data: bytes, sha256: str | None, max_bytes: int) -> bytes:
    """``data`` when it is what ``rel``'s name (and the recorded ``sha256``) says; else StorageError."""
    if len(data) > max_bytes:
        raise StorageError(f"{storage.full_url(rel)} is larger than {max_bytes} bytes; it is not read")
    digest = hashlib.sha256(data).hexdigest()
    if digest != digest_of(rel.rsplit("/", 1)[-1]) or (sha256 is not None and digest != sha256):
        raise StorageError(f"{storage.full_url(rel)} does not match its recorded sha256; it is damaged")
    return data


def _open_image(data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Image.DecompressionBombError as err:  # Pillow's cap on pixels: an image far larger than its bytes
        raise StorageError(f"the image is too large to open: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:  # what Pillow raises on bad data
        raise StorageError(f"the image cannot be decoded: {err}") from None
    return image


def _read_frame(data: bytes) -> pd.DataFrame:
    return _parquet_rows(data, None)[0]


def _parquet_rows(data: bytes, max_rows: int | None) -> tuple[pd.DataFrame, int]:
    """The first ``max_rows`` rows (None: all) of a Parquet object, decoded batch by batch, and its row count.

    Raises:
        StorageError: the object is not Parquet, or what would be decoded passes
            :data:`MAX_TABLE_CELLS` or :data:`MAX_TABLE_BYTES` (a small object can hold
            billions of rows of zeros).
    """
    try:
        file = pq.ParquetFile(io.BytesIO(data))
        total = file.metadata.num_rows
        cells = min(total, max_rows if max_rows is not None else total) * max(file.metadata.num_columns, 1)
        if cells > MAX_TABLE_CELLS:
            raise StorageError(
                f"the table has {total} rows of {file.metadata.num_columns} columns, more than the "
                f"{MAX_TABLE_CELLS} cells a reader decodes; it is not read"
            )
        batches, rows, size = [], 0, 0
        wanted = total if max_rows is None else min(max_rows, total)
        for batch in file.iter_batches(batch_size=max(1, min(wanted, _BATCH_ROWS))):
            batch = batch.slice(0, wanted - rows)
            batches.append(batch)
            rows, size = rows + batch.num_rows, size + batch.nbytes
            if size > MAX_TABLE_BYTES:
                raise StorageError(f"the table decodes to more than {MAX_TABLE_BYTES} bytes; it is not read")
            if rows >= wanted:
                break
        table = pa.Table.from_batches(batches, schema=file.schema_arrow)
    except (pa.ArrowException, OSError) as err:
        if isinstance(err, StorageError):
            raise
        raise StorageError(f"the table cannot be decoded: {err}") from None
    return table.to_pandas(), total


# encoding (MediaKind.encoding) -> what an object's bytes are read as; one entry per
# encoding of MEDIA_ENCODINGS
READERS: dict[str, Callable[[bytes], Any]] = {
    "raster": _open_image,  # a PIL.Image
    "parquet": _read_frame,  # a DataFrame
}


def _kind(run_path: str, row: pd.Series) -> str:
    """The encoding of the kind ``row`` names; StorageError for a kind this version does not know."""
    known = MEDIA_KINDS.get(str(row["kind"]))
    if known is None:
        raise StorageError(
            f"the media index of {run_path} lists {row['object']!r} as kind {row['kind']!r}, which this version "
            f"cannot read (it reads {', '.join(MEDIA_KINDS)}); upgrade lightning-tracker to read it"
        )
    return known.encoding


def read_object(storage: Storage, run_path: str, row: pd.Series) -> Any:
    """The object an index row names: a ``PIL.Image`` for an image, a DataFrame for text or a table.

    Decoding is capped: an image by Pillow's ``Image.MAX_IMAGE_PIXELS``, a text or table by
    :data:`MAX_TABLE_CELLS` and :data:`MAX_TABLE_BYTES`.

    Raises:
        StorageError: the object is missing, its bytes do not match the recorded sha256, it
            cannot be decoded or decodes past the caps, or its kind is one this version
            cannot read (a newer version logged it).
    """
    encoding = _kind(run_path, row)
    data = object_bytes(storage, run_path, row["object"], row["sha256"])
    try:
        return READERS[encoding](data)
    except StorageError as err:
        raise StorageError(f"{storage.full_url(_object_path(run_path, row['object']))}: {err}") from None


def read_rows(storage: Storage, run_path: str, row: pd.Series, max_rows: int) -> tuple[pd.DataFrame, int]:
    """The first ``max_rows`` rows of the text or table an index row names, and how many rows it has.

    Only those rows are decoded (what the report and the dashboard show).

    Raises:
        StorageError: as :func:`read_object`, or the row names an image.
    """
    encoding = _kind(run_path, row)
    if encoding != "parquet":
        raise StorageError(f"{row['object']!r} of {run_path} is a {row['kind']}, not a text or a table")
    data = object_bytes(storage, run_path, row["object"], row["sha256"])
    try:
        return _parquet_rows(data, max_rows)
    except StorageError as err:
        raise StorageError(f"{storage.full_url(_object_path(run_path, row['object']))}: {err}") from None


def pick(index: pd.DataFrame, key: str, step: int, position: int, where: str) -> pd.Series:
    """The index row of ``key`` at ``step`` and ``position``; the error lists what there is."""
    rows = index[(index["key"] == key) & (index["step"] == step) & (index["index"] == position)]
    if len(rows):
        return rows.iloc[0]
    keys = sorted(set(index["key"]))
    if key not in keys:
        raise MediaNotFoundError(f"no media {key!r} in {where}; keys: {', '.join(keys) or 'none logged'}")
    steps = sorted(set(index.loc[index["key"] == key, "step"].tolist()))
    shown = ", ".join(map(str, steps[:10])) + (" …" if len(steps) > 10 else "")
    raise MediaNotFoundError(f"no media {key!r} at step {step} index {position} in {where}; its steps: {shown}")
