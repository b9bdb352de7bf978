"""TensorBoard event files next to the run's own data: the only module importing tensorboardX.

Scalars are grouped into one event per step and written synchronously from the
background writer (never from the training thread). On object stores the file is
rotated so that every closed file is immutable and uploaded once; TensorBoard reads
the files of a folder in name order, which is the order they were written.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.summary import hparams

__all__ = ["TensorBoardWriter"]


def _hparam_value(value: Any) -> str | float | bool:
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


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
        """Writes points ``(key, step, time, value)``, one event per consecutive step."""
        writer = None
        values: list[Summary.Value] = []
        cur_step, cur_time = None, 0.0
        for key, step, t, value in points:
            if step != cur_step and values:
                writer = writer or self._events()
                writer.write_event(Event(wall_time=cur_time, step=cur_step, summary=Summary(value=values)))
                values = []
            cur_step, cur_time = step, t
            values.append(Summary.Value(tag=key, simple_value=value))
        if values:
            writer = writer or self._events()
            writer.write_event(Event(wall_time=cur_time, step=cur_step, summary=Summary(value=values)))

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
