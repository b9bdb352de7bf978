"""Which run a ``TrackerLogger`` writes: the id it resolves, decides and shares with every rank.

A given ``version`` is resolved as ``lightning-tracker`` resolves a run (``Store.run``: the
id, a unique id prefix or a run name); without one, every rank of a job must arrive at the
same new id, whether Lightning's launcher, torchrun or SLURM started the ranks.
"""

from __future__ import annotations

import json
import logging
import os
import threading

from lightning_tracker._settings import CHECK_TIMEOUT_S, PROBE_TIMEOUT_S, RUN_IDS
from lightning_tracker.exceptions import (
    ProjectNotFoundError,
    RunExistsError,
    RunNotFoundError,
    StorageError,
    TrackerError,
    TransientStoreError,
)
from lightning_tracker.format.layout import new_run_id
from lightning_tracker.integration._compat import rank
from lightning_tracker.read import Store
from lightning_tracker.storage import Storage

__all__ = ["resolve_version", "shared_run_id"]

log = logging.getLogger(__name__)

# run ids created by this process, in construction order; processes that Lightning's
# DDP launcher starts re-run the script with this variable inherited and take the same id
_constructed = 0


def _job_run_id(index: int) -> str | None:
    """A run id every rank derives alike when an external launcher (torchrun, SLURM) started them."""
    world = int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1)
    job = os.environ.get("TORCHELASTIC_RUN_ID") or ""
    if job in ("", "none"):
        job = os.environ.get("SLURM_JOB_ID", "")
        if job and os.environ.get("SLURM_STEP_ID"):
            job = f"{job}.{os.environ['SLURM_STEP_ID']}"
    if world <= 1 or not job:
        return None
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in job).strip(".-")[:100]
    return f"job-{safe}-{index}" if safe else None


def shared_run_id(run_id: str | None) -> str:
    """The id of the run the logger built now writes: the same on every rank of this job.

    Rank 0 takes ``run_id``, else the external launcher's job id (torchrun, SLURM), else a
    new id, and publishes it for the ranks Lightning's launcher starts (its children), which
    take it by construction order.
    """
    global _constructed
    index = _constructed
    _constructed += 1
    publisher, shared = RUN_IDS.get()
    # only the ranks Lightning's launcher started from this job's rank 0 (its children) take its ids; a
    # job started later from that process (torchrun: grandchildren) inherits the variable but not the ids
    inherited = list(shared) if publisher == os.getppid() else []
    if run_id is None and rank() > 0 and index < len(inherited) and (mine := inherited[index]) is not None:
        return mine
    run_id = run_id or _job_run_id(index) or new_run_id()
    if rank() == 0:
        own = list(shared) if publisher == os.getpid() else []
        own = own[:index] + [None] * (index - len(own)) + [run_id]
        RUN_IDS.publish(json.dumps({"pid": os.getpid(), "ids": own}))
    return run_id


def resolve_version(storage: Storage, project: str, version: str, resume: str) -> str:
    """:func:`_lookup_version`, bounded in time on a remote store (a hung server never blocks construction).

    The wait is ``$LIGHTNING_TRACKER_CHECK_TIMEOUT_S`` for ``resume="must"``/``"never"`` and
    ``$LIGHTNING_TRACKER_PROBE_TIMEOUT_S`` for ``"allow"``; without an answer the id is taken
    as given and opening the run checks it (``resume``), as before.
    """
    if storage.local_path() is not None:
        return _lookup_version(storage, project, version, resume)
    answer: list[str] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            answer.append(_lookup_version(storage, project, version, resume))
        except BaseException as err:  # noqa: BLE001 - handed to the constructing thread, raised there
            failure.append(err)

    thread = threading.Thread(target=lookup, name="lightning-tracker-resolve", daemon=True)
    thread.start()
    thread.join((CHECK_TIMEOUT_S if resume in ("must", "never") else PROBE_TIMEOUT_S).get())
    if failure:
        raise failure[0]
    if not answer:
        log.warning("%s did not say in time whether %r names a run; taking it as the full run id", storage.url, version)
        return version
    return answer[0]


def _lookup_version(storage: Storage, project: str, version: str, resume: str) -> str:
    """The full id of the run ``version`` names, as ``lightning-tracker`` resolves it (``Store.run``).

    An exact id is taken as is; with ``resume="allow"`` or ``"must"`` a unique id prefix or a
    run name resolves to that run's id. A new id is never a prefix of an existing one (a
    later lookup of it would be ambiguous). A store that cannot answer leaves the id as
    given: opening the run checks it again (``resume``).

    Raises:
        AmbiguousRunError: ``version`` is a prefix or name of several runs.
        RunExistsError: ``resume="never"`` and ``version`` is a prefix of an existing id.
    """
    try:
        ids = [rid for rid in storage.listdir(project) if not rid.startswith(".")]
        if version in ids:
            return version
        if resume == "never":
            longer = [rid for rid in ids if rid.startswith(version)]
            if longer:
                raise RunExistsError(
                    f"version={version!r} is a prefix of the run id {', '.join(longer[:5])} in project {project!r} of "
                    f"{storage.url}; a new run with this id would make that run's prefix ambiguous: pass a version "
                    "that no run id starts with, or resume that run with its full id and resume='allow'"
                )
            return version
        run = Store(storage.url, storage.storage_options).run(version, project)
    except (RunNotFoundError, ProjectNotFoundError):
        return version  # a new run, and no id starts with it
    except (StorageError, TransientStoreError) as err:
        log.warning("could not look %r up in %s (%s); taking it as the full run id", version, storage.url, err)
        return version
    except TrackerError:
        raise  # an ambiguous prefix, a new id that prefixes another, a missing extra: the caller's to fix
    except Exception as err:  # noqa: BLE001 - a backend fails in its own words; opening the run asks again
        log.warning("could not look %r up in %s (%r); taking it as the full run id", version, storage.url, err)
        return version
    if run.id != version:
        log.info("version=%r is run %s (%s) in project %r", version, run.id, run.name, project)
    return run.id
