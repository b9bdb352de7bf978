"""When mirror rounds run: the live run's mirror thread, and rounds until a deadline.

:mod:`.mirror` says what one round does; these loops decide when rounds run and how a
failed one is retried (one back-off, at most 30 s between rounds). ``finalize`` runs
rounds until its deadline; ``lightning-tracker sync`` runs a single round.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from lightning_tracker.writers.mirror import Mirror, MirrorReport

__all__ = ["MAX_BACKOFF_S", "background_priority", "serve", "upload_until"]

MAX_BACKOFF_S = 30.0  # the longest wait between failed rounds of a live run


def serve(
    mirror: Mirror,
    stop: threading.Event,
    wake: threading.Event,
    warn: Callable[..., None],
    poll: Callable[[], object] = lambda: None,
) -> None:
    """The live run's mirror thread: a round each time ``wake`` is set, until ``stop`` is.

    A failed round is retried with exponential back-off (at most 30 s) and reported
    through ``warn(key, message, *args)``; training never waits for any of it. ``poll`` is
    called before each round (the run's :class:`~lightning_tracker.writers.deletion.DeletionWatch`:
    it asks the store at its own cadence, and stops the mirror once the run was deleted).
    """
    background_priority()
    failures = 0
    while not stop.is_set():
        wake.wait()
        wake.clear()
        if stop.is_set():
            break
        poll()
        report = mirror.run_once(paced=True)  # run.json's heartbeat at a bounded rate
        if report.error is None:
            failures = 0
            continue
        failures += 1
        delay = min(MAX_BACKOFF_S, 0.5 * 2**failures)
        warn(
            "upload",
            "could not upload to %s (%s: %s); %d files wait in %s, retrying in %.0f s",
            mirror.storage.url,
            type(report.error).__name__,
            report.error,
            len(report.pending),
            mirror.local_dir,
            delay,
        )
        stop.wait(delay)
        wake.set()


def upload_until(mirror: Mirror, deadline: float, progress: bool = False) -> tuple[MirrorReport, bool]:
    """Rounds with back-off until everything is published or ``time.monotonic()`` passes ``deadline``.

    The rounds run on a daemon thread, so a store call that hangs cannot hold the
    caller past the deadline.

    Args:
        deadline: a ``time.monotonic()`` value.
        progress: show the checkpoint bytes left on a terminal while waiting.

    Returns:
        The last round's report, and whether everything is published.
    """
    result: list[MirrorReport] = []

    def rounds() -> None:
        delay = 0.2
        while True:
            report = mirror.run_once()
            result.append(report)
            if report.complete or mirror.run_deleted or time.monotonic() >= deadline:
                return
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)

    worker = threading.Thread(target=rounds, name="lightning-tracker-final-upload", daemon=True)
    total = mirror.pending_bytes() if progress else 0
    bar = _progress_bar(total) if total else None
    worker.start()
    try:
        while worker.is_alive() and time.monotonic() < deadline:
            worker.join(min(0.2, max(0.0, deadline - time.monotonic())))
            if bar is not None:
                bar(total - mirror.pending_bytes())
    finally:
        if bar is not None:
            bar(None)
    report = result[-1] if result else MirrorReport(pending=mirror.pending())
    return report, report.complete and not worker.is_alive()


def background_priority() -> None:
    """Lowers the calling thread's CPU priority (Linux: per thread), so training keeps its cores
    (the mirror's and the media encoder's threads)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _progress_bar(total: int) -> Callable[[int | None], None] | None:
    import sys

    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("uploading checkpoints"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True
    )
    task = bar.add_task("upload", total=total)
    bar.start()

    def update(done: int | None) -> None:
        if done is None:
            bar.stop()
        else:
            bar.update(task, completed=done)

    return update
