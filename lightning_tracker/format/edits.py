"""Edits after the run (tags, note, name, archive) and deletion marks: their schema and the fold rule.

An edit is one small immutable JSON document in ``<project>/.edits/<run id>/`` (names from
:func:`~lightning_tracker.format.layout.edit_name`, so name order is time order). Nobody
rewrites one, and no writer of the run touches the folder, so an edit made beside a live
run is never overwritten: a reader folds the edits, in name order, over what ``run.json``
says (:func:`fold`). ``deleted.json`` (:data:`~lightning_tracker.format.layout.TOMBSTONE_FILE`)
in the same folder says the run is being deleted: a reader treats the run as gone.

An edit document::

    {"format_version": 1, "time": 1733456789.1,
     "add_tags": ["best"], "remove_tags": ["baseline"],   # optional, each
     "note": "text" | null, "name": "new name", "archived": true | false}

Every field but ``format_version`` and ``time`` is optional; those present apply in the
order above. The values people type are checked once, here (:func:`check_tag`,
:func:`check_name`, :func:`check_note`), the same for the CLI and the Python API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lightning_tracker.exceptions import InvalidArgumentError

__all__ = [
    "EDIT_VERSION",
    "Folded",
    "check_name",
    "check_note",
    "check_tag",
    "fold",
    "new_edit",
    "new_tombstone",
    "parse_edit",
]

EDIT_VERSION = 1
"""The version of edit and tombstone documents; a newer one is not folded (the reader says "upgrade")."""

_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@=-]{0,63}")  # never '+'/'-' first: the CLI's add/remove marks
_MAX_NAME = 128
_MAX_NOTE = 64 << 10
_FIELDS: dict[str, str] = {  # field -> what it must be, as a problem says it
    "add_tags": "a list of tags",
    "remove_tags": "a list of tags",
    "note": "a string or null",
    "name": "a non-empty string",
    "archived": "true or false",
}


def check_tag(value: Any, arg: str = "tag") -> str:
    """``value`` as a tag, or a one-line error naming ``arg``, the value and what a tag may hold.

    Example:
        >>> check_tag("best")
        'best'
        >>> check_tag("a b")
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: tag='a b' is not a tag; use 1 to 64 letters, ...
    """
    if not isinstance(value, str) or not _TAG_RE.fullmatch(value):
        raise InvalidArgumentError(
            f"{arg}={value!r} is not a tag; use 1 to 64 letters, digits or '_.:/@=-', starting with a letter, "
            "digit or '_' (for example 'best' or 'lr-sweep')"
        )
    return value


def check_name(value: Any, arg: str = "name") -> str:
    """``value`` as a run's readable name: one line, 1 to 128 characters, not only spaces.

    Example:
        >>> check_name("lr=0.1 (rerun)")
        'lr=0.1 (rerun)'
    """
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > _MAX_NAME
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        raise InvalidArgumentError(
            f"{arg}={value!r} is not a run name; give 1 to {_MAX_NAME} characters on one line, "
            "not only spaces (for example 'lr=0.1-rerun')"
        )
    return value


def check_note(value: Any, arg: str = "note") -> str | None:
    """``value`` as a note: text of up to 64 KiB (newlines allowed); ``""`` or None clears it.

    Example:
        >>> check_note("diverged after epoch 3"), check_note("")
        ('diverged after epoch 3', None)
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > _MAX_NOTE:
        raise InvalidArgumentError(
            f"{arg}={_short(value)} is not a note; give text of at most {_MAX_NOTE} bytes ('' clears the note)"
        )
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in value):
        raise InvalidArgumentError(
            f"{arg}={_short(value)} holds control characters; give plain text (newlines and tabs are fine)"
        )
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def new_edit(now: float, **changes: Any) -> dict[str, Any]:
    """An edit document: ``changes`` (fields of the schema above) checked, stamped with ``now``.

    Raises:
        InvalidArgumentError: a field is not one of the schema's, or a value is not allowed.

    Example:
        >>> new_edit(1.5, add_tags=["best"], note="")
        {'format_version': 1, 'time': 1.5, 'add_tags': ['best'], 'note': None}
    """
    doc: dict[str, Any] = {"format_version": EDIT_VERSION, "time": float(now)}
    for key, value in changes.items():
        if key in ("add_tags", "remove_tags"):
            doc[key] = [check_tag(t) for t in value]
        elif key == "note":
            doc[key] = check_note(value)
        elif key == "name":
            doc[key] = check_name(value)
        elif key == "archived":
            if not isinstance(value, bool):
                raise InvalidArgumentError(f"archived={value!r} is not true or false")
            doc[key] = value
        else:
            raise InvalidArgumentError(f"{key}={value!r} is not an edit; edits are: {', '.join(_FIELDS)}")
    return doc


