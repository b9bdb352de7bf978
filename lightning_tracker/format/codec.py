"""The JSON codec of every document: strict JSON, with NaN and ±inf kept as strings.

JSON has no NaN or infinity, so they are written as ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``. :func:`decode_number` maps them back where a document holds numbers
(summaries, scores); elsewhere such a string stays the string it may really be.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["decode_number", "dumps", "loads"]

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _encode(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    return obj


def dumps(obj: Any) -> bytes:
    """Serializes a document as UTF-8 strict JSON, indented by one space.

    Example:
        >>> dumps({"a": float("nan"), "b": [1.5, float("-inf")]})
        b'{\\n "a": "NaN",\\n "b": [\\n  1.5,\\n  "-Infinity"\\n ]\\n}'
    """
    return json.dumps(_encode(obj), indent=1, ensure_ascii=False, allow_nan=False).encode()


def loads(data: bytes | str) -> Any:
    """Parses a document written by :func:`dumps` (non-finite numbers stay strings)."""
    return json.loads(data)


def decode_number(value: Any) -> Any:
    """A number field's value: ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` become floats.

    Example:
        >>> decode_number("Infinity"), decode_number(0.5), decode_number(None)
        (inf, 0.5, None)
    """
    return _NONFINITE.get(value, value) if isinstance(value, str) else value
