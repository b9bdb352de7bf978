"""The chunk naming and coverage rule of ``lightning_tracker.format.layout``."""

from __future__ import annotations

import random

from lightning_tracker.format.layout import chunk_name, covered_chunks, live_chunks, new_writer_key, parse_chunk_name


def test_two_writers_of_one_session_never_cover_each_other() -> None:
    a, b = new_writer_key(), new_writer_key()
    names = [chunk_name(1, 0, 15, a), chunk_name(1, 3, 3, b), chunk_name(1, 0, 0, b), chunk_name(1, 2, 2, a)]
    assert live_chunks(names) == sorted([chunk_name(1, 0, 15, a), chunk_name(1, 0, 0, b), chunk_name(1, 3, 3, b)])
    assert covered_chunks(names) == [chunk_name(1, 2, 2, a)]


def test_name_order_is_read_order() -> None:
    rng = random.Random(0)
    writers = ["", *(new_writer_key() for _ in range(3))]
    ids = {(rng.randrange(3), rng.choice(writers), f, f + rng.randrange(3)) for f in range(0, 300, 3)}
    names = [chunk_name(s, f, last, w) for s, w, f, last in ids]
    parsed = [parse_chunk_name(n) for n in sorted(names)]
    assert parsed == sorted(parsed, key=lambda c: (c.session, c.writer, c.first, c.last))
    assert live_chunks(names) == sorted(live_chunks(names))


def test_a_name_with_a_trailing_newline_or_a_wrong_key_is_not_a_chunk() -> None:
    assert parse_chunk_name(chunk_name(0, 1, 1) + "\n") is None
    assert parse_chunk_name("000-K3F-00000001-00000001.parquet") is None
    assert parse_chunk_name("000-00000001-00000001.parquet") == (0, 1, 1, "")
