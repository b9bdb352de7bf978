"""TensorBoard event files next to the run's own data: the only module importing tensorboardX.

Scalars are grouped into one event per step and written from the background writer
(never from the training thread). On object stores the file is rotated so that every
closed file is immutable and uploaded once; TensorBoard reads the files of a folder in
name order, which is the order they were written.

An event file only ever ends with a whole record. TensorBoard stops reading a file at
the first broken record, so events are framed in memory and written at :meth:`flush`;
when a write or its ``fsync`` fails (a full disk), the file is cut back to the last
record known to be on disk and the events are written again at the next flush.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.record_writer import masked_crc32c
from tensorboardX.summary import hparams
from tensorboardX.summary import text as text_summary

from lightning_tracker.format.layout import EVENTS_PREFIX

__all__ = ["TensorBoardWriter"]


def _hparam_value(value: Any) -> str | float | bool:
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


_FLOAT32_MAX = 3.4028234663852886e38


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # int64 two's complement, as protobuf encodes negative numbers
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag_prefix(tag: str) -> bytes:
    """``Summary.Value``: field 1 ``tag`` (length-delimited), then the key of field 2 ``simple_value``."""
    raw = tag.encode("utf-8")
    return b"\x0a" + _varint(len(raw)) + raw + b"\x15"


def _pack_float32(value: float) -> bytes:
    if value > _FLOAT32_MAX or value < -_FLOAT32_MAX:  # finite doubles beyond float32 become ±inf
        value = math.copysign(math.inf, value)
    return struct.pack("<f", value)


def _scalar_event(wall_time: float, step: int, values: list[bytes]) -> bytes:
    """``Event``: field 1 ``wall_time`` (double), field 2 ``step`` (varint), field 5 ``summary``
    holding the encoded ``Summary.Value`` entries ``values``."""
    summary = b"".join(b"\x0a" + _varint(len(v)) + v for v in values)
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + b"\x2a" + _varint(len(summary)) + summary


def _record(event: bytes) -> bytes:
    """One TFRecord: length, its masked CRC-32C, the event, its masked CRC-32C."""
    header = struct.pack("<Q", len(event))
    return header + struct.pack("<I", masked_crc32c(header)) + event + struct.pack("<I", masked_crc32c(event))


def _write_at(fd: int, offset: int, data: bytes) -> None:
    """Writes ``data`` at ``offset`` and makes it durable; raises OSError (``ENOSPC``) otherwise."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
    os.fsync(fd)


