"""Snapshots of what ``log_image``, ``log_text`` and ``log_table`` receive, taken on the training thread.

A snapshot owns a copy of the data, so the caller may change or free its tensors at once,
and costs the training thread as little as it can: a CUDA tensor is converted to uint8 on
its device and copied into pinned host memory asynchronously (an event marks the copy's
end; nothing waits for it here), a CPU tensor or an array is copied, a figure is rendered.
Conversion to pixels, encoding and writing happen on the flusher thread, in
:mod:`lightning_tracker.writers.media`.

Input that is not an image (a wrong shape, dtype or type, a closed figure) is skipped with
one warning per key naming what was received and what is accepted; it never raises.
:data:`SNAPSHOTS` gives each kind of :data:`~lightning_tracker.format.layout.MEDIA_KINDS`
its snapshot; ``TrackerLogger.log_<kind>`` takes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from lightning_tracker.writers.media import MediaItem, Snapshot

__all__ = ["ACCEPTED", "SNAPSHOTS", "image_snapshot", "table_snapshot", "text_snapshot"]

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
    """The images of one ``log_image`` call; ``resolve`` runs on the flusher."""

    def __init__(self, key: str, step: int, wall_time: float, kind: str = "image") -> None:
        self.key, self.step, self.time, self.kind = key, step, wall_time, kind
        self.parts: list[tuple[int, str | None, Callable[[], np.ndarray]]] = []

    def resolve(self) -> list[MediaItem]:
        return [
            MediaItem(self.key, self.step, self.time, index, self.kind, caption, pixels=get())
            for index, caption, get in self.parts
        ]


def _tensor_part(tensor: Any) -> Callable[[], np.ndarray]:
    import torch

    t = tensor.detach()
    _check_shape(tuple(t.shape), channels_first=True)
    kind = _kind_of_dtype(t.dtype)
    if kind == "uint16":  # torch's uint16 has no NumPy or device conversion to rely on
        raise _Bad("dtype torch.uint16 (pass tensor.numpy() for a 16-bit grey image)")
    if t.device.type == "cuda":
        if kind == "float":  # on the device: a quarter of the bytes to copy, no host work
            t = (torch.nan_to_num(t.float(), nan=0.0).clamp_(0.0, 1.0) * 255.0).round_().to(torch.uint8)
        elif kind == "bool":
            t = t.to(torch.uint8) * 255
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(t.device))  # the copy's stream, on the tensor's own device

        def resolve() -> np.ndarray:  # on the flusher: the only wait for the copy
            done.synchronize()
            return to_pixels(host.numpy(), channels_first=True)

        return resolve
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
    return shot


class _Frame:
    def __init__(self, item: MediaItem) -> None:
        self.key, self.item = item.key, item

    def resolve(self) -> list[MediaItem]:
        return [self.item]


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
        rows = dataframe.to_dict("split")["data"]
    else:
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
    return _Frame(MediaItem(key, step, time.time(), 0, kind, frame=table))


# kind -> its snapshot ``(key, step, warn, **inputs) -> Snapshot | None`` (None: nothing to store,
# warned about); one entry per kind of MEDIA_KINDS
SNAPSHOTS: dict[str, Callable[..., Snapshot | None]] = {
    "image": image_snapshot,
    "text": text_snapshot,
    "table": table_snapshot,
}
