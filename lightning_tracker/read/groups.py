"""Runs in groups: one row per value of the group keys, the spread of each metric, the best run.

A sweep runs each configuration several times (seeds); a person reads it by configuration:
how many runs, the mean and standard deviation of each metric's final value, and which
run to look at. :func:`group_table` builds that table from :meth:`Store.table
<lightning_tracker.read.store.Store.table>`'s, and ``Store.table(project, group_by=...)``,
the CLI's ``runs --group-by`` and the page's "group by" control all use it.

**Columns** (in this order):

- the group keys' columns, as ``Store.table`` names them (``group``, ``config.lr``,
  ``summary.epoch``); a run without the key is in the group whose key is missing (None);
- ``runs``: the number of runs in the group;
- ``best_id``: the id of the group's best run (see below), None when no run of the group
  has a value to judge by;
- ``run_ids``: the ids of the group's runs, oldest first, as a tuple;
- for each metric ``M`` (each ``summary.M`` column): ``mean.M`` and ``std.M``, the mean and
  the sample standard deviation (``ddof=1``) of the runs' final values, over the runs that
  have ``M``; ``std.M`` is NaN for a group with one such run.

**The best run** of a group is judged by ``best`` when given: a key resolved as ``--sort``
resolves it, ``"-val/acc"`` for the highest value, ``"val/loss"`` for the lowest. Without
it, by the runs' monitored metric (``ModelCheckpoint``'s ``monitor``, the most common one
among the runs) in its mode (``max`` or ``min``, ``min`` when unrecorded). With neither,
there is no best run: ``best_id`` is None. ``attrs["best"]`` says which rule was used:
``{"column": "summary.val/acc", "ascending": False, "why": "monitored"}`` (``why`` is
``"monitored"`` or ``"given"``), or None.

Groups come in the order of their keys (missing keys last); ``attrs["group_by"]`` lists the
key columns and ``attrs["scope"]`` is the runs table's.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format import keys

__all__ = ["BEST", "COUNT", "IDS", "best_rule", "group_columns", "group_table"]

COUNT = "runs"
"""The column of the number of runs in a group."""
BEST = "best_id"
"""The column of the id of a group's best run."""
IDS = "run_ids"
"""The column of the ids of a group's runs."""
_GROUP_FIELDS = ("group", "name", "project", "status", "tags")  # fields of Store.table one may group by


