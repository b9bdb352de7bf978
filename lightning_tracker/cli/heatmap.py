"""PNG heatmaps of one tensor's histograms over steps (``lightning-tracker hist``).

Each step has its own edges; the counts are spread onto one value grid shared by all
steps through each step's cumulative distribution (linear inside a bin), so columns are
comparable and no count is lost. Uses matplotlib's object API (no pyplot global state).
File names come from stored tensor names and kinds, so :func:`write_heatmaps` makes each
one a single safe name inside the output folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lightning_tracker.exceptions import InvalidArgumentError, NothingMatchedError
from lightning_tracker.storage import atomic_write

if TYPE_CHECKING:
    from lightning_tracker.read.run import Run

__all__ = ["png_name", "regrid", "render_heatmap", "write_heatmaps"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")


def png_name(kind: str, tensor: str) -> str:
    """A file name for the heatmap of ``tensor``'s ``kind`` histograms: one name, no folders.

    Characters other than letters, digits and ``._=+-`` become ``_``; a name that needed
    that gets a short hash of the original, so ``cls/head`` and ``cls_head`` stay apart.

    Example:
        >>> png_name("gradient", "encoder.0.weight")
        'gradient-encoder.0.weight.png'
        >>> png_name("gradient", "cls/head"), png_name("../..", "x")
        ('gradient-cls_head-9c30e84f.png', '_._..-x-2977886c.png')
    """
    stem = f"{kind}-{tensor}"
    safe = _UNSAFE.sub("_", stem)[:120]
    if safe.startswith("."):  # never a hidden file, nor "." or ".."
        safe = f"_{safe[1:]}"
    if safe != stem:
        safe = f"{safe}-{hashlib.sha256(stem.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return f"{safe}.png"


def regrid(edges: np.ndarray, counts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Counts of one histogram spread onto the bins of ``grid`` (bins may differ in range).

    Example:
        >>> regrid(np.array([0.0, 1.0, 2.0]), np.array([2, 4]), np.array([0.0, 0.5, 1.0, 2.0, 3.0]))
        array([1., 1., 4., 0.])
    """
    cdf = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    return np.diff(np.interp(grid, np.asarray(edges, dtype=np.float64), cdf))


def render_heatmap(df: pd.DataFrame, path: str, title: str, rows: int = 128) -> None:
    """Writes a steps × values heatmap of one tensor's histograms (rows of ``Run.histograms()``) as PNG.

    Args:
        df: the rows of one tensor and kind, any step order.
        path: the PNG file to write.
        title: the plot title.
        rows: bins of the shared value axis.

    Example:
        >>> import os, tempfile
        >>> df = pd.DataFrame({"step": [0, 1], "edges": [np.linspace(-1, 1, 5), np.linspace(-2, 2, 5)],
        ...                    "counts": [np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])]})
        >>> path = os.path.join(tempfile.mkdtemp(), "w.png")
        >>> render_heatmap(df, path, "gradient w")
        >>> open(path, "rb").read(4)
        b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    df = df.sort_values("step")
    steps = df["step"].to_numpy(dtype=np.float64)
    lo = min(float(e[0]) for e in df["edges"])
    hi = max(float(e[-1]) for e in df["edges"])
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    grid = np.linspace(lo, hi, rows + 1)
    image = np.stack([regrid(e, c, grid) for e, c in zip(df["edges"], df["counts"], strict=True)], axis=1)
    if len(steps) > 1:
        mids = (steps[1:] + steps[:-1]) / 2
        x = np.concatenate([[steps[0] - (mids[0] - steps[0])], mids, [steps[-1] + (steps[-1] - mids[-1])]])
    else:
        x = np.array([steps[0] - 0.5, steps[0] + 0.5])
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    masked = np.ma.masked_less_equal(image, 0)
    vmax = max(float(image.max()), 1.0)
    mesh = ax.pcolormesh(x, grid, masked, norm=LogNorm(vmin=min(1.0, vmax), vmax=vmax), cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label="count")
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    # stored names are text: no mathtext to parse, and control characters drawn as escapes
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in title.replace("$", r"\$"))
    ax.set_title(shown)
    with warnings.catch_warnings():  # a glyph the font lacks is drawn as a box, not reported
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig.tight_layout()
        atomic_write(path, lambda f: fig.savefig(f, format="png"))


def write_heatmaps(hist: pd.DataFrame, out: str, run: Run, *, pattern: str = "*", kind: str | None = None) -> list[str]:
    """Writes one heatmap per tensor and kind of ``hist`` (``run.histograms()``) into the folder ``out``.

    Args:
        hist: the run's histograms.
        out: the folder to write into (created if missing).
        run: the run (its id and name label the plots and the errors).
        pattern: the tensors to draw (fnmatch pattern).
        kind: only ``"gradient"`` or only ``"parameter"`` histograms; None for both.

    Returns:
        The paths written, each directly inside ``out`` (see :func:`png_name`).

    Raises:
        NothingMatchedError: ``pattern`` matches no tensor.
        InvalidArgumentError: a path would leave ``out``
            (never, with :func:`png_name`: checked again right before writing).
    """
    if kind:
        hist = hist[hist["kind"] == kind]
    tensors = sorted(set(hist["tensor"]))
    selected = [t for t in tensors if fnmatch.fnmatchcase(t, pattern)]
    if not selected:
        known = ", ".join(map(repr, tensors[:10])) + (" …" if len(tensors) > 10 else "")
        raise NothingMatchedError(
            f"PATTERN={pattern!r} matches no tensor with histograms in run {run.id}"
            + (f"; its tensors are: {known}" if tensors else "; record some with callbacks=[GradientMonitor()]")
        )
    os.makedirs(out, exist_ok=True)
    folder = os.path.realpath(out)
    paths = []
    for (tensor, which), rows in hist[hist["tensor"].isin(selected)].groupby(["tensor", "kind"], sort=True):
        path = os.path.join(folder, png_name(str(which), str(tensor)))
        if os.path.dirname(os.path.abspath(path)) != folder:
            raise InvalidArgumentError(f"refusing to write {path!r}: it is not directly inside --out={out!r}")
        render_heatmap(rows, path, f"{which} {tensor} ({run.name})")
        paths.append(path)
    return paths
