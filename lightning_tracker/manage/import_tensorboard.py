"""Import TensorBoard logs: each folder of event files becomes a run of a store.

:func:`import_tensorboard` walks a log folder (what ``TensorBoardLogger`` writes:
``lightning_logs/version_N/events.out.tfevents.*``, or any ``SummaryWriter`` folder) and
turns every folder that holds event files into one run, as TensorBoard itself counts
runs. The event files are read with TensorBoard's own reader
(``tensorboard.backend.event_processing.event_accumulator``), which needs the extra
``tensorboard``. What a run gets:

- scalars (``add_scalar``, ``self.log``) as metrics, with their steps and wall times;
- hyperparameters: the HParams plugin's (``add_hparams``, ``TensorBoardLogger.log_hyperparams``)
  and ``hparams.yaml`` beside the event files (Lightning writes it; its nested form wins),
  redacted as the logger redacts them; the plugin's metrics are scalars, imported as such;
- images (``add_image``, ``add_images``: one grid per step), text (``add_text``, under its
  tag without torch's ``/text_summary``) and histograms (``add_histogram``; ``kind`` is
  ``gradient`` when the tag names a gradient, else ``parameter``).

Everything is written by the writers' own producers (metric, media and histogram chunks,
media objects, ``run.json`` and ``config.json``) into a local folder first, then published
by the same mirror a live run uses, documents last; an import cut off leaves a run folder
without ``run.json``, which the next import replaces. The run's id comes from the folder:
its first event's time and a hash of its path inside the log folder and its first event
file, so importing the same logs twice adds nothing (the second time says "already
imported"). The run records the event files it was read from and their sizes
(:data:`IMPORTED_EVENTS` in its session): an import that finds more (events appended, a
new file) says how many it did not import, and ``update=True`` imports that run again
whole, replacing it (old objects removed, documents published last). Object names come
from the run id and the event files (a fixed writer key), so two imports of the same logs
at once write the same names and neither removes what the other publishes; two imports
of different states of one folder at once leave the run of whichever published last.
Each imported run adds a change object ``import`` for the project index.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from lightning_tracker.exceptions import InvalidArgumentError, MissingDependencyError, StorageError
from lightning_tracker.format.codec import dumps, loads
from lightning_tracker.format.documents import writer_identity
from lightning_tracker.format.layout import RUN_FILE, validate_path_name
from lightning_tracker.format.status import FINISHED
from lightning_tracker.read.store import Store
from lightning_tracker.storage import atomic_write
from lightning_tracker.storage.changes import record_change
from lightning_tracker.writers.histograms import HistogramProducer
from lightning_tracker.writers.histograms import to_table as histogram_table
from lightning_tracker.writers.hyperparams import flatten
from lightning_tracker.writers.media import MediaItem, MediaProducer
from lightning_tracker.writers.metrics import MetricsProducer
from lightning_tracker.writers.mirror import Mirror
from lightning_tracker.writers.run_info import RunInfo

__all__ = ["IMPORTED_EVENTS", "ImportedRun", "event_folders", "import_tensorboard", "imported_run_id"]

log = logging.getLogger(__name__)

_INSTALL = "pip install 'lightning-tracker[tensorboard]'"
_HPARAMS_YAML = "hparams.yaml"  # what Lightning's TensorBoardLogger writes beside its event files
_TEXT_SUFFIX = "/text_summary"  # torch's add_text adds it to the tag
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_PUBLISH_ROUNDS = 3
IMPORTED_EVENTS = "imported_events"
"""Key of the imported run's session in ``run.json``: event file name -> bytes imported."""


@dataclass
class ImportedRun:
    """One folder of event files and what became of it.

    Attributes:
        folder: the folder, relative to the log folder (``"."`` for the log folder itself).
        run_id: its run id in the store (the same at every import).
        imported: False when the store held the run already (nothing was written).
        updated: the store held the run, and it was imported again whole (``update=True``).
        new_files, new_bytes: event files (and their bytes) the folder holds beyond what the
            run in the store was imported from; not imported without ``update=True``.
        points, images, texts, histograms, hyperparameters: what was written (counts).
    """

    folder: str
    run_id: str
    imported: bool = False
    updated: bool = False
    new_files: int = 0
    new_bytes: int = 0
    points: int = 0
    images: int = 0
    texts: int = 0
    histograms: int = 0
    hyperparameters: int = 0


