"""Snapshots of what ``log_image``, ``log_text`` and ``log_table`` receive, taken on the training thread.

A snapshot owns a copy of the data, so the caller may change or free its tensors at once,
and costs the training thread as little as it can: a tensor on a GPU (CUDA or another
accelerator) is converted to uint8 on its device and copied into pinned host memory
asynchronously (an event marks the copy's end; nothing waits for it here), a CPU tensor
or an array is copied, a figure is rendered.
Conversion to pixels, encoding and writing happen on the run's media encoder thread, in
:mod:`lightning_tracker.writers.media`.

Input that is not an image (a wrong shape, dtype or type, a closed figure) is skipped with
one warning per key naming what was received and what is accepted; it never raises.
:data:`SNAPSHOTS` gives each kind of :data:`~lightning_tracker.format.layout.MEDIA_KINDS`
its snapshot; ``TrackerLogger.log_<kind>`` takes it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from lightning_tracker.writers.device_copies import HostCopy
from lightning_tracker.writers.media import MediaItem, Snapshot

__all__ = ["ACCEPTED", "SNAPSHOTS", "image_snapshot", "table_snapshot", "text_snapshot"]

log = logging.getLogger(__name__)

Warn = Callable[..., None]  # (key, message, *args), de-duplicated per key

ACCEPTED = (
    "torch tensors CHW or HW (float in [0, 1], uint8 or bool; any device; a 4-D NCHW tensor is a batch), "
    "NumPy arrays HWC or HW (same dtypes, and uint16 for a grey image, kept 16-bit; 4-D NHWC is a batch), "
    "PIL images (16-bit grey and float modes included) and matplotlib figures"
)
_PIL_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")  # 16-bit grey: kept 16-bit, as a 16-bit PNG
_CHANNELS = (1, 3, 4)


class _Bad(ValueError):
    """An input that is not an image; the message says what it is."""


def _kind_of_dtype(dtype: Any) -> str:
    name = str(dtype).replace("torch.", "")
    if name == "uint8":
        return "uint8"
    if name == "bool":
        return "bool"
    if name == "uint16":
        return "uint16"
    if name.startswith(("float", "bfloat")) or name == "half":
        return "float"
    raise _Bad(f"dtype {name}")


def to_pixels(array: np.ndarray, channels_first: bool) -> np.ndarray:
    """An image array (HW, CHW or HWC; float in [0, 1], uint8 or bool) as ``H×W×C`` uint8;
    a grey uint16 image stays uint16 (stored as a 16-bit PNG).

    Example:
        >>> to_pixels(np.array([[0.0, 0.5, 1.0, 2.0]]), channels_first=False)[..., 0].tolist()
        [[0, 128, 255, 255]]
    """
    if array.ndim == 2:
        array = array[:, :, None]
    elif channels_first:
        array = np.moveaxis(array, 0, -1)
    if array.dtype == np.uint8 or array.dtype == np.uint16:
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    if array.dtype == np.bool_:
        return np.ascontiguousarray(array.astype(np.uint8) * 255)
    scaled = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.ascontiguousarray(np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8))


def _check_shape(shape: tuple[int, ...], channels_first: bool) -> None:
    if len(shape) == 2 and min(shape) > 0:
        return
    if len(shape) == 3 and min(shape) > 0 and shape[0 if channels_first else 2] in _CHANNELS:
        return
    raise _Bad(f"shape {tuple(shape)}")


class _Images:
    """The images of one ``log_image`` call; ``resolve`` runs on the media encoder thread."""

    def __init__(self, key: str, step: int, wall_time: float, kind: str = "image") -> None:
        self.key, self.step, self.time, self.kind = key, step, wall_time, kind
        self.parts: list[tuple[int, str | None, Callable[[], np.ndarray]]] = []
        self.nbytes = 0  # about the memory the copies hold (the media queue's bound counts it)

    @property
    def count(self) -> int:
        """How many images the snapshot holds."""
        return len(self.parts)

    def resolve(self) -> list[MediaItem]:
        return [
            MediaItem(self.key, self.step, self.time, index, self.kind, caption, pixels=get())
            for index, caption, get in self.parts
        ]


class _PinnedBytes:
    """Pinned host memory held by image copies the flusher has not read yet, capped.

    Past ``limit`` bytes (a flusher that cannot keep up, a store that is down), an image is
    copied with a blocking copy into pageable memory instead: the training thread waits
    for that one copy, and pinned memory, which the OS cannot page out, stops growing.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.held, self.warned = limit, 0, False
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if self.held + nbytes > self.limit:
                return False
            self.held += nbytes
            return True

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.held -= nbytes


