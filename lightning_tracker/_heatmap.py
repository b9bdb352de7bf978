"""PNG heatmaps of one tensor's histograms over steps (``lightning-tracker hist``).

Each step has its own edges; the counts are spread onto one value grid shared by all
steps through each step's cumulative distribution (linear inside a bin), so columns are
comparable and no count is lost. Uses matplotlib's object API (no pyplot global state).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["regrid", "render_heatmap"]


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
    mesh = ax.pcolormesh(x, grid, masked, norm=LogNorm(vmin=min(1.0, vmax), vmax=vmax), cmap="viridis",
                         shading="flat")  # fmt: skip
    fig.colorbar(mesh, ax=ax, label="count")
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png")
