"""What a key names and which metrics matter first: the one owner for the CLI, the API and the page.

**A key.** A run has fields (:data:`FIELDS`: ``id``, ``name``, ``status`` ...), hyperparameters
(``config.K``, also spelled ``params.K``) and metrics (``summary.K``, the last value). An
explicit prefix always names its section. A bare key names, in this order:

1. the field of that name;
2. the hyperparameter of that name (W&B's ``config``);
3. the metric of that name (W&B's ``summary``).

So with a hyperparameter ``lr`` and a metric ``lr``, ``lr`` is the hyperparameter everywhere
(``--where``, ``--sort``, ``--columns``, ``Store.runs(where=...)``, the page's filter box) and
``summary.lr`` the metric. The names are those of the set of runs queried, never of each run
alone: when any run has the hyperparameter ``lr``, ``lr`` is the hyperparameter for every run
(a run without it has no value, even with a metric ``lr``); only when none has it is ``lr``
the metric. A table heads each column with its :func:`label`: the bare name,
unless the bare name would resolve to something else, then the prefixed one; a label
always resolves back to its column.

**Families.** The monitor callbacks record many metrics that are rarely looked at first:
``gradients/*``, ``parameters/*`` (``GradientMonitor``) and ``system/*`` (``SystemMonitor``).
``TrackerLogger(prefix="fit")`` stores them as ``fit-system/cpu_percent`` (the logger joins
its prefix with :data:`JOIN`); :func:`family` knows both spellings. Tables hide the families
unless asked; the page draws them in closed sections; ``Run.system()`` and
``Run.gradients()`` return them.

**Which metric matters first** (:func:`metric_order`): the monitored ones (``ModelCheckpoint``'s
``monitor``, the most common first), then ``val*``, ``train*``, ``test*`` (case-insensitive,
also after a logger prefix), then the other metrics, then ``epoch`` (an x-axis), then the
families; by name within each. The runs table, ``compare``, ``show`` and the page's
charts and table all follow it.

Pure standard library.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence

__all__ = [
    "EXTREMES", "FAMILIES", "FIELDS", "JOIN", "PREFIXES", "RESERVED", "SPLITS", "column", "family", "is_score", "label",
    "labels", "locate", "main_metric", "metric_order", "metric_rank", "monitored", "split_of", "unprefixed",
]  # fmt: skip

FIELDS = ("id", "name", "project", "group", "status", "notes", "tags")
"""The fields of a run record a bare key names before any hyperparameter or metric."""
RESERVED = (*FIELDS, "start", "duration", "duration_s", "damage")
"""Column names of the runs tables that are neither hyperparameters nor metrics."""
PREFIXES = (("config.", "params"), ("params.", "params"), ("summary.", "summary"))
"""Explicit prefixes and the section of a run record (``params``, ``summary``) each names."""
EXTREMES = (("min.", "min"), ("max.", "max"))
"""Prefixes naming a metric's smallest and largest value (``min.val/loss``); a key so spelled
names them when a run queried has the metric, else what the whole key names (a
hyperparameter ``min.lr`` logged as ``{"min": {"lr": ...}}``)."""
_COLUMN = {"params": "config.", "summary": "summary.", "min": "min.", "max": "max."}  # in Store.table's columns

FAMILIES = ("gradients", "parameters", "system")
"""The monitor families, in the order they are shown (after every other metric)."""
SPLITS = ("val", "train", "test")
"""The splits, in the order their metrics are shown (after the monitored ones)."""
JOIN = "-"
"""What ``TrackerLogger`` joins its ``prefix`` and a metric name with (Lightning's ``LOGGER_JOIN_CHAR``)."""


def locate(key: str, params: Collection[str], metrics: Collection[str]) -> tuple[str, str] | None:
    """Where ``key`` points: ``("field", K)``, ``("params", K)``, ``("summary", K)``, ``("min"|"max", K)``, or None.

    ``params`` and ``metrics`` are the names of every run queried (the set decides, not
    each run); an explicit prefix whose name is missing, or a bare key found nowhere,
    gives None.

    Example:
        >>> params, metrics = {"lr", "name"}, {"lr", "loss"}
        >>> [locate(k, params, metrics) for k in ("lr", "summary.lr", "params.lr", "loss", "name", "x")]
        [('params', 'lr'), ('summary', 'lr'), ('params', 'lr'), ('summary', 'loss'), ('field', 'name'), None]
        >>> locate("min.loss", params, metrics), locate("max.lr", params, metrics), locate("min.x", {"min.x"}, ())
        (('min', 'loss'), ('max', 'lr'), ('params', 'min.x'))
    """
    for prefix, section in EXTREMES:
        if key.startswith(prefix) and key[len(prefix) :] in metrics:
            return (section, key[len(prefix) :])
    for prefix, section in PREFIXES:
        if key.startswith(prefix):
            name = key[len(prefix) :]
            return (section, name) if name in (params if section == "params" else metrics) else None
    if key in FIELDS:
        return ("field", key)
    if key in params:
        return ("params", key)
    if key in metrics:
        return ("summary", key)
    return None


def column(key: str, params: Collection[str], metrics: Collection[str]) -> str | None:
    """The column of :meth:`Store.table <lightning_tracker.read.store.Store.table>` ``key`` names, or None.

    Example:
        >>> column("lr", {"lr"}, {"lr"}), column("summary.lr", {"lr"}, {"lr"}), column("status", (), ())
        ('config.lr', 'summary.lr', 'status')
    """
    found = locate(key, params, metrics)
    if found is None:
        return None
    section, name = found
    return name if section == "field" else _COLUMN[section] + name


def label(section: str, name: str, params: Collection[str]) -> str:
    """The header of a hyperparameter (``section="params"``) or metric (``"summary"``) column.

    The bare name, unless a bare key would name something else (a field, a table column,
    or for a metric a hyperparameter of the same name): then the prefixed name.

    Example:
        >>> label("params", "lr", {"lr"}), label("summary", "lr", {"lr"}), label("summary", "loss", {"lr"})
        ('lr', 'summary.lr', 'loss')
        >>> label("params", "name", {"name"})
        'config.name'
    """
    if name in RESERVED or (section == "summary" and name in params) or name.startswith(_SPELLED):
        return _COLUMN[section] + name
    return name


_SPELLED = tuple(
    prefix for prefix, _ in (*PREFIXES, *EXTREMES)
)  # a name that reads as a prefixed key keeps its own prefix


def labels(params: Iterable[str], metrics: Iterable[str]) -> dict[str, str]:
    """Every column's header, ``{"config.K": ..., "summary.K": ...}``: distinct, each resolving to its column.

    Example:
        >>> labels(["lr"], ["lr", "loss"])
        {'config.lr': 'lr', 'summary.lr': 'summary.lr', 'summary.loss': 'loss'}
    """
    names = list(dict.fromkeys(params))
    out = {_COLUMN["params"] + n: label("params", n, names) for n in names}
    out.update({_COLUMN["summary"] + n: label("summary", n, names) for n in dict.fromkeys(metrics)})
    return out


def unprefixed(key: str) -> str:
    """``key`` without a logger prefix: what follows :data:`JOIN` when that is a family or split metric.

    Example:
        >>> unprefixed("fit-system/cpu_percent"), unprefixed("fit-val/loss"), unprefixed("lr-SGD")
        ('system/cpu_percent', 'val/loss', 'lr-SGD')
    """
    at = key.find(JOIN)
    while at > 0:
        rest = key[at + len(JOIN) :]
        head = rest.lower()
        if head.startswith(tuple(f"{name}/" for name in FAMILIES)):
            return rest
        if any(head.startswith((f"{split}/", f"{split}_")) for split in SPLITS):
            return rest
        at = key.find(JOIN, at + 1)
    return key


def family(key: str) -> str | None:
    """The monitor family of a metric (``"system"``, ``"gradients"``, ``"parameters"``), or None.

    Example:
        >>> family("system/cpu_percent"), family("fit-system/cpu_percent"), family("gradients/norm_total")
        ('system', 'system', 'gradients')
        >>> family("val/loss"), family("mysystem/x"), family("system")
        (None, None, None)
    """
    bare = key if key.startswith(tuple(f"{n}/" for n in FAMILIES)) else unprefixed(key)
    return next((name for name in FAMILIES if bare.startswith(f"{name}/")), None)


def split_of(key: str) -> str | None:
    """The split a metric belongs to (``"val"``, ``"train"``, ``"test"``), or None.

    Example:
        >>> split_of("val/acc"), split_of("Validation_loss"), split_of("fit-train/loss"), split_of("loss")
        ('val', 'val', 'train', None)
    """
    lower = key.lower()
    found = next((s for s in SPLITS if lower.startswith(s)), None)
    if found is None and family(key) is None:
        bare = unprefixed(key).lower()
        found = next((s for s in SPLITS if bare.startswith(s)), None)
    return found


def is_score(key: str) -> bool:
    """Whether runs may be judged by ``key``: not ``epoch`` and in no family.

    Example:
        >>> is_score("val/acc"), is_score("epoch"), is_score("system/cpu_percent")
        (True, False, False)
    """
    return key != "epoch" and family(key) is None


def monitored(names: Iterable[str | None]) -> list[str]:
    """The runs' monitored metrics (one name per run, None for none), the most common first.

    Example:
        >>> monitored(["val/loss", None, "val/acc", "val/acc"])
        ['val/acc', 'val/loss']
    """
    return [name for name, _ in Counter(n for n in names if n).most_common()]


def metric_rank(key: str, monitors: Sequence[str] = ()) -> tuple[int, int, str]:
    """A metric's place in :func:`metric_order` (smaller first)."""
    if key in monitors:
        return (0, list(monitors).index(key), key)
    found = family(key)
    if found is not None:
        return (len(SPLITS) + 3, FAMILIES.index(found), key)
    if key == "epoch":
        return (len(SPLITS) + 2, 0, key)
    split = split_of(key)
    return (1 + SPLITS.index(split) if split else len(SPLITS) + 1, 0, key)


def metric_order(keys: Iterable[str], monitors: Sequence[str] = ()) -> list[str]:
    """``keys`` in the order they matter: see the module's docstring.

    Example:
        >>> metric_order(["system/cpu_percent", "epoch", "loss", "test/acc", "train/loss", "val/acc", "val/loss"],
        ...              monitors=["val/loss"])
        ['val/loss', 'val/acc', 'train/loss', 'test/acc', 'loss', 'epoch', 'system/cpu_percent']
    """
    return sorted(dict.fromkeys(keys), key=lambda k: metric_rank(k, monitors))


def main_metric(keys: Iterable[str], monitors: Sequence[str] = ()) -> str | None:
    """The metric runs are judged by: the first :func:`is_score` one in :func:`metric_order`, or None.

    Example:
        >>> main_metric(["epoch", "train/loss", "val/acc"]), main_metric(["epoch"])
        ('val/acc', None)
    """
    return next((k for k in metric_order(keys, monitors) if is_score(k)), None)
