"""Every environment variable lightning_tracker reads: its name, type, default and meaning.

Each variable is declared here once, as a :class:`Setting`, and read when it is used,
never at import: ``os.environ`` changed after import (a test's ``monkeypatch.setenv``, a
notebook's ``%env``) counts from the next read. An empty variable counts as unset. A
value that cannot be used raises :class:`~lightning_tracker.exceptions.InvalidArgumentError`
in one line naming the variable, the value and the fix.

The README's table of variables lists every :data:`SETTINGS` entry (a test checks it).

Example:
    >>> import os
    >>> PROBE_TIMEOUT_S.get()
    5.0
    >>> os.environ["LIGHTNING_TRACKER_PROBE_TIMEOUT_S"] = "0.5"
    >>> PROBE_TIMEOUT_S.get()
    0.5
    >>> os.environ["LIGHTNING_TRACKER_PROBE_TIMEOUT_S"] = "soon"
    >>> PROBE_TIMEOUT_S.get()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lightning_tracker.exceptions.InvalidArgumentError: $LIGHTNING_TRACKER_PROBE_TIMEOUT_S='soon' is not a number; ...
    >>> del os.environ["LIGHTNING_TRACKER_PROBE_TIMEOUT_S"]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lightning_tracker.exceptions import InvalidArgumentError

__all__ = [
    "ALERTS",
    "ALERTS_LINK",
    "CHECK_TIMEOUT_S",
    "KEEP_SPOOL",
    "PROBE_TIMEOUT_S",
    "RUN_IDS",
    "SERVE_TOKEN",
    "SETTINGS",
    "SPOOL",
    "STORAGE_OPTIONS",
    "STORE",
    "TB_ROTATE_S",
    "Setting",
    "json_object",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: read and parsed by :meth:`get` at each call.

    Attributes:
        name: the variable's name.
        doc: one line: what the variable changes.
        default: the value when the variable is unset or empty.
        shown_default: the default as the README shows it.
        parse: turns the text into the value; raises ``ValueError`` saying what is wrong.
        allowed: what a value must be, for the error message ("a number of seconds >= 0").
        example: a valid value, for the error message.
        internal: set by lightning_tracker itself (between processes), not by users.
    """

    name: str
    doc: str
    default: T
    shown_default: str
    parse: Callable[[str], T]
    allowed: str
    example: str
    internal: bool = False

    def get(self) -> T:
        """The variable's value now: parsed, or the default when unset or empty.

        Raises:
            InvalidArgumentError: the value cannot be parsed; the message names the
                variable, the value and the fix.
        """
        text = os.environ.get(self.name, "")
        if not text.strip():
            return self.default
        try:
            return self.parse(text)
        except ValueError as err:
            raise InvalidArgumentError(
                f"${self.name}={text!r} {err}; set it to {self.allowed}, e.g. {self.name}={self.example}, "
                f"or unset it for the default ({self.shown_default})"
            ) from None

    def publish(self, text: str) -> None:
        """Sets an internal variable for this process and the processes it starts.

        Raises:
            InvalidArgumentError: the variable is a user's setting, not an internal one.
        """
        if not self.internal:
            raise InvalidArgumentError(f"${self.name} is the user's setting; lightning_tracker never sets it")
        os.environ[self.name] = text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("is not a finite number >= 0")
    return value


def _text(text: str) -> str:
    return text


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("is not a yes/no flag")