class TensorBoardWriter:
    """Writes scalars and hyperparameters of a run as TensorBoard event files.

    Args:
        run_dir: the local folder the event files go into (the run folder or its spool).
        session: the run's session number, part of each file name (resumes never reuse one).

    Example:
        >>> import tempfile
        >>> tb = TensorBoardWriter(tempfile.mkdtemp())
        >>> tb.write_scalars([("loss", 0, 0.0, 0.5), ("loss", 1, 0.0, 0.25)])
        >>> tb.flush()
        >>> os.path.basename(tb.rotate()).startswith("events.out.tfevents.")
        True
    """

    def __init__(self, run_dir: str, session: int = 0) -> None:
        self.run_dir = run_dir
        self.session = session
        self._fd: int | None = None
        self._path: str | None = None
        self._durable = 0  # bytes of the open file known to be whole records on disk
        self._torn = False  # a failed write may have left a partial record after _durable
        self._pending = bytearray()  # framed records not on disk yet, in order
        self._header = b""
        self._count = 0
        self._tags: dict[str, bytes] = {}
        self._histo_tags: dict[str, bytes] = {}

    @property
    def active_file(self) -> str | None:
        """The event file still being appended to (never uploaded while it grows)."""
        return self._path

    def _open(self) -> int:
        if self._fd is None:
            os.makedirs(self.run_dir, exist_ok=True)
            # the suffix keeps names unique and ordered when two files start in one second
            path = os.path.join(
                self.run_dir,
                f"{EVENTS_PREFIX}{str(time.time())[:10]}.{socket.gethostname()}"
                f".{os.getpid()}.s{self.session:03d}.{self._count:05d}.lt",
            )
            # 0666: the umask decides who else may read it, as for every file the tracker writes
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666)
            self._path, self._durable, self._torn = path, 0, False
            self._count += 1
            # every file starts with its version record, written with the first events
            self._header = _record(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        return self._fd

    def _event(self, event: bytes) -> None:
        self._pending += _record(event)

    def write_scalars(self, points: Iterable[tuple[str, int, float, float]]) -> None:
        """Writes points ``(key, step, time, value)``, one event per consecutive step.

        Scalar events are encoded straight to protobuf bytes (an ``Event`` holding a
        ``Summary`` of ``simple_value`` entries): building message objects per point costs
        several times more, on a thread that shares the cores with training.
        """
        values: list[bytes] = []
        cur_step, cur_time = 0, 0.0  # read only once a value is held, and set with it
        tags = self._tags
        for key, step, t, value in points:
            if step != cur_step and values:
                self._event(_scalar_event(cur_time, cur_step, values))
                values = []
            cur_step, cur_time = step, t
            prefix = tags.get(key)
            if prefix is None:
                prefix = tags[key] = _tag_prefix(key)
            values.append(prefix + _pack_float32(value))
        if values:
            self._event(_scalar_event(cur_time, cur_step, values))

    def write_hparams(self, flat_config: Mapping[str, Any], last_metrics: Mapping[str, float]) -> None:
        """Writes the HParams plugin's experiment, session start and end in this run.

        The metric columns of TensorBoard's HParams tab read the last value of each
        metric's own scalar series in this same run, so they show real results.
        """
        hp = {k: _hparam_value(v) for k, v in flat_config.items() if v is not None}
        metrics = {k: v for k, v in last_metrics.items() if isinstance(v, float) and not math.isnan(v)}
        exp, ssi, sei = hparams(hp, metrics)
        now = time.time()
        for summary in (exp, ssi, sei):
            self._event(Event(wall_time=now, summary=summary).SerializeToString())

    def write_histograms(self, table: Any) -> None:
        """Writes histogram rows (a table of ``writers.histograms.SCHEMA``) as ``HistogramProto`` values.

        The tag is ``<kind>s/<tensor>``; bucket limits are the stored right edges, so
        TensorBoard shows exactly the stored bins (NaN and ±inf are not in them). Rows of
        one step share one event. Encoded straight to protobuf bytes, as scalars are
        (a fifth of the cost of building message objects).
        """
        n = table.num_rows
        if not n:
            return
        steps, times = table.column("step").to_pylist(), table.column("time").to_pylist()
        kinds, tensors = table.column("kind").to_pylist(), table.column("tensor").to_pylist()
        tags = [f"{k}s/{t}" for k, t in zip(kinds, tensors, strict=True)]
        edges = table.column("edges").combine_chunks().flatten().to_numpy().reshape(n, -1).astype("<f8")
        counts = table.column("counts").combine_chunks().flatten().to_numpy().reshape(n, -1).astype("<f8")
        norm = table.column("norm").to_numpy(zero_copy_only=False)
        total = table.column("sum").to_numpy(zero_copy_only=False)
        # per row: HistogramProto's min, max, num, sum and sum_squares
        head = np.stack([edges[:, 0], edges[:, -1], counts.sum(axis=1), total, norm * norm], axis=1).astype("<f8")
        limits_key = b"\x32" + _varint(8 * (edges.shape[1] - 1))
        bucket_key = b"\x3a" + _varint(8 * counts.shape[1])
        values: list[bytes] = []
        for i in range(n):
            if i and steps[i] != steps[i - 1]:
                self._event(_scalar_event(times[i - 1], steps[i - 1], values))
                values = []
            row = head[i].tobytes()
            histo = b"".join(
                (
                    b"\x09",
                    row[0:8],
                    b"\x11",
                    row[8:16],
                    b"\x19",
                    row[16:24],
                    b"\x21",
                    row[24:32],
                    b"\x29",
                    row[32:40],
                    limits_key,
                    edges[i, 1:].tobytes(),
                    bucket_key,
                    counts[i].tobytes(),
                )
            )
            tag = self._histo_tags.get(tags[i])
            if tag is None:
                tag = self._histo_tags[tags[i]] = _tag_prefix(tags[i])[:-1]  # the tag field alone
            values.append(tag + b"\x2a" + _varint(len(histo)) + histo)
        self._event(_scalar_event(times[-1], steps[-1], values))

    def write_image(
        self, tag: str, step: int, wall_time: float, png: bytes, height: int, width: int, channels: int
    ) -> None:
        """Writes one PNG-encoded image for TensorBoard's Images tab."""
        image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png)
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        self._event(Event(wall_time=wall_time, step=step, summary=summary).SerializeToString())

    def write_text(self, tag: str, step: int, wall_time: float, markdown: str) -> None:
        """Writes Markdown (a text, a table) for TensorBoard's Text tab."""
        self._event(Event(wall_time=wall_time, step=step, summary=text_summary(tag, markdown)).SerializeToString())

    def flush(self) -> None:
        """Writes the events held in memory and makes them durable (fsync).

        Raises:
            OSError: the disk is full (or failing). The file then ends at its last whole
                record again, and the events stay in memory for the next flush.
        """
        if not self._pending:
            return
        fd = self._open()
        n = len(self._pending)
        data = (self._header if self._durable == 0 else b"") + self._pending[:n]
        try:
            if self._torn:
                os.ftruncate(fd, self._durable)
                self._torn = False
            _write_at(fd, self._durable, data)
        except OSError:
            try:
                os.ftruncate(fd, self._durable)  # shrinking needs no free space
            except OSError:
                self._torn = True  # cut before the next write instead
            raise
        self._durable += len(data)
        del self._pending[:n]

    def rotate(self) -> str | None:
        """Flushes and closes the current file (now immutable) and returns its path; the next
        write opens a new one. Events a failed flush kept go into that next file."""
        if self._fd is None and not self._pending:
            return None
        try:
            self.flush()
        finally:
            path, empty = self._path, self._durable == 0
            if self._fd is not None:
                os.close(self._fd)
            self._fd = self._path = None
            if path is not None and empty:  # nothing reached the disk: leave no empty file behind
                _remove(path)
                path = None
        return path

    close = rotate


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
