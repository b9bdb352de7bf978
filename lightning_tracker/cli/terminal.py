"""What the command line prints with: consoles that follow the terminal, and safe text.

Text read from a store (names, tags, metric keys, hyperparameters) is printed as plain
text: never read as rich markup, and with control characters shown as escapes
(``\\x1b``), so stored data cannot restyle or take over the terminal.

A terminal gets colours and a table as wide as the window (rich reads the window's size,
``$COLUMNS`` and ``$NO_COLOR``); a pipe or a file gets plain text, no escape sequences,
and lines as long as the table needs.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from rich.console import Console
from rich.text import Text

__all__ = ["console_for", "fmt_bytes", "fmt_duration", "fmt_value", "plural", "status_text", "text", "visible"]

# a pipe gets every column: as wide as any table we print, short of absurd
PIPE_WIDTH = 100_000

# C0, DEL and C1 controls (ESC, CSI, OSC...), and the bidirectional overrides that reorder text
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

_STATUS_STYLE = {
    "finished": "green",
    "running": "cyan",
    "failed": "red",
    "pruned": "yellow",
    "crashed": "bold red",
    "damaged": "bold red",
}


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich exits with status 1 here; the command decides: `runs | head` read what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), self.file.fileno())
        raise BrokenPipeError


def console_for(stream: Any) -> Console:
    """A console for ``stream``: the terminal's width and colours, or plain unbounded text for a pipe.

    Example:
        >>> import io
        >>> c = console_for(io.StringIO())
        >>> c.is_terminal, c.width > 1000, c.no_color
        (False, True, True)
    """
    if getattr(stream, "isatty", lambda: False)():
        return _Console(file=stream)
    return _Console(file=stream, width=PIPE_WIDTH, no_color=True, highlight=False, soft_wrap=False)


def visible(value: Any) -> str:
    """Stored text as it may reach a terminal: every control character shown as an escape.

    Example:
        >>> visible("a\\x1b[2Jb")
        'a\\\\x1b[2Jb'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", str(value))


def text(value: Any, style: str = "") -> Text:
    """Stored text as a rich ``Text``: printed as it is, never read as markup."""
    return Text(visible(value), style=style)


def status_text(status: str) -> Text:
    """A run's status, coloured by what it means."""
    return text(status, _STATUS_STYLE.get(status, ""))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_value(value: Any) -> str:
    """A hyperparameter or metric as a cell: numbers with 4 significant digits, whole.

    Example:
        >>> [fmt_value(v) for v in (0.005, 0.05, 1e-4, 123456.7, 3, None, True, "adam")]
        ['0.005', '0.05', '0.0001', '1.235e+05', '3', '—', 'True', 'adam']
    """
    if _missing(value):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_duration(seconds: Any) -> str:
    """Seconds as ``m:ss`` or ``h:mm:ss``.

    Example:
        >>> fmt_duration(75), fmt_duration(3725.0), fmt_duration(None)
        ('1:15', '1:02:05', '—')
    """
    if _missing(seconds):
        return "—"
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_bytes(size: float) -> str:
    """A size in B, KB, MB or GB (powers of 1000, as disks and networks count).

    Example:
        >>> fmt_bytes(512), fmt_bytes(4_800_000), fmt_bytes(2.4e9)
        ('512 B', '4.8 MB', '2.4 GB')
    """
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def plural(count: int, word: str) -> str:
    """``1 run``, ``2 runs``.

    Example:
        >>> plural(1, "run"), plural(0, "run"), plural(3, "column")
        ('1 run', '0 runs', '3 columns')
    """
    return f"{count} {word}" + ("" if count == 1 else "s")
