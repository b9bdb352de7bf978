"""The Arrow schemas of the Parquet chunks: metric points and histograms.

Writers build chunks with these schemas and readers cast what they read to them, so a
column added later reads as null in older chunks.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["HISTOGRAMS", "METRICS", "PARQUET_OPTIONS"]

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

# how every chunk is written: zstd, with the name columns dictionary-encoded
PARQUET_OPTIONS: dict[pa.Schema, dict[str, object]] = {
    METRICS: {"compression": "zstd", "use_dictionary": ["key"]},
    HISTOGRAMS: {"compression": "zstd", "use_dictionary": ["tensor", "kind"]},
}
