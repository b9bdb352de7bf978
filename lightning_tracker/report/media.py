"""The media panel's data: each run's images, texts and tables, per key and step.

The report embeds what it shows, so it is capped: for each key and run at most
``EMBED_STEPS`` steps (evenly spread, the first and the last always among them), at most
``EMBED_IMAGES`` images per step, as their previews (the index's ``thumbnail`` objects,
at most 128 px, as ``data:`` URIs, each stored once however often it is shown), and the
first ``EMBED_ROWS`` rows of each text or table. The page states the caps and what each
panel left out. The live dashboard lists every step and image by object name; the page
loads them from the server (:class:`MediaFiles`), which answers only for names a run's
media index lists. Each kind's ``renderer`` (:data:`~lightning_tracker.format.layout.MEDIA_KINDS`)
names the function of ``assets/media.js`` that draws it; :data:`RENDERERS` the route that
serves its objects. A kind this version does not know is listed without its object, and
the page says it cannot show it.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.layout import MEDIA_DIR, MEDIA_KINDS, MEDIA_OBJECT_RE
from lightning_tracker.format.schemas import MEDIA
from lightning_tracker.read.cache import read_chunks
from lightning_tracker.read.media import MAX_PREVIEW_BYTES, media_index, object_bytes, read_objects, read_rows
from lightning_tracker.read.store import Run, Store

__all__ = [
    "EMBED_BYTES", "EMBED_IMAGES", "EMBED_ROWS", "EMBED_STEPS", "RENDERERS", "SERVE_ROWS", "MediaFiles",
    "even_steps", "fit_budget", "media_limits", "media_part", "table_json",
]  # fmt: skip

EMBED_STEPS = 32  # steps of one key and run embedded in a report
EMBED_IMAGES = 16  # images of one step embedded in a report (the first ones by index)
EMBED_ROWS = 200  # rows of a text or table embedded in a report
EMBED_BYTES = 30_000_000  # the previews of a whole report, as data URIs: past this every panel keeps fewer steps
SERVE_ROWS = 10_000  # rows of a text or table the dashboard sends to the page

# renderer (MediaKind.renderer, a name of RENDERERS in media.js) -> the dashboard's route that serves
# its objects; one entry per renderer a kind of MEDIA_KINDS names. "image": its preview, and the object itself by
# URL (route media/); "table": its rows as JSON (route api/table/)
RENDERERS = {
    "image": "media",
    "table": "table",
}
# what the writer names an object: its sha256 and the extension of its format
_OBJECT_NAME = MEDIA_OBJECT_RE


def _renderer(kind: str) -> str | None:
    """The renderer that draws ``kind``; None for a kind this version does not know (a newer one logged it).

    Example:
        >>> _renderer("text"), _renderer("hologram")
        ('table', None)
    """
    known = MEDIA_KINDS.get(kind)
    return known.renderer if known is not None and known.renderer in RENDERERS else None


def _content_type(kind: str, name: str) -> str | None:
    """The media type of the object ``name`` of ``kind``; None when the kind has no such format."""
    known = MEDIA_KINDS.get(kind)
    return None if known is None else known.content_types.get(name.rsplit(".", 1)[-1])


def media_limits(embed: bool) -> dict[str, int]:
    """The caps on what a report embeds (``embed``) or the dashboard sends, stated in the page."""
    if embed:
        return {"steps": EMBED_STEPS, "images": EMBED_IMAGES, "rows": EMBED_ROWS, "bytes": EMBED_BYTES}
    return {"rows": SERVE_ROWS}


def even_steps(steps: Sequence[int], most: int) -> list[int]:
    """At most ``most`` of ``steps`` (sorted, distinct), evenly spread, the first and last always kept.

    Example:
        >>> even_steps(list(range(0, 100, 10)), 4)
        [0, 30, 60, 90]
        >>> even_steps([5, 7], 32)
        [5, 7]
    """
    if len(steps) <= most:
        return list(steps)
    picks = np.unique(np.rint(np.linspace(0, len(steps) - 1, most)).astype(np.int64))
    return [steps[i] for i in picks.tolist()]


def fit_budget(media: dict[str, dict[str, Any]], files: dict[str, str], budget: int | None = None) -> None:
    """Thins the embedded steps of every panel, evenly, until the previews fit ``budget`` characters
    (default ``EMBED_BYTES``).

    ``media`` maps a run to its panels (see :func:`media_part`) and ``files`` the preview
    names to data URIs; both are changed in place, and previews no panel shows any more are
    dropped. Each panel keeps its first and last step; its ``total_steps`` still counts all.

    Example:
        >>> panel = {"steps": [0, 1, 2, 3], "items": [[{"kind": "image", "thumb": f"t{i}"}] for i in range(4)]}
        >>> files = {f"t{i}": "x" * 10 for i in range(4)}
        >>> fit_budget({"p/r1": {"k": panel}}, files, budget=25)
        >>> panel["steps"], sorted(files)
        ([0, 3], ['t0', 't3'])
    """

    def shown() -> set[str]:
        return {
            item.get("thumb")
            for panels in media.values()
            for panel in panels.values()
            for step in panel["items"]
            for item in step
        }

    budget = EMBED_BYTES if budget is None else budget
    most = max((len(panel["steps"]) for panels in media.values() for panel in panels.values()), default=0)
    while most > 2 and sum(len(files.get(name, "")) for name in shown() if name) > budget:
        most = max(2, most // 2)
        for panel in (panel for panels in media.values() for panel in panels.values()):
            keep = set(even_steps(panel["steps"], most))
            kept = [(step, items) for step, items in zip(panel["steps"], panel["items"], strict=True) if step in keep]
            panel["steps"], panel["items"] = [s for s, _ in kept], [i for _, i in kept]
    for name in set(files) - shown():
        del files[name]


def table_json(frame: pd.DataFrame, max_rows: int, total: int | None = None) -> dict[str, Any]:
    """A text or table for the page: ``columns``, the first ``max_rows`` ``rows`` and the ``total`` of rows.

    ``total`` is the table's row count when ``frame`` holds only its first rows (default: ``len(frame)``).

    Values keep their JSON types (numbers stay numbers, so the page sorts them as numbers);
    anything else becomes its text.

    Example:
        >>> table_json(pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]}), 2)
        {'columns': ['a', 'b'], 'rows': [[1, 'x'], [2, None]], 'total': 3}
    """
    head = frame.head(max_rows)
    rows = [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in frame.columns], "rows": rows, "total": len(frame) if total is None else total}


def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return json.dumps(value.tolist() if isinstance(value, np.ndarray) else value, default=str)
    return None if pd.isna(value) is True else str(value)


def _item(row: dict[str, Any], live: bool) -> dict[str, Any]:
    caption = row["caption"] if isinstance(row["caption"], str) else None
    kind = str(row["kind"])
    renderer = _renderer(kind)
    item: dict[str, Any] = {"index": int(row["index"]), "kind": kind, "renderer": renderer, "caption": caption}
    if renderer == "image":
        thumb = row["thumbnail"] if isinstance(row["thumbnail"], str) else row["object"]
        item.update(width=int(row["width"]), height=int(row["height"]), thumb=thumb)
        if live:
            item["object"] = row["object"]
    elif renderer == "table":
        item.update(columns=int(row["width"]), rows=int(row["height"]), object=row["object"])
    # renderer None: neither read nor served; the page says this version cannot show the kind
    return item


def media_part(run: Run, *, embed: bool) -> dict[str, Any]:
    """What the media panel shows of ``run``: ``{"keys": {key: panel}, "files": {name: data URI}}``.

    A panel is ``{"steps": [...], "items": [[item, ...] per step], "total_steps": n,
    "total_items": n}``; ``embed`` keeps at most ``EMBED_STEPS`` steps and
    ``EMBED_IMAGES`` images per step, puts the previews in ``files`` and the first
    ``EMBED_ROWS`` rows of each text or table in its item (``table``). An object that
    cannot be read is marked ``missing`` (with why, for a table) and the others are shown.
    Empty when the run logged no media.

    Example:
        >>> import numpy as np, tempfile
        >>> from lightning_tracker import TrackerLogger
        >>> from lightning_tracker.writers.media import MediaItem, MediaProducer
        >>> save_dir = tempfile.mkdtemp()
        >>> logger = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False)
        >>> logger.log_metrics({"loss": 1.0}, step=3)
        >>> logger.finalize("success")
        >>> class Shot:
        ...     def resolve(self):
        ...         return [MediaItem("samples", 3, 0.0, 0, "image", "a cat", pixels=np.zeros((4, 6, 3), np.uint8))]
        >>> producer = MediaProducer(f"{save_dir}/p/r1", session=0, writer="w")
        >>> producer.add(Shot())
        >>> _ = producer.flush()
        >>> part = media_part(Store(save_dir).run("r1"), embed=True)
        >>> panel = part["keys"]["samples"]
        >>> panel["steps"], panel["items"][0][0]["caption"], part["files"][panel["items"][0][0]["thumb"]][:15]
        ([3], 'a cat', 'data:image/webp')
    """
    index = run.media(skip_damaged=True)
    if index.empty:
        return {}
    keys: dict[str, Any] = {}
    for key, group in index.groupby("key", sort=True):
        all_steps = sorted(set(group["step"].tolist()))
        shown = even_steps(all_steps, EMBED_STEPS) if embed else all_steps
        by_step = {step: rows for step, rows in group.groupby("step", sort=True)}
        items = []
        for step in shown:
            rows = by_step[step].sort_values("index", kind="stable")
            if embed:
                rows = rows.head(EMBED_IMAGES)
            items.append([_item(row, not embed) for row in rows.to_dict("records")])
        keys[str(key)] = {"steps": shown, "items": items, "total_steps": len(all_steps), "total_items": len(group)}
    part: dict[str, Any] = {"keys": keys, "files": {}}
    if embed:
        part["files"] = _embed(run, index, keys)
    return part


def _embed(run: Run, index: pd.DataFrame, keys: dict[str, Any]) -> dict[str, str]:
    """Reads the previews and the tables the panels show; returns the previews as data URIs."""
    items = [item for panel in keys.values() for step in panel["items"] for item in step]
    images = {item["thumb"]: item["kind"] for item in items if item["renderer"] == "image"}
    thumbs = sorted(name for name in images if _OBJECT_NAME.fullmatch(name) and _content_type(images[name], name))
    # every preview checked against its name (its sha256): a file planted in media-files/ is not embedded
    found = read_objects(run.storage, run.path, dict.fromkeys(thumbs), MAX_PREVIEW_BYTES)
    files = {}
    for name, data in found.items():
        if isinstance(data, bytes):
            content_type = _content_type(images[name], name)
            files[name] = f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
    rows = index.drop_duplicates("object").set_index("object", drop=False)
    for item in items:
        if item["renderer"] == "image":
            if item["thumb"] not in files:
                failed = found.get(item["thumb"])
                item["missing"] = str(failed) if isinstance(failed, StorageError) else "the preview is missing"
        elif item["renderer"] == "table":
            try:
                frame, total = read_rows(run.storage, run.path, rows.loc[item["object"]], EMBED_ROWS)
                item["table"] = table_json(frame, EMBED_ROWS, total)
            except (StorageError, ValueError, OSError) as err:  # one unreadable table, not the report
                item["missing"] = str(err)
    return files


class MediaFiles:
    """The media objects the live dashboard serves: only those the run's media index lists.

    A run's index is read once and read again (new chunks only, through the store's
    :class:`~lightning_tracker.read.cache.ReadCache`) when a name is asked for that it
    does not list, so a new image is found as soon as its index chunk is stored. Objects
    never change under their name: what was answered is kept (up to ``keep_bytes``).

    Args:
        store: the store (with a cache: the dashboard's reader).
        project: answer only for runs of this project (None: any).
        keep_bytes: the most bytes of answers kept for the next request.
    """

    def __init__(self, store: Store, project: str | None = None, keep_bytes: int = 64 << 20) -> None:
        self.store = store
        self.project = project
        self.keep_bytes = keep_bytes
        self._lock = threading.Lock()
        self._listed: dict[str, dict[str, tuple[str, str | None]]] = {}  # run path -> name -> (kind, sha256)
        self._kept: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._kept_bytes = 0

    def _lookup(self, run_path: str, name: str) -> tuple[str, str | None] | None:
        with self._lock:
            found = self._listed.get(run_path, {}).get(name)
        if found is not None:
            return found
        table = read_chunks(
            self.store.storage,
            f"{run_path}/{MEDIA_DIR}",
            MEDIA,
            self.store.cache,
            what="media",
            on_damaged=lambda problem: None,
        )
        listed: dict[str, tuple[str, str | None]] = {}
        for row in media_index(table).to_dict("records"):
            listed[row["object"]] = (str(row["kind"]), row["sha256"])
            if isinstance(row["thumbnail"], str) and row["thumbnail"] not in listed:
                listed[row["thumbnail"]] = (str(row["kind"]), None)  # a preview has no recorded sha256
        with self._lock:
            self._listed[run_path] = listed
        return listed.get(name)

    def _keep(self, key: tuple[str, str], body: bytes) -> None:
        with self._lock:
            if key in self._kept or len(body) > self.keep_bytes:
                return
            self._kept[key] = body
            self._kept_bytes += len(body)
            while self._kept_bytes > self.keep_bytes:
                self._kept_bytes -= len(self._kept.popitem(last=False)[1])

    def answer(self, project: str, run_id: str, name: str, route: str) -> tuple[bytes, str] | None:
        """``(body, content type)`` of an image (``route="media"``) or a table as JSON (``"table"``).

        None when the run's media index does not list ``name`` as a kind that route serves
        (the server answers 404); ``project`` and ``run_id`` must be checked folder names already.

        Raises:
            StorageError: the object is listed but missing, or does not match its sha256.
        """
        if (self.project is not None and project != self.project) or not _OBJECT_NAME.fullmatch(name):
            return None
        run_path = f"{project}/{run_id}"
        listed = self._lookup(run_path, name)
        renderer = None if listed is None else _renderer(listed[0])
        if listed is None or renderer is None or RENDERERS[renderer] != route:
            return None
        content_type = _content_type(listed[0], name) if route == "media" else "application/json"
        if content_type is None:
            return None
        with self._lock:
            body = self._kept.get((run_path, name))
            if body is not None:
                self._kept.move_to_end((run_path, name))
                return body, content_type
        if route == "media":
            body = object_bytes(self.store.storage, run_path, name, listed[1])
        else:
            row = pd.Series({"object": name, "sha256": listed[1], "kind": listed[0]})
            frame, total = read_rows(self.store.storage, run_path, row, SERVE_ROWS)
            body = json.dumps(table_json(frame, SERVE_ROWS, total), separators=(",", ":")).encode("utf-8")
        self._keep((run_path, name), body)
        return body, content_type
