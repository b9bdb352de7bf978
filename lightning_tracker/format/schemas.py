"""The Arrow schemas of the Parquet chunks: metric points, histograms and the media index.

Writers build chunks with these schemas and readers cast what they read to them, so a
column added later reads as null in older chunks. Every chunk carries its format version
in the Parquet schema metadata (:data:`CHUNK_VERSION_KEY`, written by
:func:`with_chunk_version`): a change that breaks existing readers of chunks increments
:data:`CHUNK_VERSION`, and a reader refuses a chunk newer than it knows
(:func:`~lightning_tracker.format.validate.decode_chunk`). A chunk without the key
(written before chunks were versioned) is version 1.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

__all__ = [
    "CHUNK_VERSION",
    "CHUNK_VERSION_KEY",
    "HISTOGRAMS",
    "MEDIA",
    "METRICS",
    "PARQUET_OPTIONS",
    "chunk_version",
    "with_chunk_version",
]

CHUNK_VERSION = 1  # of metrics/, histograms/ and media/ chunks: one number for the three schemas
CHUNK_VERSION_KEY = b"lightning_tracker.format_version"  # in each chunk's Parquet schema metadata

METRICS = pa.schema(
    [
        ("step", pa.int64()),  # the step given to log_metrics, or the automatic one
        ("time", pa.float64()),  # wall time of the call, Unix seconds
        ("key", pa.dictionary(pa.int32(), pa.string())),  # metric name
        ("value", pa.float64()),  # NaN and ±inf as IEEE values, booleans as 0/1
    ]
)

HISTOGRAMS = pa.schema(
    [
        ("step", pa.int64()),  # optimizer step
        ("time", pa.float64()),
        ("tensor", pa.dictionary(pa.int32(), pa.string())),  # parameter name
        ("kind", pa.dictionary(pa.int32(), pa.string())),  # "gradient" or "parameter"
        ("numel", pa.int64()),  # elements of the whole tensor (all shards)
        ("edges", pa.list_(pa.float64())),  # bins + 1 equal-width edges, finite min to max
        ("counts", pa.list_(pa.int64())),  # one count per bin; NaN and ±inf are not in them
        ("norm", pa.float64()),  # L2 norm of the whole tensor
        ("min", pa.float64()),  # over the finite values
        ("max", pa.float64()),
        ("sum", pa.float64()),
        ("zeros", pa.int64()),  # exact zeros
        ("nan", pa.int64()),
        ("posinf", pa.int64()),
        ("neginf", pa.int64()),
        ("update_ratio", pa.float64()),  # |Δw| / |w| of the last optimizer step (NaN for gradients)
    ]
)

MEDIA = pa.schema(
    [
        ("step", pa.int64()),  # the step given to log_image/log_text/log_table, or the last logged one
        ("time", pa.float64()),
        ("key", pa.dictionary(pa.int32(), pa.string())),  # the key given (e.g. "val/samples")
        ("index", pa.int32()),  # position in the list of images logged together (0 for text and tables)
        ("kind", pa.dictionary(pa.int32(), pa.string())),  # a key of layout.MEDIA_KINDS ("image", "text", "table", ...)
        ("caption", pa.string()),  # null when none was given
        ("width", pa.int32()),  # pixels; columns for text and tables
        ("height", pa.int32()),  # pixels; rows for text and tables
        ("object", pa.string()),  # file name in media-files/: <sha256>.png | .webp | .parquet
        ("sha256", pa.string()),  # of the object's bytes (hex)
        ("thumbnail", pa.string()),  # file name in media-files/ of a preview at most 128 px wide and high
    ]
)

# how every chunk is written: zstd, with the name columns dictionary-encoded
PARQUET_OPTIONS: dict[pa.Schema, dict[str, object]] = {
    METRICS: {"compression": "zstd", "use_dictionary": ["key"]},
    HISTOGRAMS: {"compression": "zstd", "use_dictionary": ["tensor", "kind"]},
    MEDIA: {"compression": "zstd", "use_dictionary": ["key", "kind"]},
}


def with_chunk_version(table: pa.Table) -> pa.Table:
    """``table`` stamped with this format's :data:`CHUNK_VERSION`, as every chunk is written.

    Example:
        >>> chunk_version(with_chunk_version(pa.table({"step": [0]})).schema.metadata)
        1
    """
    return table.replace_schema_metadata({**(table.schema.metadata or {}), CHUNK_VERSION_KEY: b"%d" % CHUNK_VERSION})


def chunk_version(metadata: Mapping[bytes, bytes] | None) -> int:
    """A chunk's format version from its Parquet schema metadata; 1 without the key (an older chunk).

    Raises:
        ValueError: the value is not a whole number (a reader does not guess what such a chunk holds).

    Example:
        >>> chunk_version(None), chunk_version({CHUNK_VERSION_KEY: b"2"})
        (1, 2)
    """
    value = (metadata or {}).get(CHUNK_VERSION_KEY)
    if value is None:
        return 1
    if not value.isdigit():
        raise ValueError(f"chunk format version {value!r} is not a whole number")
    return int(value)
