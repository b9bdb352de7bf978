"""Property-based tests: any metric, hyperparameter or name is stored faithfully or rejected
with a clear error naming the value, and never crashes training."""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError

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
not_numbers = st.one_of(st.none(), any_text, st.binary(max_size=8), st.just(torch.ones(3)), st.just(object()))


def _numeric(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, (bool, int, float, np.generic))


def _as_float(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


@SETTINGS
@given(points=st.lists(st.tuples(any_text, st.one_of(numbers, not_numbers)), min_size=1, max_size=12))
def test_any_metric_is_stored_faithfully_or_skipped_with_a_warning(
    points: list[tuple[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"memory://bad-{uuid.uuid4().hex[:8]}"
    logger = TrackerLogger(url, name="p", tensorboard=False)
    expected: dict[str, float] = {}
    with caplog.at_level(logging.WARNING):
        for step, (key, value) in enumerate(points):
            logger.log_metrics({key: value}, step=step)  # must never raise
            if _numeric(value) and not any(0xD800 <= ord(c) <= 0xDFFF for c in key):
                expected[key] = _as_float(value)
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
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), any_text,
        st.binary(max_size=16), st.text(min_size=5000, max_size=20000),
        st.floats(allow_nan=False).map(np.float64), st.integers(0, 100).map(lambda n: torch.arange(n % 5)),
    )  # fmt: skip
    keys = st.one_of(any_text, st.integers(), st.tuples(st.integers(), st.integers()), st.booleans())
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
        max_leaves=30,
    )


@SETTINGS
@given(params=st.dictionaries(st.one_of(any_text, st.integers()), _hparams(), max_size=6), cyclic=st.booleans(),
       depth=st.integers(0, 200))  # fmt: skip
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
    assert run.config == doc["nested"] and run.flat_config == doc["flat"]
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


@pytest.mark.parametrize("name", ["..", ".", "../x", "/etc", "a/b", "a\\\\b", "x\\n", "\\x00", "", "a" * 129, ".hidden"])
def test_dangerous_names_are_rejected_with_the_fix(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="folder name inside save_dir"):
        TrackerLogger(tmp_path, name=name)
    with pytest.raises(InvalidArgumentError, match="version="):
        TrackerLogger(tmp_path, version=name)
