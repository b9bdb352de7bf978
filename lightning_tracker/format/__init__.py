"""The on-disk format of a run: the one owner of every rule a writer and a reader share.

Pure Python plus pyarrow: no fsspec, torch or pandas. ``docs/format.md`` describes the
same rules for people, and a test checks the two against a real run.

- :mod:`~lightning_tracker.format.layout`: file and folder names, chunk names and coverage.
- :mod:`~lightning_tracker.format.codec`: the JSON codec (NaN and ±inf both ways).
- :mod:`~lightning_tracker.format.schemas`: the Arrow schemas of metric and histogram chunks.
- :mod:`~lightning_tracker.format.summary`: one value per (key, step), and the one summary.
- :mod:`~lightning_tracker.format.documents`: the JSON documents, each with its version.
- :mod:`~lightning_tracker.format.query`: the one query grammar (``lr<0.01``, ``val/acc>=0.9``).
- :mod:`~lightning_tracker.format.keys`: what a bare key names, the metric families, which metric matters first.
- :mod:`~lightning_tracker.format.status`: the statuses a run is stored with and the ones a reader derives.
- :mod:`~lightning_tracker.format.validate`: what a reader checks before trusting a document or a chunk.
"""
