"""Real processes that race each other: started together, released at one barrier per trial.

The functions run in children started with the ``spawn`` method (a fresh interpreter,
no state shared with the test), so they live in this small module, importable by name.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any

BARRIER_S = 120  # a child that never reaches the barrier fails the trial instead of hanging it


def create_race(trials: int, me: int, barrier: Any, results: Any, url: str, options: dict[str, Any] | None) -> None:
    """Creates ``p/t<trial>/run.json`` once per trial, as soon as every process is at the barrier."""
    from lightning_tracker.storage import Storage

    store = Storage(url, options)
    for trial in range(trials):
        barrier.wait(BARRIER_S)
        try:
            store.create_bytes(f"p/t{trial}/run.json", f"process {me}".encode())
            results.put((trial, me, "won"))
        except FileExistsError:
            results.put((trial, me, "lost"))
        except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
            results.put((trial, me, f"{type(err).__name__}: {err}"))


def resume_never_race(
    trials: int,
    me: int,
    barrier: Any,
    results: Any,
    url: str,
    options: dict[str, Any] | None,
    spool: str,
    offline: bool,
    fit: bool,
) -> None:
    """Opens run ``race-<trial>`` with ``resume="never"`` once per trial, all processes at once.

    With ``fit``, a real ``Trainer.fit`` opens it and each step logs ``who = me``; the
    result says how many training steps ran. Without, ``log_hyperparams`` opens it (what
    ``fit`` calls first). The winner finishes its run before the next trial.

    Each result is ``(trial, me, "won" | "lost" | error, training steps, pid, seconds from
    the barrier to the outcome)``.
    """
    from lightning_tracker import TrackerLogger
    from lightning_tracker.exceptions import RunExistsError
    from tests.helpers import tiny_model_class, trainer

    base = tiny_model_class()

    class Marked(base):  # type: ignore[misc, valid-type]
        steps = 0

        def training_step(self, batch: Any, index: int) -> Any:
            type(self).steps += 1
            self.log("who", float(me), on_step=True, on_epoch=False)
            return super().training_step(batch, index)

    for trial in range(trials):
        logger = TrackerLogger(
            url,
            name="p",
            version=f"race-{trial}",
            resume="never",
            storage_options=options,
            spool_dir=spool,
            offline=offline,
            flush_interval=0.1,
            tensorboard=False,
        )
        Marked.steps = 0
        barrier.wait(BARRIER_S)
        released = time.perf_counter()
        try:
            if fit:
                trainer(logger, max_epochs=1).fit(Marked())
            else:
                logger.log_hyperparams({"who": me})
                logger.finalize("success")
            outcome = "won"
        except RunExistsError:
            outcome = "lost"
        except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
            outcome = f"{type(err).__name__}: {err}"
        results.put((trial, me, outcome, Marked.steps, os.getpid(), time.perf_counter() - released))


def run_race(target: Callable[..., None], args: tuple[Any, ...], processes: int, trials: int) -> list[tuple[Any, ...]]:
    """Starts ``processes`` children running ``target(trials, me, barrier, results, *args)``; returns every result."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    children = [context.Process(target=target, args=(trials, me, barrier, results, *args)) for me in range(processes)]
    for child in children:
        child.start()
    try:
        out = [results.get(timeout=BARRIER_S * 2) for _ in range(processes * trials)]
    finally:
        for child in children:
            child.join(BARRIER_S)
            if child.is_alive():
                child.kill()
    return out


def winners(results: list[tuple[Any, ...]], trials: int) -> dict[int, list[int]]:
    """Each trial's winners (the processes whose create or run opened)."""
    won: dict[int, list[int]] = {trial: [] for trial in range(trials)}
    for trial, me, outcome, *_ in results:
        if outcome == "won":
            won[trial].append(me)
    return won
