"""The report: one self-contained HTML file with every script and all data inside.

Plotly's JavaScript comes from the installed ``plotly`` Python package and is inlined;
the data is embedded as gzip-compressed JSON (Base64) that the page unpacks with the
browser's ``DecompressionStream``. The file opens offline, from disk or an attachment,
and is written to a local path or any fsspec URL (through :class:`~lightning_tracker.storage.Storage`).
Logged images are embedded as previews, capped per key and run, and texts and tables
with a row cap (the page states both; see :mod:`lightning_tracker.report.media`).
"""

from __future__ import annotations

import base64
import gzip
import html
import os
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError
from lightning_tracker.read.store import Run, Store
from lightning_tracker.report.data import DEFAULT_MAX_POINTS, build_payload, payload_json
from lightning_tracker.storage import Storage

__all__ = ["render_page", "write_report"]


# in load order: each file adds to the page's namespace what the later ones use; query.js
# (the filter grammar, also require()d by the tests) first, app.js (which starts the page) last
_SCRIPTS = ("query.js", "format.js", "charts.js", "views.js", "media.js", "groups.js", "app.js")


@cache
def _asset(name: str) -> str:
    return (resources.files("lightning_tracker.report") / "assets" / name).read_text("utf-8")


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as err:
        raise MissingDependencyError(
            "the report needs the package 'plotly' for its charts; install it with: pip install plotly"
        ) from err
    return get_plotlyjs()


def render_page(payload: dict[str, Any] | None, *, live_interval: float = 0.0, title: str | None = None) -> str:
    """The HTML page: with ``payload`` embedded (report), or fetching ``api/data`` (dashboard).

    Args:
        payload: the data from :func:`~lightning_tracker.report.data.build_payload`;
            None for the live dashboard, which loads ``api/data`` itself.
        live_interval: seconds between reloads of ``api/data`` (dashboard only).
        title: the page title (default: the payload's).

    Example:
        >>> page = render_page(None, live_interval=5, title="live")
        >>> '<title>live</title>' in page and 'data-live="5"' in page
        True
    """
    if payload is not None:
        packed = gzip.compress(payload_json(payload).encode("utf-8"), compresslevel=3, mtime=0)
        encoded = base64.b64encode(packed).decode("ascii")
        data = f'<script id="lt-data" type="application/gzip-base64">{encoded}</script>'
    else:
        data = f'<script id="lt-data" type="application/json" data-live="{live_interval:g}"></script>'
    name = html.escape(title or (payload or {}).get("title") or "lightning-tracker")
    page = _asset("page.html")
    # the placeholders are filled in one pass so no inserted text is scanned again
    app = "\n;\n".join(_asset(name) for name in _SCRIPTS)
    parts = {"TITLE": name, "CSS": _asset("app.css"), "PLOTLY": _plotly_js(), "APP": app, "DATA": data}
    out, rest = [], page
    while "{{" in rest:
        head, _, tail = rest.partition("{{")
        key, _, rest = tail.partition("}}")
        out += [head, parts[key]]
    out.append(rest)
    return "".join(out)


def write_report(
    store: Store,
    path: str | os.PathLike[str],
    runs: Sequence[Run] | None = None,
    *,
    project: str | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    title: str | None = None,
    on_run: Callable[[Run], None] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Writes the report of ``runs`` (default: every run of ``project``) to ``path``.

    Args:
        store: the store the runs come from.
        path: the HTML file to write: a local path (its folder is created) or any fsspec
            URL (``"s3://bucket/reports/sweep.html"``), written in one put.
        runs: the runs to include.
        project: the project when ``runs`` is not given.
        max_points: the most points drawn per line; longer series are bucketed with
            min/max envelopes (the data is not sampled, only its drawing).
        title: the page title.
        on_run: called after each run is read (for progress bars).
        storage_options: options for ``path``'s filesystem (credentials, endpoint), as
            for the store; the store's own are not used for the report.

    Returns:
        The absolute path of the report, or its URL (credentials removed).

    Raises:
        InvalidArgumentError: there are no runs to report, or ``path`` is an existing folder.

    Example:
        >>> import tempfile
        >>> from lightning_tracker import TrackerLogger
        >>> logger = TrackerLogger("memory://doc-report", name="p", version="r1")
        >>> logger.log_metrics({"loss": 1.0}, step=0)
        >>> logger.finalize("success")
        >>> out = write_report(Store("memory://doc-report"), f"{tempfile.mkdtemp()}/report.html")
        >>> out.endswith("report.html") and os.path.getsize(out) > 1_000_000
        True
        >>> write_report(Store("memory://doc-report"), "memory://reports/p.html")
        'memory://reports/p.html'
        >>> write_report(Store("memory://doc-report"), "memory://reports/q.html", project="nope")
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: there are no runs to report in memory://doc-report ...
    """
    target = Storage(path, storage_options)
    if target.is_local and os.path.isdir(target.root):
        raise InvalidArgumentError(
            f"output={os.fspath(path)!r} is a folder; pass a file name such as "
            f"{os.path.join(os.fspath(path), 'report.html')!r}"
        )
    if runs is None:
        runs = store.runs(project)
    if not runs:
        scope = f" (project={project!r})" if project is not None else ""
        raise InvalidArgumentError(
            f"there are no runs to report in {store.storage.url}{scope}, so the report would be empty; "
            "check the store URL, the project name and any filter that chose the runs"
        )
    payload = build_payload(store, runs, project=project, max_points=max_points, title=title, on_run=on_run)
    # locally a temporary file created exclusively next to the target, then renamed over it
    # (a link planted at a predictable name is never followed, no reader sees half a page);
    # an object store takes the page in one put
    target.write_bytes("", render_page(payload).encode("utf-8"))
    return target.root if target.is_local else target.url
