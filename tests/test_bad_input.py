"""Property-based tests: any metric, hyperparameter or name is stored faithfully or rejected
with a clear error naming the value, and never crashes training."""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.documents import run_params

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.booleans(),
    st.floats(width=32).map(np.float32),
    st.integers(-(2**31), 2**31 - 1).map(np.int64),
    st.floats(allow_nan=True).map(lambda v: torch.tensor(v)),
)
# values a careless training loop can hand over: each is stored exactly or skipped with a warning
odd_numbers = st.one_of(
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=False, max_magnitude=1e30).map(lambda z: torch.tensor(z)),
    st.complex_numbers(allow_nan=False, max_magnitude=1e30).map(np.complex64),
    st.complex_numbers(allow_nan=True).map(np.complex128),
    st.integers(min_value=2**1000, max_value=2**1400).flatmap(lambda n: st.sampled_from([n, -n])),
    st.fractions(),
    st.integers(1, 2000).map(lambda e: Fraction(10**e, 3)),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.integers(300, 5000).map(lambda e: Decimal(f"1e{e}")),
    st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN"), Decimal("1e-400"), 10**400]),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: torch.tensor(n)),
    st.sampled_from([np.uint64(2**64 - 1), np.array(2.5), np.array(1 + 2j), torch.tensor(True)]),
)
not_numbers = st.one_of(st.none(), any_text, st.binary(max_size=8), st.just(torch.ones(3)), st.just(object()))


def _expected(value: Any) -> float | None:
    """What a value must be stored as, or None when it must be skipped: real numbers that a
    float64 holds (rounded as ``float`` rounds them); not complex numbers, not finite numbers
    beyond float64's range, not signaling NaNs."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            return None
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value[()]
    real = (int, float, np.integer, np.floating, np.bool_, Fraction, Decimal)
    if isinstance(value, (complex, np.complexfloating)) or not isinstance(value, real):
        return None
    if isinstance(value, Decimal) and value.is_snan():
        return None
    try:
        result = float(value)
    except OverflowError:  # ints and fractions beyond float64
        return None
    if math.isinf(result) and isinstance(value, Decimal) and value.is_finite():
        return None  # Decimal("1e400") would read as infinity
    return result


@SETTINGS
@given(points=st.lists(st.tuples(any_text, st.one_of(numbers, odd_numbers, not_numbers)), min_size=1, max_size=12))
def test_any_metric_is_stored_faithfully_or_skipped_with_a_warning(
    points: list[tuple[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"memory://bad-{uuid.uuid4().hex[:8]}"
    logger = TrackerLogger(url, name="p", tensorboard=False)
    expected: dict[str, float] = {}
    with caplog.at_level(logging.WARNING):
        for step, (key, value) in enumerate(points):
            logger.log_metrics({key: value}, step=step)  # must never raise
            stored = _expected(value)
            if stored is not None and not any(0xD800 <= ord(c) <= 0xDFFF for c in key):
                expected[key] = stored
        logger.finalize("success")
    run = Store(url).run(logger.version)
    assert run.status == "finished"
    stored = {k: s["last"] for k, s in run.summary.items()}
    assert set(stored) == set(expected)
    for key, value in expected.items():
        got = stored[key]
        assert (math.isnan(got) and math.isnan(value)) or got == value, (key, got, value)


def _hparams() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        any_text,
        st.binary(max_size=16),
        st.text(min_size=5000, max_size=20000),
        st.floats(allow_nan=False).map(np.float64),
        st.integers(0, 100).map(lambda n: torch.arange(n % 5)),
    )
    keys = st.one_of(any_text, st.integers(), st.tuples(st.integers(), st.integers()), st.booleans())
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
        max_leaves=30,
    )


@SETTINGS
@given(
    params=st.dictionaries(st.one_of(any_text, st.integers()), _hparams(), max_size=6),
    cyclic=st.booleans(),
    depth=st.integers(0, 200),
)
def test_any_hyperparameters_are_stored_as_strict_json(params: dict[Any, Any], cyclic: bool, depth: int) -> None:
    if cyclic:
        params["self"] = params
    deep: Any = "bottom"
    for _ in range(depth):
        deep = {"d": deep}
    params["deep"] = deep
    url = f"memory://hp-{uuid.uuid4().hex[:8]}"
    logger = TrackerLogger(url, name="p", tensorboard=False)
    logger.log_hyperparams(params)  # must never raise
    logger.log_hyperparams(params)  # twice is fine
    logger.finalize("success")
    store = Store(url)
    raw = store.storage.read_bytes(f"p/{logger.version}/config.json")
    doc = json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    run = store.run(logger.version)
    assert run.config == doc["nested"] and run.flat_config == run_params(doc["flat"])  # run.json: values capped
    node = run.config["deep"]
    for _ in range(min(depth, 60)):
        node = node["d"]
    if depth <= 60:
        assert node == "bottom", "nesting within the limit is kept exactly"
    for key, value in params.items():
        name = key if isinstance(key, str) else str(key)
        if isinstance(value, str) and key != "self" and not any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            assert run.config[name] == value or run.config[name] == "***REDACTED***", "strings are never truncated"


@settings(max_examples=60, deadline=None)
@given(name=any_text)
def test_project_and_run_names_never_escape_save_dir(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("names")
    for arg in ("name", "version"):
        try:
            logger = TrackerLogger(root, **{arg: name})
        except InvalidArgumentError as err:
            assert arg in str(err) and repr(name) in str(err)
            continue
        real = os.path.realpath(logger.log_dir)
        assert real.startswith(str(root) + os.sep) and os.path.dirname(os.path.dirname(real)) == str(root)


@pytest.mark.parametrize(
    "name", ["..", ".", "../x", "/etc", "a/b", "a\\\\b", "x\\n", "\\x00", "", "a" * 129, ".hidden"]
)
def test_dangerous_names_are_rejected_with_the_fix(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="folder name inside save_dir"):
        TrackerLogger(tmp_path, name=name)
    with pytest.raises(InvalidArgumentError, match="version="):
        TrackerLogger(tmp_path, version=name)
