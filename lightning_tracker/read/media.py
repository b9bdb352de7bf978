"""Reading a run's media: the index as a DataFrame, and one image, text or table.

The index is read with the same coverage rule as metrics, and the same "last one wins"
rule per (key, step, index) (:func:`~lightning_tracker.format.summary.keep_last`): an
image logged again for a step (a resumed run) replaces the earlier one. Imports neither
torch nor Lightning; Pillow is imported only to open an image.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_tracker.exceptions import MediaNotFoundError, ObjectMissingError, StorageError
from lightning_tracker.format.layout import MEDIA_FILES_DIR, MEDIA_KINDS, MEDIA_OBJECT_RE
from lightning_tracker.format.summary import keep_last

if TYPE_CHECKING:
    from lightning_tracker.storage import Storage

__all__ = ["COLUMNS", "READERS", "media_index", "object_bytes", "pick", "read_object"]

COLUMNS = ["step", "key", "index", "kind", "caption", "width", "height"]  # what Run.media() shows


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


def object_bytes(storage: Storage, run_path: str, name: Any, sha256: str | None) -> bytes:
    """The bytes of the media object ``name`` of a run, checked against ``sha256`` (None: a preview, unchecked).

    Raises:
        StorageError: ``name`` is not an object name, or the object is damaged.
        ObjectMissingError: the object is missing (a :class:`StorageError` too).
    """
    import hashlib

    if not isinstance(name, str) or not MEDIA_OBJECT_RE.fullmatch(name):
        raise StorageError(f"the media index of {run_path} names {name!r}, not a media object name")
    rel = f"{run_path}/{MEDIA_FILES_DIR}/{name}"
    try:
        data = storage.read_bytes(rel)
    except FileNotFoundError:
        raise ObjectMissingError(f"{storage.full_url(rel)} is listed in the media index but missing") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise StorageError(f"{storage.full_url(rel)} does not match its recorded sha256; it is damaged")
    return data


def _open_image(data: bytes) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _read_frame(data: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data)).to_pandas()


# encoding (MediaKind.encoding) -> what an object's bytes are read as; one entry per
# encoding of MEDIA_ENCODINGS
READERS: dict[str, Callable[[bytes], Any]] = {
    "raster": _open_image,  # a PIL.Image
    "parquet": _read_frame,  # a DataFrame
}


def read_object(storage: Storage, run_path: str, row: pd.Series) -> Any:
    """The object an index row names: a ``PIL.Image`` for an image, a DataFrame for text or a table.

    Raises:
        StorageError: the object is missing, its bytes do not match the recorded sha256, or
            its kind is one this version cannot read (a newer version logged it).
    """
    data = object_bytes(storage, run_path, row["object"], row["sha256"])
    known = MEDIA_KINDS.get(str(row["kind"]))
    if known is None:
        raise StorageError(
            f"the media index of {run_path} lists {row['object']!r} as kind {row['kind']!r}, which this version "
            f"cannot read (it reads {', '.join(MEDIA_KINDS)}); upgrade lightning-tracker to read it"
        )
    return READERS[known.encoding](data)


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