def new_tombstone(now: float, run_id: str, live: bool = False) -> dict[str, Any]:
    """The deletion mark of ``run_id``; ``live``: the run was live when deleted (``rm --force``),
    so its writer finishes the deletion and ``rm --undo`` cannot take it back.

    Example:
        >>> new_tombstone(2.0, "r1")
        {'format_version': 1, 'time': 2.0, 'run': 'r1'}
        >>> new_tombstone(2.0, "r1", live=True)["live"]
        True
    """
    return {"format_version": EDIT_VERSION, "time": float(now), "run": run_id, **({"live": True} if live else {})}


def parse_edit(doc: Any) -> tuple[dict[str, Any], list[str]]:
    """An edit document as read, checked: the fields that can be folded, and what was wrong.

    A field of the wrong type is left out (and named); a document of a newer version is
    not folded at all.

    Example:
        >>> parse_edit({"format_version": 1, "time": 1.0, "note": "hi", "archived": "yes"})
        ({'note': 'hi'}, ["field 'archived' is 'yes'; expected true or false"])
        >>> parse_edit({"format_version": 9})[1]
        ["format_version 9 is newer than this reader's 1; upgrade lightning-tracker to read it"]
    """
    if not isinstance(doc, Mapping):
        return {}, [f"is {type(doc).__name__}, not an object"]
    version = doc.get("format_version")
    if isinstance(version, int) and version > EDIT_VERSION:
        return {}, [
            f"format_version {version} is newer than this reader's {EDIT_VERSION}; upgrade lightning-tracker to read it"
        ]
    out: dict[str, Any] = {}
    problems = []
    for key, expected in _FIELDS.items():
        if key not in doc:
            continue
        value = doc[key]
        if key in ("add_tags", "remove_tags"):
            ok = isinstance(value, list) and all(isinstance(t, str) for t in value)
        elif key == "note":
            ok = value is None or isinstance(value, str)
        elif key == "name":
            ok = isinstance(value, str) and bool(value.strip())
        else:
            ok = isinstance(value, bool)
        if ok:
            out[key] = value
        else:
            problems.append(f"field {key!r} is {_short(value)}; expected {expected}")
    return out, problems


@dataclass(frozen=True)
class Folded:
    """A run's editable fields after its edits: what every reader shows."""

    name: str | None
    tags: tuple[str, ...]
    note: str | None
    archived: bool


def fold(run_doc: Mapping[str, Any], edits: Iterable[Mapping[str, Any]]) -> Folded:
    """The rule, the only copy: ``edits`` (parsed, in name order) applied over ``run.json``'s fields.

    Tags are a set (added, then removed, edit by edit, kept in the order first added);
    the note, the name and ``archived`` are the last one set.

    Example:
        >>> fold({"name": "a", "tags": ["x", "baseline"]}, [{"add_tags": ["best"]}, {"remove_tags": ["baseline"]}])
        Folded(name='a', tags=('x', 'best'), note=None, archived=False)
        >>> fold({"notes": "old"}, [{"note": "new", "name": "b"}, {"archived": True}])
        Folded(name='b', tags=(), note='new', archived=True)
    """
    name = run_doc.get("name")
    tags = list(dict.fromkeys(run_doc.get("tags") or []))
    note = run_doc.get("notes")
    archived = False
    for edit in edits:
        for tag in edit.get("add_tags", ()):
            if tag not in tags:
                tags.append(tag)
        removed = set(edit.get("remove_tags", ()))
        tags = [t for t in tags if t not in removed]
        note = edit.get("note", note)
        name = edit.get("name", name)
        archived = edit.get("archived", archived)
    return Folded(name=name, tags=tuple(tags), note=note, archived=archived)