def _scope(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    scope = table.attrs.get("scope")
    if scope is not None:
        return list(scope["params"]), list(scope["metrics"])
    cols = [str(c) for c in table.columns]
    return [c[7:] for c in cols if c.startswith("config.")], [c[8:] for c in cols if c.startswith("summary.")]


def _known(table: pd.DataFrame) -> list[str]:
    params, metrics = _scope(table)
    return [*(f for f in _GROUP_FIELDS if f in table), *keys.labels(params, metrics).values()]


def _resolve(table: pd.DataFrame, key: str, argument: str) -> str:
    """The column of ``table`` that ``key`` names (a field, else a hyperparameter, else a metric)."""
    params, metrics = _scope(table)
    col = keys.column(key, params, metrics)
    if col is not None and (col in table.columns or table.empty or col.startswith(("config.", "summary."))):
        return col
    known = _known(table)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    shown = ", ".join(known[:12]) + (" …" if len(known) > 12 else "")
    raise InvalidArgumentError(
        f"{argument}={key!r} names no field, hyperparameter or metric of these runs; {hint}use one of: {shown}"
    )


def group_columns(table: pd.DataFrame, by: str | Sequence[str], *, argument: str = "group_by") -> list[str]:
    """The columns that the keys ``by`` (``"lr,optimizer"`` or a list) name in ``table``.

    Raises:
        InvalidArgumentError: ``by`` is empty, or a key names nothing the runs have; the
            message names ``argument`` and the closest keys.

    Example:
        >>> table = pd.DataFrame({"id": ["a"], "group": ["g"], "config.lr": [0.1], "summary.lr": [0.2]})
        >>> group_columns(table, "lr,group"), group_columns(table, ["summary.lr"])
        (['config.lr', 'group'], ['summary.lr'])
    """
    names = [k.strip() for k in (by.split(",") if isinstance(by, str) else by) if k and k.strip()]
    if not names:
        raise InvalidArgumentError(
            f"{argument}={by!r} names no key; pass one or more, such as 'group' or 'lr,optimizer'"
        )
    return list(dict.fromkeys(_resolve(table, name, argument) for name in names))


def best_rule(
    table: pd.DataFrame, best: str | None = None, monitors: Iterable[Mapping[str, Any] | None] = ()
) -> dict[str, Any] | None:
    """Which column judges the best run and in which direction; see the module's docstring.

    Args:
        table: the runs table.
        best: a key, ``-`` first for the highest value (``"-val/acc"``), or None.
        monitors: the runs' ``Run.monitor`` (``{"name": ..., "mode": ...}`` or None).

    Raises:
        InvalidArgumentError: ``best`` names nothing the runs have.

    Example:
        >>> table = pd.DataFrame({"id": ["a"], "summary.val/acc": [0.9]})
        >>> best_rule(table, "-val/acc")
        {'column': 'summary.val/acc', 'ascending': False, 'why': 'given'}
        >>> best_rule(table, None, [{"name": "val/acc", "mode": "max"}, None])
        {'column': 'summary.val/acc', 'ascending': False, 'why': 'monitored'}
        >>> best_rule(table) is None
        True
    """
    if best:
        return {
            "column": _resolve(table, best.lstrip("-"), "best"),
            "ascending": not best.startswith("-"),
            "why": "given",
        }
    found = [m for m in monitors if m and m.get("name")]
    names = keys.monitored(m["name"] for m in found)
    if not names:
        return None
    modes = Counter(m.get("mode") or "min" for m in found if m["name"] == names[0])
    return {"column": f"summary.{names[0]}", "ascending": modes.most_common(1)[0][0] != "max", "why": "monitored"}


def _key_value(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def group_table(
    table: pd.DataFrame,
    by: str | Sequence[str],
    *,
    best: str | None = None,
    monitors: Iterable[Mapping[str, Any] | None] = (),
) -> pd.DataFrame:
    """One row per group of the runs of ``table`` (:meth:`Store.table`'s frame): see the module's docstring.

    Args:
        table: the runs, one per row.
        by: the group keys, as ``--sort`` names a key: ``"group"``, ``"lr"``,
            ``"lr,optimizer"`` or a list of keys.
        best: the key the best run of a group is judged by (``"-val/acc"``: highest);
            default: the runs' monitored metric in its mode.
        monitors: the runs' monitored metrics (``Run.monitor``), for the default ``best``.

    Raises:
        InvalidArgumentError: a key of ``by`` or ``best`` names nothing the runs have.

    Example:
        >>> runs = pd.DataFrame({"id": ["a", "b", "c"], "config.lr": [0.1, 0.1, 0.01],
        ...                      "summary.acc": [0.75, 0.25, 0.5]})
        >>> grouped = group_table(runs, "lr", best="-acc")
        >>> grouped[["config.lr", "runs", "best_id", "mean.acc"]].to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
        [{'config.lr': 0.01, 'runs': 1, 'best_id': 'c', 'mean.acc': 0.5},
         {'config.lr': 0.1, 'runs': 2, 'best_id': 'a', 'mean.acc': 0.5}]
        >>> round(float(grouped["std.acc"][1]), 4), grouped["run_ids"][1]
        (0.3536, ('a', 'b'))
    """
    columns = group_columns(table, by)
    rule = best_rule(table, best, monitors)
    metrics = [str(c)[8:] for c in table.columns if str(c).startswith("summary.")]
    # a key column no run shown has is all missing: every run is in the group without it
    frame = table.assign(**{c: None for c in columns if c not in table})
    values = {m: pd.to_numeric(frame[f"summary.{m}"], errors="coerce") for m in metrics}
    judge = pd.to_numeric(frame[rule["column"]], errors="coerce") if rule and rule["column"] in frame else None
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, values_of_keys in enumerate(frame[columns].itertuples(index=False, name=None)):
        groups.setdefault(tuple(_key_value(v) for v in values_of_keys), []).append(i)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(columns, key, strict=True))
        row[COUNT] = len(members)
        row[BEST] = _best(frame, members, judge, rule)
        row[IDS] = tuple(frame["id"].iloc[members])
        for m in metrics:
            picked = values[m].iloc[members].dropna()
            row[f"mean.{m}"] = float(picked.mean()) if len(picked) else np.nan
            row[f"std.{m}"] = float(picked.std(ddof=1)) if len(picked) > 1 else np.nan
        rows.append(row)
    out = pd.DataFrame(
        rows, columns=[*columns, COUNT, BEST, IDS, *(f"{s}.{m}" for m in metrics for s in ("mean", "std"))]
    )
    out = _in_key_order(out, columns)
    out.attrs.update(scope=table.attrs.get("scope"), group_by=columns, best=rule)
    return out


def _best(frame: pd.DataFrame, members: list[int], judge: pd.Series | None, rule: dict[str, Any] | None) -> str | None:
    if judge is None or rule is None:
        return None
    scores = judge.iloc[members].dropna()
    if scores.empty:
        return None
    at = scores.idxmin() if rule["ascending"] else scores.idxmax()  # the first (oldest) of equal scores
    return str(frame["id"].loc[at])


def _in_key_order(out: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Groups by their keys, missing keys last; keys of mixed types (numbers and text) compare as text."""

    def order(col: pd.Series) -> pd.Series:
        present = col.dropna()
        if present.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool)).all():
            return pd.to_numeric(col, errors="coerce")
        return col.map(lambda v: None if v is None else str(v))

    if out.empty:
        return out
    out = out.sort_values(columns, key=order, na_position="last", kind="stable").reset_index(drop=True)
    for c in columns:  # a missing key reads as None, as in the runs table's text columns
        if out[c].isna().any():
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out