def _event_accumulator() -> Any:
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError as err:
        raise MissingDependencyError(
            f"importing TensorBoard logs reads them with TensorBoard's own reader; install it with: {_INSTALL}"
        ) from err
    return event_accumulator


def event_folders(logdir: str) -> list[str]:
    """The folders below ``logdir`` (itself included) that hold TensorBoard event files, sorted.

    Raises:
        InvalidArgumentError: ``logdir`` is not a folder, or holds no event file.
    """
    if not os.path.isdir(logdir):
        what = "is a file" if os.path.exists(logdir) else "does not exist"
        raise InvalidArgumentError(
            f"LOGDIR={logdir!r} {what}; pass the folder TensorBoard reads (TensorBoardLogger's save_dir, "
            "such as ./lightning_logs), which holds events.out.tfevents.* files"
        )
    found = sorted(
        os.path.relpath(folder, logdir)
        for folder, _, names in os.walk(logdir)
        if any("tfevents" in name for name in names)
    )
    if not found:
        raise InvalidArgumentError(
            f"LOGDIR={logdir!r} holds no TensorBoard event files (events.out.tfevents.*) in it or below; "
            "pass the folder TensorBoardLogger or SummaryWriter wrote"
        )
    return found


def _first_event_file(folder: str) -> str:
    return min(name for name in os.listdir(folder) if "tfevents" in name)


def _event_files(folder: str) -> dict[str, int]:
    """The folder's event files and their sizes: what an import reads, recorded in the run."""
    return {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder) if "tfevents" in name}


def _not_imported(events: dict[str, int], storage: Any, prefix: str) -> dict[str, int]:
    """New bytes per event file beyond what the run in the store recorded as imported."""
    try:
        sessions = loads(storage.read_bytes(f"{prefix}/{RUN_FILE}")).get("sessions") or [{}]
        recorded = sessions[0].get(IMPORTED_EVENTS) or {}
    except (ValueError, AttributeError, TypeError):  # not ours to read: nothing to compare with
        recorded = {}
    return {name: size - int(recorded.get(name, 0)) for name, size in events.items() if size > recorded.get(name, 0)}


