"""The project index as a format: its files' names, its Parquet schema and its version.

A project's index lives in ``<project>/.index/`` and is only a cache of the run folders,
rebuilt from them whenever it is missing or damaged:

- ``changes/<time>-<run id>-<token>.json``: one small immutable object per change of a
  run (:func:`~lightning_tracker.format.layout.change_name`), added by whoever changed it;
- ``runs/<generation>-<time>-<token>.parquet``: a compacted index, one row per run
  (:data:`INDEX_SCHEMA`), written under a new name by the reader that folded changes into
  it. The Parquet metadata names the change objects it folded (:data:`FOLDED_KEY`): a
  listed change it does not name is news, whatever the clocks of the machines say.
- ``runs/<generation>-<time>-<token>-on-<parent generation>-<parent token>.parquet``: a
  delta, the same columns for the runs a fold changed only, on top of its parent (a
  compacted file or another delta, named in the file name so a listing resolves the
  chain without reading anything). Its metadata names the changes it folded beyond its
  parent's and the ids of the runs it removed (:func:`delta_file_name`).

The index readers take is the greatest file by (generation, time, token) whose chain of
parents down to a compacted file is all listed: a fold is one generation above the
greatest file it listed, so a machine with a slow clock cannot hide a newer index behind
an older name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import pyarrow as pa

from lightning_tracker.format.layout import CHANGES_DIR, INDEX_DIR

__all__ = [
    "CHANGES_DIR",
    "FOLDED_KEY",
    "INDEX_DIR",
    "INDEX_SCHEMA",
    "INDEX_VERSION",
    "RUNS_DIR",
    "IndexFile",
    "change_run",
    "delta_file_name",
    "index_file_name",
    "new_index_file",
    "parse_index_file_name",
]

INDEX_VERSION = 1
"""The version of the compacted index file; a reader rebuilds an index of another version."""

RUNS_DIR = "runs"
"""In ``<project>/.index/``: the compacted index files."""

FOLDED_KEY = b"lightning_tracker.index"
"""The Parquet metadata key of an index file: JSON ``{"version", "project", "folded": [change names]}``;
a delta adds ``"base"`` (its parent's name) and ``"removed"`` (run ids)."""

INDEX_SCHEMA = pa.schema(
    [
        ("id", pa.string()),  # the run folder's name
        ("__doc", pa.binary()),  # run.json as the reader checked it (codec JSON); {} when unreadable
        ("__problems", pa.list_(pa.string())),  # what was damaged when it was read (Run.problems)
        ("__watch", pa.bool_()),  # live when folded: every read reads its run.json again
        ("__tags", pa.list_(pa.string())),  # the tags, as a list
        # the edits after the run as read (codec JSON: edits, problems, and the names of the
        # edit objects listed before it was read: one listed since that is not there is news)
        ("__edits", pa.binary()),
        ("__archived", pa.bool_()),  # archived by an edit: left out unless asked for
    ]
)
"""The columns every compacted index has, one row per run: ``__doc`` and ``__problems`` rebuild the
:class:`~lightning_tracker.read.run.Run` exactly. The other columns are the run's runs-table row
(``Store.table``'s columns: ``name``, ``status``, ``start``, ``config.<key>``, ``summary.<metric>``,
...), typed; one whose values differ in type is JSON text, named in the Parquet metadata
``lightning_tracker.json_columns``."""

_INDEX_FILE = re.compile(r"^(\d{10})-(\d{20})-([0-9a-f]+)(?:-on-(\d{10})-([0-9a-f]+))?\.parquet$")
_CHANGE = re.compile(r"^(\d{20})-(.+)-([^-]+)\.json$")


class IndexFile(NamedTuple):
    """An index file's name, parsed; instances order as readers prefer them (greatest wins).

    Attributes:
        generation: one above the greatest file listed by the fold that wrote it.
        time_ns: when it was written (the writer's clock).
        name: the file name.
        key: ``<generation>-<token>``, what a delta names its parent by.
        parent: the key of the file a delta applies to; None for a compacted file.
    """

    generation: int
    time_ns: int
    name: str
    key: str = ""
    parent: str | None = None

    @property
    def delta(self) -> bool:
        """Whether it is a delta (its rows apply on top of its parent's)."""
        return self.parent is not None


def index_file_name(generation: int, time_ns: int, token: str) -> str:
    """The name of a compacted index file in ``<project>/.index/runs/``.

    Example:
        >>> index_file_name(3, 1_700_000_000_123_456_789, "9f2c")
        '0000000003-01700000000123456789-9f2c.parquet'
    """
    return f"{generation:010d}-{time_ns:020d}-{token}.parquet"


def delta_file_name(generation: int, time_ns: int, token: str, parent: IndexFile) -> str:
    """The name of a delta in ``<project>/.index/runs/``, naming the file it applies to.

    Example:
        >>> base = parse_index_file_name("0000000003-01700000000123456789-9f2c.parquet")
        >>> delta_file_name(4, 1_700_000_000_223_456_789, "a1b2", base)
        '0000000004-01700000000223456789-a1b2-on-0000000003-9f2c.parquet'
    """
    return f"{generation:010d}-{time_ns:020d}-{token}-on-{parent.key}.parquet"


def new_index_file(generation: int, time_ns: int, token: str, parent: IndexFile | None = None) -> IndexFile:
    """A new index file: a compacted file, or (``parent`` given) a delta on ``parent``.

    Example:
        >>> new_index_file(4, 1_700_000_000_223_456_789, "a1b2").key
        '0000000004-a1b2'
    """
    if parent is None:
        return IndexFile(generation, time_ns, index_file_name(generation, time_ns, token), f"{generation:010d}-{token}")
    name = delta_file_name(generation, time_ns, token, parent)
    return IndexFile(generation, time_ns, name, f"{generation:010d}-{token}", parent.key)


def parse_index_file_name(name: str) -> IndexFile | None:
    """``name`` as an :class:`IndexFile`, or None when it is not one (a temporary or foreign file).

    Example:
        >>> parse_index_file_name("0000000003-01700000000123456789-9f2c.parquet").generation
        3
        >>> parse_index_file_name("0000000004-01700000000223456789-a1b2-on-0000000003-9f2c.parquet").parent
        '0000000003-9f2c'
        >>> parse_index_file_name(".tmp-x.part") is None
        True
    """
    match = _INDEX_FILE.match(name)
    if not match:
        return None
    parent = f"{match[4]}-{match[5]}" if match[4] else None
    return IndexFile(int(match[1]), int(match[2]), name, f"{match[1]}-{match[3]}", parent)


def change_run(name: str) -> tuple[int, str] | None:
    """The time (ns, the writer's clock) and the run id a change object's name holds; None when not one.

    Example:
        >>> change_run("01700000000123456789-20231114-abcd-k3x9.json")
        (1700000000123456789, '20231114-abcd')
        >>> change_run("run.json") is None
        True
    """
    match = _CHANGE.match(name)
    return (int(match[1]), match[2]) if match else None
