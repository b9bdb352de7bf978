"""Writers that finish together, for the index's race tests: real processes started with
``spawn`` (so they live in this small module, importable by name) released at one barrier."""

from __future__ import annotations

from typing import Any

from tests.storage.racers import BARRIER_S


def finish_together(
    trials: int, me: int, barrier: Any, results: Any, url: str, options: dict[str, Any] | None, spool: str, run: str
) -> None:
    """Opens run ``run`` (``{me}`` in it names this process's own), logs, and finalizes at the barrier.

    A ``run`` without ``{me}`` is one run every process resumes at once. Each result is
    ``(trial, me, "done" | error)``.
    """
    from lightning_tracker import TrackerLogger

    for trial in range(trials):
        try:
            logger = TrackerLogger(
                url,
                name="p",
                version=run.format(me=me, trial=trial),
                storage_options=options,
                spool_dir=spool,
                flush_interval=0.1,
                tensorboard=False,
            )
            logger.log_hyperparams({"who": me})
            logger.log_metrics({"loss": float(me)}, step=trial)
            barrier.wait(BARRIER_S)
            logger.finalize("success")
            results.put((trial, me, "done"))
        except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
            results.put((trial, me, f"{type(err).__name__}: {err}"))


def fold_together(trials: int, me: int, barrier: Any, results: Any, url: str, options: dict[str, Any] | None) -> None:
    """Adds run ``f{me}-{trial}`` (its ``run.json``, then its change object), then at the barrier
    reads the runs table through the index, so that every process folds (and writes a delta
    on the same index) at once. Each result is ``(trial, me, "done" | error)``."""
    import time

    from lightning_tracker import Store
    from lightning_tracker.format.codec import dumps
    from lightning_tracker.format.documents import new_run
    from lightning_tracker.storage import Storage
    from lightning_tracker.storage.changes import record_change

    storage = Storage(url, options)
    for trial in range(trials):
        try:
            rid = f"f{me}-{trial}"
            doc = new_run(rid, "p", rid, group=None, tags=[], notes=None, heartbeat_interval_s=2.0, url="/x")
            now = time.time()
            doc.update(status="finished", start_time=now - 10, end_time=now, heartbeat=now)
            storage.write_bytes(f"p/{rid}/run.json", dumps(doc))
            record_change(storage, "p", rid, "end")
            barrier.wait(BARRIER_S)
            Store(url, options).runs("p")
            results.put((trial, me, "done"))
        except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
            results.put((trial, me, f"{type(err).__name__}: {err}"))
