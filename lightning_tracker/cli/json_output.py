"""``--json``: what the commands print for scripts, with stable keys (``docs/cli-json.md`` lists them).

One document per command on stdout, parsed by any JSON reader: NaN and ±inf are ``null``,
times are ISO 8601 in UTC, keys never change meaning (new keys may be added). Errors stay
one line on stderr with the command's exit status, as without ``--json``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from rich.console import Console

from lightning_tracker.read.groups import BEST, COUNT, IDS
from lightning_tracker.read.store import Run

__all__ = ["group_record", "iso_time", "print_json", "run_record", "SUMMARY_FIELDS"]

SUMMARY_FIELDS = ("last", "last_step", "min", "min_step", "max", "max_step", "count")
"""Per metric in a run record's ``metrics``: these fields of the run's summary."""


def iso_time(seconds: Any) -> str | None:
    """Unix seconds as ISO 8601 in UTC; None for a missing time.

    Example:
        >>> iso_time(0), iso_time(None)
        ('1970-01-01T00:00:00+00:00', None)
    """
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def _finite(value: Any) -> Any:
    """``value`` with every NaN and ±inf (also nested, also numpy's) as None."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_record(run: Run, *, metrics: bool = True) -> dict[str, Any]:
    """One run as ``--json`` gives it (keys in ``docs/cli-json.md``).

    Example:
        >>> from lightning_tracker import Store, TrackerLogger
        >>> logger = TrackerLogger("memory://doc-json", name="p", version="r1", tags=["a"])
        >>> logger.log_metrics({"loss": float("nan")}, step=0)
        >>> logger.finalize("success")
        >>> record = run_record(Store("memory://doc-json").run("r1"))
        >>> record["id"], record["tags"], record["metrics"]["loss"]["last"], record["status"]
        ('r1', ['a'], None, 'finished')
    """
    record: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "project": run.project,
        "group": run.group,
        "tags": run.tags,
        "note": run.note,
        "status": run.status,
        "archived": run.archived,
        "damage": run.damage,
        "start": iso_time(run.start_time),
        "end": iso_time(run.end_time),
        "duration_s": run.duration,
        "url": run.url,
        "monitor": run.monitor,
        "params": run.flat_config,
    }
    if metrics:
        record["metrics"] = {
            key: {f: stats.get(f) for f in SUMMARY_FIELDS} for key, stats in sorted(run.summary.items())
        }
    return _finite(record)


def group_record(grouped: pd.DataFrame, i: int) -> dict[str, Any]:
    """Row ``i`` of a groups table (:func:`~lightning_tracker.read.groups.group_table`) as
    ``runs --group-by --json`` gives it (keys in ``docs/cli-json.md``).

    Example:
        >>> import pandas as pd
        >>> grouped = pd.DataFrame({"config.lr": [0.1], "runs": [2], "best_id": ["r2"],
        ...     "run_ids": [("r1", "r2")], "mean.loss": [0.5], "std.loss": [float("nan")]})
        >>> grouped.attrs["group_by"] = ["config.lr"]
        >>> record = group_record(grouped, 0)
        >>> record["keys"], record["runs"], record["best_id"], record["run_ids"]
        ({'config.lr': 0.1}, 2, 'r2', ['r1', 'r2'])
        >>> record["metrics"]
        {'loss': {'mean': 0.5, 'std': None}}
    """
    row = grouped.iloc[i]
    metrics = sorted(str(c)[5:] for c in grouped.columns if str(c).startswith("mean."))
    record = {
        "keys": {str(k): row[k] for k in grouped.attrs.get("group_by", [])},
        "runs": int(row[COUNT]),
        "best_id": None if pd.isna(row[BEST]) else str(row[BEST]),
        "run_ids": [str(r) for r in row[IDS]],
        "metrics": {m: {"mean": row[f"mean.{m}"], "std": row.get(f"std.{m}")} for m in metrics},
    }
    return _finite(record)


def print_json(out: Console, document: Any) -> None:
    """Prints ``document`` as one JSON document (NaN and ±inf as null), never styled or wrapped."""
    text = json.dumps(_finite(document), ensure_ascii=False, allow_nan=False, indent=1)
    out.file.write(text + "\n")
    out.file.flush()
