"""How the dashboard compresses what it sends: gzip, for a client whose ``Accept-Encoding`` allows it.

The data of a sweep is mostly numbers as JSON text: the first ``/api/data`` of 1,000 runs ×
10 metrics is 12 MB as it is and about a quarter of that compressed (``benchmarks/report_scale.py``).
A body under :data:`GZIP_MIN_BYTES` is sent as it is: gzip's header and trailer would make
it longer. Images are sent as they are (already compressed).

Compression is safe here: a compressed body that holds a secret next to text an attacker
chooses lets the attacker guess the secret from the body's length (BREACH), and no body of
the dashboard holds one (the token is never in a body) nor repeats the request.
"""

from __future__ import annotations

import gzip

__all__ = ["GZIP_LEVEL", "GZIP_MIN_BYTES", "accepts_gzip", "gzip_bytes"]

GZIP_MIN_BYTES = 1024
"""The smallest body sent compressed."""

GZIP_LEVEL = 1
"""The level of the data's compression: the fastest, since ``/api/data`` is compressed again at
every rebuild; JSON of numbers shrinks about 4× at level 1, and level 6 saves little more for
about three times the CPU."""

_GZIP_CODINGS = ("gzip", "x-gzip")  # RFC 9110 8.4.1.3: x-gzip is gzip


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (RFC 9110 12.5.3: ``q=0`` refuses it, ``*`` is any other).

    Example:
        >>> [accepts_gzip(h) for h in ("gzip, deflate, br", "GZIP;q=0.5", "*", "gzip;q=0", "br", None)]
        [True, True, True, False, False, False]
    """
    weights: dict[str, float] = {}
    for part in (header or "").split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # a weight that cannot be read accepts nothing
        if coding:
            weights[coding.lower()] = weight
    named = [weights[c] for c in _GZIP_CODINGS if c in weights]
    if named:
        return max(named) > 0
    return weights.get("*", 0.0) > 0


def gzip_bytes(body: bytes, level: int = GZIP_LEVEL) -> bytes:
    """``body`` gzip-compressed; the same bytes for the same body (no time in the header).

    Example:
        >>> packed = gzip_bytes(b"[1,2,3]" * 1000)
        >>> len(packed) < 100, gzip.decompress(packed) == b"[1,2,3]" * 1000, packed == gzip_bytes(b"[1,2,3]" * 1000)
        (True, True, True)
    """
    return gzip.compress(body, compresslevel=level, mtime=0)