_PINNED = _PinnedBytes(256 << 20)


def _tensor_part(tensor: Any) -> Callable[[], np.ndarray]:
    import torch

    t = tensor.detach()
    _check_shape(tuple(t.shape), channels_first=True)
    kind = _kind_of_dtype(t.dtype)
    if kind == "uint16":  # torch's uint16 has no NumPy or device conversion to rely on
        raise _Bad("dtype torch.uint16 (pass tensor.numpy() for a 16-bit grey image)")
    if t.device.type != "cpu":  # CUDA or another accelerator (XPU, MPS, ...)
        if kind == "float":  # on the device: a quarter of the bytes to copy, no host work
            t = (torch.nan_to_num(t.float(), nan=0.0).clamp_(0.0, 1.0) * 255.0).round_().to(torch.uint8)
        elif kind == "bool":
            t = t.to(torch.uint8) * 255
        nbytes = t.numel() * t.element_size()
        if not _PINNED.take(nbytes):
            if not _PINNED.warned:
                _PINNED.warned = True
                log.warning(
                    "log_image: %d MB of pinned memory already wait for the writer; images are now copied "
                    "with a blocking copy until it catches up",
                    _PINNED.limit >> 20,
                )
            pageable = t.cpu()
            return lambda: to_pixels(pageable.numpy(), channels_first=True)
        copy = HostCopy(t)  # pinned memory, an event on the tensor's device and stream; nothing waits here
        weakref.finalize(copy.host, _PINNED.release, nbytes)  # released with the buffer, read or dropped
        return lambda: to_pixels(copy.wait().numpy(), channels_first=True)  # on the encoder: the only wait
    copy = t.to("cpu", copy=True)
    if copy.dtype == torch.bfloat16 or copy.dtype == torch.float16:
        copy = copy.float()
    return lambda: to_pixels(copy.numpy(), channels_first=True)


def _check_16bit(shape: tuple[int, ...]) -> None:
    if len(shape) == 3 and shape[2] != 1:
        raise _Bad(f"dtype uint16 with {shape[2]} channels (16 bits are kept for grey images only; scale to uint8)")


def _array_part(array: np.ndarray) -> Callable[[], np.ndarray]:
    _check_shape(array.shape, channels_first=False)
    if _kind_of_dtype(array.dtype) == "uint16":
        _check_16bit(array.shape)
    copy = np.array(array, copy=True)
    return lambda: to_pixels(copy, channels_first=False)


def _pil_part(image: Any) -> Callable[[], np.ndarray]:
    """A PIL image's pixels: 16-bit grey (``I;16``, or ``I`` within 0..65535) kept 16-bit, float
    (``F``) read as floats in [0, 1] like an array, other modes converted to L, RGB or RGBA."""
    mode = image.mode
    if mode in _PIL_16BIT or mode == "I":
        values = np.array(image)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
            raise _Bad(
                f"PIL mode {mode} with values {int(values.min())}..{int(values.max())} "
                "(16 bits hold 0..65535; scale it, or pass float in [0, 1] as mode F)"
            )
        pixels16 = values.astype(np.uint16)
        return lambda: to_pixels(pixels16, channels_first=False)
    if mode == "F":
        floats = np.array(image, dtype=np.float32)
        return lambda: to_pixels(floats, channels_first=False)
    if mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    pixels = np.array(image, copy=True)
    return lambda: to_pixels(pixels, channels_first=False)


def _figure_part(figure: Any) -> Callable[[], np.ndarray]:
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    number = getattr(figure, "number", None)
    if number is not None and not plt.fignum_exists(number):
        raise _Bad("a closed matplotlib figure (log it before plt.close)")
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()  # matplotlib is not thread-safe: the figure is drawn here, encoded later
    rgba = np.asarray(canvas.buffer_rgba())
    # a figure's background is opaque unless made transparent: then RGB is the whole picture
    pixels = np.array(rgba[:, :, :3] if (rgba[:, :, 3] == 255).all() else rgba, copy=True)
    return lambda: pixels


def _part(value: Any) -> Callable[[], np.ndarray]:
    kind = f"{type(value).__module__}.{type(value).__name__}"
    if kind.startswith("torch.") and hasattr(value, "detach"):
        return _tensor_part(value)
    if isinstance(value, np.ndarray):
        return _array_part(value)
    if kind.startswith("PIL.") and hasattr(value, "mode"):
        return _pil_part(value)
    if kind.startswith("matplotlib.figure."):
        return _figure_part(value)
    raise _Bad(f"a {kind}")


