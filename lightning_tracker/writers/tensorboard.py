"""TensorBoard event files next to the run's own data: the only module importing tensorboardX.

Scalars are grouped into one event per step and written synchronously from the
background writer (never from the training thread). On object stores the file is
rotated so that every closed file is immutable and uploaded once; TensorBoard reads
the files of a folder in name order, which is the order they were written.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.summary import hparams

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


class TensorBoardWriter:
    """Writes scalars and hyperparameters of a run as TensorBoard event files.

    Args:
        run_dir: the local folder the event files go into (the run folder or its spool).
        session: the run's session number, part of each file name (resumes never reuse one).
    """

    def __init__(self, run_dir: str, session: int = 0) -> None:
        self.run_dir = run_dir
        self.session = session
        self._writer: EventsWriter | None = None
        self._count = 0
        self._tags: dict[str, bytes] = {}
        self._histo_tags: dict[str, bytes] = {}

    @property
    def active_file(self) -> str | None:
        """The event file still being appended to (never uploaded while it grows)."""
        return None if self._writer is None else self._writer._file_name

    def _events(self) -> EventsWriter:
        if self._writer is None:
            os.makedirs(self.run_dir, exist_ok=True)
            # the suffix keeps names unique and ordered when two files start in one second
            suffix = f".{os.getpid()}.s{self.session:03d}.{self._count:05d}.lt"
            self._writer = EventsWriter(os.path.join(self.run_dir, "events"), suffix)
            self._count += 1
        return self._writer

    def write_scalars(self, points: Iterable[tuple[str, int, float, float]]) -> None:
        """Writes points ``(key, step, time, value)``, one event per consecutive step.

        Scalar events are encoded straight to protobuf bytes (an ``Event`` holding a
        ``Summary`` of ``simple_value`` entries): building message objects per point costs
        several times more, on a thread that shares the cores with training.
        """
        writer = None
        values: list[bytes] = []
        cur_step, cur_time = 0, 0.0  # read only once a value is held, and set with it
        tags = self._tags
        for key, step, t, value in points:
            if step != cur_step and values:
                writer = writer or self._events()
                writer._write_serialized_event(_scalar_event(cur_time, cur_step, values))
                values = []
            cur_step, cur_time = step, t
            prefix = tags.get(key)
            if prefix is None:
                prefix = tags[key] = _tag_prefix(key)
            values.append(prefix + _pack_float32(value))
        if values:
            writer = writer or self._events()
            writer._write_serialized_event(_scalar_event(cur_time, cur_step, values))

    def write_hparams(self, flat_config: Mapping[str, Any], last_metrics: Mapping[str, float]) -> None:
        """Writes the HParams plugin's experiment, session start and end in this run.

        The metric columns of TensorBoard's HParams tab read the last value of each
        metric's own scalar series in this same run, so they show real results.
        """
        hp = {k: _hparam_value(v) for k, v in flat_config.items() if v is not None}
        metrics = {k: v for k, v in last_metrics.items() if isinstance(v, float) and not math.isnan(v)}
        exp, ssi, sei = hparams(hp, metrics)
        writer = self._events()
        now = time.time()
        for summary in (exp, ssi, sei):
            writer.write_event(Event(wall_time=now, summary=summary))

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
        writer = self._events()
        values: list[bytes] = []
        for i in range(n):
            if i and steps[i] != steps[i - 1]:
                writer._write_serialized_event(_scalar_event(times[i - 1], steps[i - 1], values))
                values = []
            row = head[i].tobytes()
            histo = b"".join((
                b"\x09", row[0:8], b"\x11", row[8:16], b"\x19", row[16:24], b"\x21", row[24:32], b"\x29", row[32:40],
                limits_key, edges[i, 1:].tobytes(), bucket_key, counts[i].tobytes(),
            ))  # fmt: skip
            tag = self._histo_tags.get(tags[i])
            if tag is None:
                tag = self._histo_tags[tags[i]] = _tag_prefix(tags[i])[:-1]  # the tag field alone
            values.append(tag + b"\x2a" + _varint(len(histo)) + histo)
        writer._write_serialized_event(_scalar_event(times[-1], steps[-1], values))

    def flush(self) -> None:
        """Makes what was written durable (fsync)."""
        if self._writer is not None:
            self._writer.flush()

    def rotate(self) -> str | None:
        """Closes the current file (now immutable) and returns its path; the next write opens a new one."""
        if self._writer is None:
            return None
        path = self._writer._file_name
        self._writer.close()
        self._writer = None
        return path

    close = rotate