def json_object(text: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object (the form of ``storage_options``).

    Raises:
        ValueError: not JSON, or JSON but not an object; the message says which.

    Example:
        >>> json_object('{"anon": true}')
        {'anon': True}
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"is not JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError("is not a JSON object")
    return value


def _run_ids(text: str) -> tuple[int, tuple[str | None, ...]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"is not JSON ({err})") from None
    ids = value.get("ids") if isinstance(value, dict) else None
    if not isinstance(ids, list) or not all(v is None or isinstance(v, str) for v in ids):
        raise ValueError('is not a JSON object {"pid": <publisher>, "ids": [<run ids>]}')
    if not isinstance(value.get("pid"), int):
        raise ValueError("names no publishing process id")
    return value["pid"], tuple(ids)


STORE: Setting[str] = Setting(
    name="LIGHTNING_TRACKER_STORE",
    doc="the store the command line reads when -s/--store is not given",
    default="./runs",
    shown_default="./runs",
    parse=_text,
    allowed="a folder or URL",
    example="s3://bucket/runs",
)
STORAGE_OPTIONS: Setting[dict[str, Any] | None] = Setting(
    name="LIGHTNING_TRACKER_STORAGE_OPTIONS",
    doc="fsspec options (credentials, endpoint_url) as JSON for the command line, when --storage-options is not given",
    default=None,
    shown_default="none",
    parse=json_object,
    allowed="a JSON object",
    example="""'{"anon": true}'""",
)
SPOOL: Setting[str | None] = Setting(
    name="LIGHTNING_TRACKER_SPOOL",
    doc="the local folder where runs bound to a remote store are written first, and where sync looks for them",
    default=None,
    shown_default="~/.cache/lightning_tracker/spool",
    parse=_text,
    allowed="a folder",
    example="/scratch/spool",
)
KEEP_SPOOL: Setting[bool] = Setting(
    name="LIGHTNING_TRACKER_KEEP_SPOOL",
    doc="keep a run's spool folder after its upload is complete (by default it is removed when the logger is done)",
    default=False,
    shown_default="0",
    parse=_flag,
    allowed="1 or 0",
    example="1",
)
TB_ROTATE_S: Setting[float] = Setting(
    name="LIGHTNING_TRACKER_TB_ROTATE_S",
    doc="remote stores: seconds between closing the TensorBoard event file (each closed file is uploaded once)",
    default=120.0,
    shown_default="120",
    parse=_seconds,
    allowed="a number of seconds >= 0",
    example="600",
)
PROBE_TIMEOUT_S: Setting[float] = Setting(
    name="LIGHTNING_TRACKER_PROBE_TIMEOUT_S",
    doc="seconds the first step waits for a remote store to say whether the run exists; a later answer is merged in",
    default=5.0,
    shown_default="5",
    parse=_seconds,
    allowed="a number of seconds >= 0",
    example="5",
)
CHECK_TIMEOUT_S: Setting[float] = Setting(
    name="LIGHTNING_TRACKER_CHECK_TIMEOUT_S",
    doc="resume='must' or 'never': seconds to wait for the store to say whether the run exists, then raise",
    default=30.0,
    shown_default="30",
    parse=_seconds,
    allowed="a number of seconds >= 0",
    example="60",
)
SERVE_TOKEN: Setting[str | None] = Setting(
    name="LIGHTNING_TRACKER_SERVE_TOKEN",
    doc="the token serve asks of every request when --token is not given; needed to serve beyond this machine",
    default=None,
    shown_default="none",
    parse=_text,
    allowed="a random string of 16 letters, digits or ._~- or more",
    example="$(openssl rand -hex 16)",
)
ALERTS: Setting[str | None] = Setting(
    name="LIGHTNING_TRACKER_ALERTS",
    doc="the webhook (Slack-compatible) TrackerLogger sends alerts to when alerts= is not given; never written to disk",
    default=None,
    shown_default="none",
    parse=_text,
    allowed="an http(s) webhook URL",
    example="https://hooks.slack.com/services/T0/B0/XXXX",
)
ALERTS_LINK: Setting[str | None] = Setting(
    name="LIGHTNING_TRACKER_ALERTS_LINK",
    doc="the link an alert gives to its run, with {project} and {run} filled in (a dashboard you serve, say)",
    default=None,
    shown_default="none",
    parse=_text,
    allowed="a URL",
    example="'https://tracker.example.com/?project={project}&run={run}'",
)
RUN_IDS: Setting[tuple[int, tuple[str | None, ...]]] = Setting(
    name="_LIGHTNING_TRACKER_RUN_IDS",
    doc="internal: the run ids rank 0 created and its process id; only the processes it starts itself take them",
    default=(0, ()),
    shown_default="none",
    parse=_run_ids,
    allowed="a JSON object of a process id and run ids",
    example="""'{"pid": 4242, "ids": ["run-1"]}'""",
    internal=True,
)

SETTINGS: tuple[Setting[Any], ...] = (
    STORE,
    STORAGE_OPTIONS,
    SPOOL,
    KEEP_SPOOL,
    TB_ROTATE_S,
    PROBE_TIMEOUT_S,
    CHECK_TIMEOUT_S,
    SERVE_TOKEN,
    ALERTS,
    ALERTS_LINK,
    RUN_IDS,
)
"""Every variable, in the order of the README's table."""