def _batch(images: Any) -> list[Any]:
    """``images`` as a list: a list or tuple, a 4-D tensor or array (a batch), or one image."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if getattr(images, "ndim", 0) == 4:
        return list(images.unbind(0)) if hasattr(images, "unbind") else list(images)
    return [images]


def image_snapshot(
    key: str, step: int, warn: Warn, images: Any, caption: Sequence[Any] | None = None, kind: str = "image"
) -> _Images:
    """Snapshots images for ``log_image``; each bad one is skipped with a warning naming it.

    ``kind`` is the media kind the items are stored as: another kind of the raster encoding
    that takes the same inputs (a mask shown as an image) is ``partial(image_snapshot, kind=...)``.

    Example:
        >>> def warn(key, message, *args):
        ...     print(message % args)
        >>> shot = image_snapshot("k", 0, warn, [np.zeros((2, 3), np.uint8), "nope"])  # doctest: +ELLIPSIS
        log_image('k'): image 1 is a builtins.str; it is skipped. Accepted: torch tensors CHW or HW ...
        >>> [item.pixels.shape for item in shot.resolve()]
        [(2, 3, 1)]
    """
    items = _batch(images)
    captions = [caption] if isinstance(caption, str) else list(caption) if caption is not None else []
    if caption is not None and len(captions) != len(items):
        warn(key, "log_%s(%r): %d captions for %d images; captions are left out", kind, key, len(captions), len(items))
        captions = []
    shot = _Images(key, step, time.time(), kind)
    for index, value in enumerate(items):
        try:
            get = _part(value)
        except Exception as err:  # noqa: BLE001 - whatever it is, it must not stop training
            bad = err if isinstance(err, _Bad) else f"unreadable ({type(value).__name__}, {type(err).__name__}: {err})"
            # once per key and kind of mistake: a loop repeating it is not a flood
            warn(
                f"{key}:{bad}",
                "log_%s(%r): image %d is %s; it is skipped. Accepted: %s",
                kind,
                key,
                index,
                bad,
                ACCEPTED,
            )
            continue
        shot.parts.append((index, str(captions[index]) if captions else None, get))
        shot.nbytes += _nbytes(value)
    return shot


def _nbytes(value: Any) -> int:
    """About the bytes a snapshot of ``value`` holds (its pixels; a figure's RGBA canvas)."""
    try:
        if hasattr(value, "element_size") and hasattr(value, "numel"):  # a torch tensor
            return int(value.numel() * value.element_size())
        if isinstance(value, np.ndarray):
            return int(value.nbytes)
        if hasattr(value, "getbands") and hasattr(value, "size"):  # a PIL image
            return int(value.size[0] * value.size[1] * len(value.getbands()))
        if hasattr(value, "bbox"):  # a matplotlib figure: width x height in pixels, RGBA
            return int(value.bbox.width * value.bbox.height * 4)
    except Exception:  # noqa: BLE001 - a size is an estimate; never a reason to fail
        pass
    return 0


class _Frame:
    """The rows of one ``log_table``/``log_text`` call; ``resolve`` (the media encoder) builds the Arrow table.

    Args:
        key, kind, step: where the item is stored.
        build: returns the table; reads only the snapshot's own copy.
        nbytes: about how much memory the copy holds (the media queue's bound counts it).
    """

    def __init__(self, key: str, kind: str, step: int, build: Callable[[], pa.Table], nbytes: int) -> None:
        self.key, self.kind, self.step, self.time = key, kind, step, time.time()
        self.build, self.nbytes = build, nbytes

    def resolve(self) -> list[MediaItem]:
        return [MediaItem(self.key, self.step, self.time, 0, self.kind, frame=self.build())]


def _column(values: list[Any], as_text: bool) -> pa.Array:
    if as_text:
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types, huge ints: a column of text then
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def table_snapshot(
    key: str,
    step: int,
    warn: Warn,
    columns: Sequence[Any] | None = None,
    data: Sequence[Sequence[Any]] | None = None,
    dataframe: Any = None,
) -> _Frame | None:
    """Snapshots a table (``columns`` and ``data`` rows, or a pandas ``dataframe``); values keep their types.

    Returns None, after one warning naming the problem, when the input is not a table.

    Example:
        >>> shot = table_snapshot("t", 0, print, columns=["a", "b"], data=[[1, "x"], [2, "y"]])
        >>> shot.resolve()[0].frame.to_pylist()
        [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    """
    return _frame_snapshot(key, "table", step, warn, columns, data, dataframe)


def text_snapshot(
    key: str,
    step: int,
    warn: Warn,
    columns: Sequence[Any] | None = None,
    data: Sequence[Sequence[Any]] | None = None,
    dataframe: Any = None,
) -> _Frame | None:
    """Snapshots text: a table as :func:`table_snapshot` takes it, every cell stored as a string.

    Example:
        >>> text_snapshot("t", 0, print, columns=["n"], data=[[1], [None]]).resolve()[0].frame.to_pylist()
        [{'n': '1'}, {'n': None}]
    """
    return _frame_snapshot(key, "text", step, warn, columns, data, dataframe)


def _frame_snapshot(
    key: str,
    kind: str,
    step: int,
    warn: Warn,
    columns: Sequence[Any] | None,
    data: Sequence[Sequence[Any]] | None,
    dataframe: Any,
) -> _Frame | None:
    name = f"log_{kind}({key!r})"
    try:
        return _frame(key, kind, step, warn, name, columns, data, dataframe)
    except Exception as err:  # noqa: BLE001 - a table that cannot be read must not stop training
        warn(
            f"{key}:{type(err).__name__}",
            "%s: the table cannot be stored (%s: %s); it is skipped",
            name,
            type(err).__name__,
            err,
        )
        return None


def _frame(
    key: str, kind: str, step: int, warn: Warn, name: str, columns: Sequence[Any] | None, data: Any, dataframe: Any
) -> _Frame | None:
    as_text = kind == "text"
    if data is not None and not isinstance(data, (str, bytes, list, tuple)):
        data = list(data)  # a generator is read once
    if dataframe is not None:
        if not hasattr(dataframe, "to_dict"):
            warn(key, "%s: dataframe is a %s, not a pandas DataFrame; it is skipped", name, type(dataframe).__name__)
            return None
        cols = [str(c) for c in dataframe.columns]
        if len(set(cols)) != len(cols):
            warn(key, "%s: column names repeat (%s); it is skipped", name, cols)
            return None
        # the training thread only copies the frame (column by column, no per-row work); Arrow
        # converts the copy on the media encoder thread, so a million rows cost milliseconds here, not seconds
        copy = dataframe.copy(deep=True)
        nbytes = int(copy.memory_usage(index=False, deep=False).sum())
        return _Frame(key, kind, step, lambda: _dataframe_table(copy, cols, as_text), nbytes)
    if data is None or isinstance(data, (str, bytes)) or not all(isinstance(r, (list, tuple)) for r in data):
        warn(key, "%s: data must be a list of rows (lists), got %s; it is skipped", name, type(data).__name__)
        return None
    rows = [list(r) for r in data]
    width = len(rows[0]) if rows else len(columns or [])
    cols = [str(c) for c in columns] if columns is not None else [f"column_{i}" for i in range(width)]
    if any(len(r) != len(cols) for r in rows):
        warn(
            key,
            "%s: every row needs %d values (columns %s), got rows of %s; it is skipped",
            name,
            len(cols),
            cols,
            sorted({len(r) for r in rows}),
        )
        return None
    if len(set(cols)) != len(cols):
        warn(key, "%s: column names repeat (%s); it is skipped", name, cols)
        return None
    table = pa.table({c: _column([r[i] for r in rows], as_text) for i, c in enumerate(cols)})
    return _Frame(key, kind, step, lambda: table, table.nbytes)


def _dataframe_table(frame: Any, cols: list[str], as_text: bool) -> pa.Table:
    """A pandas frame as the table ``log_table`` stores (on the media encoder thread): Arrow converts each column
    at once; a column it cannot hold as one type (mixed values, huge ints) becomes text, as rows do."""
    import pandas as pd  # a frame was given: pandas is there

    def values(series: Any) -> list[Any]:  # as the frame's rows give them: a missing value (pd.NA) is None
        return [None if v is pd.NA else v for v in series.tolist()]

    arrays = []
    for i in range(len(cols)):
        series = frame.iloc[:, i]
        if as_text or isinstance(series.dtype, pd.CategoricalDtype):  # a category column: its values
            arrays.append(_column(values(series), as_text))
            continue
        try:
            array = pa.array(series, from_pandas=False)  # NaN stays NaN, as in a list of rows
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            array = _column(values(series), as_text)  # a list first, then text: as rows are read
        arrays.append(array.cast(pa.string()) if pa.types.is_large_string(array.type) else array)
    return pa.Table.from_arrays(arrays, names=cols)


# kind -> its snapshot ``(key, step, warn, **inputs) -> Snapshot | None`` (None: nothing to store,
# warned about); one entry per kind of MEDIA_KINDS
SNAPSHOTS: dict[str, Callable[..., Snapshot | None]] = {
    "image": image_snapshot,
    "text": text_snapshot,
    "table": table_snapshot,
}