def _writer_key(run_id: str, events: dict[str, int]) -> str:
    """The import's writer key, from the run and its event files: two imports of the same logs
    write the same object names, so neither ever removes what the other publishes."""
    key = dumps({"run": run_id, "events": events})
    number = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return "".join("abcdefghijklmnopqrstuvwxyz"[(number // 26**i) % 26] for i in range(8))


def imported_run_id(logdir: str, folder: str, start: float) -> str:
    """The run id of an event folder: its start (UTC) like every run id, then 8 characters of a
    hash of its path inside ``logdir`` and its first event file's name, so the same logs
    always get the same id wherever ``logdir`` lies.

    Example:
        >>> import tempfile
        >>> logdir = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(logdir, "version_0"))
        >>> open(os.path.join(logdir, "version_0", "events.out.tfevents.1.host.1.0"), "wb").close()
        >>> run_id = imported_run_id(logdir, "version_0", 0.0)
        >>> run_id[:16], len(run_id), run_id == imported_run_id(logdir, "version_0", 0.0)
        ('19700101-000000-', 24, True)
    """
    key = f"{folder.replace(os.sep, '/')}\0{_first_event_file(os.path.join(logdir, folder))}"
    number = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    digits = "".join(_ALPHABET[(number // 36**i) % 36] for i in range(8))
    return f"{datetime.fromtimestamp(start, tz=timezone.utc):%Y%m%d-%H%M%S}-{digits}"


class _Items:
    """A media snapshot already in host memory (what the producer's encoder resolves)."""

    def __init__(self, items: list[MediaItem]) -> None:
        self.items = items
        self.key, self.kind = items[0].key, items[0].kind

    def resolve(self) -> list[MediaItem]:
        return self.items


def _pixels(encoded: bytes) -> np.ndarray:
    """An image event's PNG as ``H×W×C`` uint8, the form the media producer encodes."""
    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as image:
        if image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGBA")
        pixels = np.asarray(image)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _text_table(value: np.ndarray) -> pa.Table:
    """A text event's strings as a table: one cell, a column of rows, or the rows of a 2-D array."""
    cells = np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v), otypes=[object])(
        value
    )
    if cells.ndim < 2:
        return pa.table({"text": pa.array(np.atleast_1d(cells).tolist(), pa.string())})
    return pa.table({f"column_{i}": pa.array(cells[:, i].tolist(), pa.string()) for i in range(cells.shape[1])})


def _histogram_columns(tag: str, event: Any) -> dict[str, list[Any]]:
    """One ``HistogramEvent`` as a row of the histograms schema.

    TensorBoard keeps bucket right edges (``bucket_limit``); the left edge of the first is
    the histogram's minimum. Edges beyond the finite range are clamped to it.
    """
    h = event.histogram_value
    low, high = float(h.min), float(h.max)
    edges = [low, *(min(max(float(limit), low), high) for limit in h.bucket_limit)]
    return {
        "step": [int(event.step)],
        "time": [float(event.wall_time)],
        "tensor": [tag],
        "kind": ["gradient" if "grad" in tag.lower() else "parameter"],
        "numel": [int(h.num)],
        "edges": [edges],
        "counts": [[int(c) for c in h.bucket]],
        "norm": [math.sqrt(max(float(h.sum_squares), 0.0))],
        "min": [low],
        "max": [high],
        "sum": [float(h.sum)],
        "zeros": [0],  # TensorBoard does not keep them
        "nan": [0],
        "posinf": [0],
        "neginf": [0],
        "update_ratio": [float("nan")],
    }


def _plugin_hparams(accumulator: Any) -> dict[str, Any]:
    """The HParams plugin's hyperparameters of a run (its session start info)."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    data = _plugin(accumulator, metadata.PLUGIN_NAME).get(metadata.SESSION_START_INFO_TAG)
    if data is None:
        return {}
    plugin = plugin_data_pb2.HParamsPluginData.FromString(data)
    out: dict[str, Any] = {}
    for name, value in plugin.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        if kind in ("number_value", "string_value", "bool_value"):
            number = getattr(value, kind)
            out[name] = int(number) if kind == "number_value" and float(number).is_integer() else number
    return out


def _plugin(accumulator: Any, name: str) -> dict[str, Any]:
    """A plugin's tags in the run, each with its content; empty when the run has none of it."""
    try:
        return dict(accumulator.PluginTagToContent(name))
    except KeyError:
        return {}


def _yaml_hparams(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, _HPARAMS_YAML)
    if not os.path.isfile(path):
        return {}
    try:
        import yaml
    except ImportError as err:
        raise MissingDependencyError(f"reading {path} needs PyYAML; install it with: {_INSTALL}") from err
    try:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f)
    except yaml.YAMLError as err:  # a Python object Lightning dumped with a tag: never constructed here
        log.warning("%s is not plain YAML (%s); its hyperparameters are not imported", path, str(err).splitlines()[0])
        return {}
    return loaded if isinstance(loaded, dict) else {}


class _RunImport:
    """Reads one event folder and writes it as a run into a local folder, with the writers' producers."""

    def __init__(self, accumulator: Any) -> None:
        from tensorboard.util import tensor_util

        self.acc = accumulator
        self.tensor_util = tensor_util
        self.key = ""  # set from the run id and the event files once they are known
        self.target = ""
        self.result = ImportedRun("", "")

    def _times(self) -> list[float]:
        tags = self.acc.Tags()
        times = [e.wall_time for t in tags.get("scalars", []) for e in self.acc.Scalars(t)]
        times += [e.wall_time for t in tags.get("images", []) for e in self.acc.Images(t)]
        times += [e.wall_time for t in tags.get("histograms", []) for e in self.acc.Histograms(t)]
        times += [e.wall_time for t in tags.get("tensors", []) for e in self.acc.Tensors(t)]
        return times

    def span(self) -> tuple[float, float]:
        """The first and last wall time of the folder's events (its file's creation when it has none)."""
        times = self._times() or [self.acc.FirstEventTimestamp()]
        return min(times), max(times)

    def _scalar_points(self) -> list[tuple[str, int, float, float]]:
        points = [
            (tag, int(e.step), float(e.wall_time), float(e.value))
            for tag in self.acc.Tags().get("scalars", [])
            for e in self.acc.Scalars(tag)
        ]
        for tag in _plugin(self.acc, "scalars"):  # TF2-style scalars are tensors
            for e in self.acc.Tensors(tag):
                value = self.tensor_util.make_ndarray(e.tensor_proto)
                points.append((tag, int(e.step), float(e.wall_time), float(np.asarray(value).reshape(-1)[0])))
        return points

    def write(self, target: str, info: RunInfo, result: ImportedRun) -> None:
        """Writes the run into the local folder ``target``: chunks and objects, then its documents."""
        self.target, self.result = target, result
        metrics = MetricsProducer(self.target, 0, self.key)
        points = self._scalar_points()
        metrics.write(points)  # one chunk, and the summary a reader computes from it
        self.result.points = len(points)
        self._media()
        self._histograms()
        info.write(self.target, metrics.summary)

    def _media(self) -> None:
        media = MediaProducer(self.target, 0, self.key)
        for tag in self.acc.Tags().get("images", []):
            for e in self.acc.Images(tag):
                pixels = _pixels(e.encoded_image_string)
                media.add(_Items([MediaItem(tag, int(e.step), float(e.wall_time), 0, "image", pixels=pixels)]))
                self.result.images += 1
        for tag in _plugin(self.acc, "text"):
            key = tag[: -len(_TEXT_SUFFIX)] if tag.endswith(_TEXT_SUFFIX) else tag
            for e in self.acc.Tensors(tag):
                frame = _text_table(self.tensor_util.make_ndarray(e.tensor_proto))
                media.add(_Items([MediaItem(key, int(e.step), float(e.wall_time), 0, "text", frame=frame)]))
                self.result.texts += 1
        media.flush()
        media.compact(final=True)

    def _histograms(self) -> None:
        tables = [
            histogram_table(_histogram_columns(tag, e))
            for tag in self.acc.Tags().get("histograms", [])
            for e in self.acc.Histograms(tag)
        ]
        if tables:
            HistogramProducer(self.target, 0, self.key).write([pa.concat_tables(tables)])
            self.result.histograms = len(tables)


def _hyperparameters(accumulator: Any, folder: str) -> dict[str, Any]:
    """``hparams.yaml`` (nested, as Lightning saved it), plus the plugin's values it does not hold."""
    nested = _yaml_hparams(folder)
    flat = set(flatten(nested))
    return {**nested, **{k: v for k, v in _plugin_hparams(accumulator).items() if k not in flat}}


def _publish(local_dir: str, store: Store, prefix: str) -> None:
    """Publishes the written run: objects first, documents last (the mirror's order)."""
    mirror = Mirror(local_dir, store.storage, prefix)
    report = mirror.run_once()
    for _ in range(_PUBLISH_ROUNDS - 1):
        if report.complete:
            return
        report = mirror.run_once()
    if not report.complete:
        raise StorageError(
            f"the import of {prefix} into {store.storage.url} did not complete ({report.error or report.pending}); "
            "run the import again: it finishes what is missing"
        )


def _import_folder(store: Store, logdir: str, folder: str, project: str, update: bool) -> ImportedRun:
    event_accumulator = _event_accumulator()
    path = os.path.join(logdir, folder)
    events = _event_files(path)  # before reading: events appended meanwhile count as new next time
    accumulator = event_accumulator.EventAccumulator(
        path, size_guidance={kind: 0 for kind in event_accumulator.DEFAULT_SIZE_GUIDANCE}, purge_orphaned_data=False
    )
    accumulator.Reload()
    reader = _RunImport(accumulator)
    start, end = reader.span()
    run_id = imported_run_id(logdir, folder, start)
    result = ImportedRun(folder, run_id)
    prefix = f"{project}/{run_id}"
    storage = store.storage
    replacing = storage.exists(f"{prefix}/{RUN_FILE}")
    if replacing:
        new = _not_imported(events, storage, prefix)
        if not new or not update:  # imported before: nothing to add, or the caller decides
            result.new_files, result.new_bytes = len(new), sum(new.values())
            return result
    reader.key = _writer_key(run_id, events)
    parts = [p for p in folder.replace(os.sep, "/").split("/") if p not in ("", ".")]
    name = parts[-1] if parts else os.path.basename(os.path.abspath(logdir))
    group = "/".join(parts[:-1]) or None
    info = RunInfo(run_id, project, name, name, group, [], None, 10.0, storage.full_url(prefix))
    params = _hyperparameters(accumulator, path)
    if params:
        info.log_config(params, step=0)
        result.hyperparameters = len(info.config["flat"])
    with tempfile.TemporaryDirectory(prefix="lightning-tracker-import-") as scratch:
        local_dir = os.path.join(scratch, run_id)
        os.makedirs(local_dir)
        # one session, the logs' own: no meta.json or git.diff, which would describe this import's
        # machine and working tree, not where the logs were written
        session = {"index": 0, "writer_key": reader.key, "start_time": start, "heartbeat": end, **writer_identity()}
        session.update(command=f"imported from TensorBoard logs: {folder}", git_commit=None)
        session[IMPORTED_EVENTS] = events
        info.set_info(status=FINISHED, start_time=start, end_time=end, sessions=[session])
        reader.write(local_dir, info, result)
        # RunInfo stamps the heartbeat with now; the run last wrote at its last event (its duration)
        with open(os.path.join(local_dir, RUN_FILE), "rb") as f:
            doc = loads(f.read())
        doc["heartbeat"] = doc["sessions"][-1]["heartbeat"] = end
        atomic_write(os.path.join(local_dir, RUN_FILE), dumps(doc))
        written = Mirror(local_dir, storage, prefix).local_files()
        if replacing:  # the run reads as arriving until its new documents are published, last
            storage.rm(f"{prefix}/{RUN_FILE}")
        # what an earlier import (cut off, or of fewer events) left that this one does not write;
        # an import of the same logs at once writes the very same names, so none of them goes
        for rel in storage.find(prefix):
            if rel not in written:
                storage.rm(f"{prefix}/{rel}")
        _publish(local_dir, store, prefix)
        shutil.rmtree(local_dir, ignore_errors=True)
    result.imported, result.updated = True, replacing
    try:
        record_change(storage, project, run_id, "import")
    except StorageError as err:  # the run is whole; only the index misses it until `lightning-tracker index`
        log.warning("imported %s, but its change object was not written (%s)", prefix, err)
    return result


def import_tensorboard(
    store: Store,
    logdir: str,
    project: str,
    *,
    update: bool = False,
    on_run: Callable[[ImportedRun], None] | None = None,
) -> list[ImportedRun]:
    """Imports every folder of TensorBoard event files below ``logdir`` as a run of ``project``.

    Args:
        store: the store to import into.
        logdir: the folder TensorBoard reads (``TensorBoardLogger``'s ``save_dir``).
        project: the project the runs go to.
        update: import again, whole, a run whose folder holds event files (or bytes) its
            import did not read (``new_files``); its old objects go, its documents come last.
        on_run: called with each folder's result as it is done (progress display).

    Returns:
        One :class:`ImportedRun` per folder, in folder order; ``imported`` is False for a
        run the store held already.

    Raises:
        InvalidArgumentError: ``logdir`` is not a folder or holds no event file, or
            ``project`` cannot be a folder name.
        MissingDependencyError: TensorBoard is not installed (the extra ``tensorboard``).
    """
    validate_path_name("project", project)
    folders = event_folders(logdir)
    _event_accumulator()  # said before anything is written
    results = []
    for folder in folders:
        result = _import_folder(store, logdir, folder, project, update)
        results.append(result)
        if on_run is not None:
            on_run(result)
    return results
