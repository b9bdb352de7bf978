"""Environment variables: declared once in ``_settings``, read at call time, listed in the README."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import _settings
from lightning_tracker._settings import (
    CHECK_TIMEOUT_S,
    PROBE_TIMEOUT_S,
    SETTINGS,
    SPOOL,
    STORAGE_OPTIONS,
    STORE,
    TB_ROTATE_S,
)
from lightning_tracker.exceptions import InvalidArgumentError
from tests.helpers import REPO

PACKAGE = Path(_settings.__file__).parent


def test_every_variable_is_listed_in_the_readme() -> None:
    readme = (Path(REPO) / "README.md").read_text(encoding="utf-8")
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in readme]
    assert not missing, f"README.md lists no {missing}: add them to its table of environment variables"


def test_every_variable_the_package_names_is_declared_in_settings() -> None:
    declared = {s.name for s in SETTINGS}
    named: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in re.findall(r"\b_?LIGHTNING_TRACKER_[A-Z0-9_]+", node.value):
                    named.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    assert {n: where for n, where in named.items() if n not in declared} == {}


def test_only_the_settings_module_reads_lightning_tracker_variables() -> None:
    readers = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_settings.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"(os\.environ\.get|os\.getenv)\(\s*[\"']_?LIGHTNING_TRACKER_", line):
                readers.append(f"{path.relative_to(PACKAGE)}:{number}")
    assert readers == []


def test_every_variable_has_a_name_a_default_and_one_line_of_doc() -> None:
    for setting in SETTINGS:
        assert setting.name.lstrip("_").startswith("LIGHTNING_TRACKER_"), setting.name
        assert setting.doc and "\n" not in setting.doc, setting.name
        assert setting.shown_default, setting.name
    assert [s.name for s in SETTINGS if s.internal] == ["_LIGHTNING_TRACKER_RUN_IDS"]


def test_unset_or_empty_variables_give_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.name, raising=False)
    assert (STORE.get(), STORAGE_OPTIONS.get(), SPOOL.get()) == ("./runs", None, None)
    assert (TB_ROTATE_S.get(), PROBE_TIMEOUT_S.get(), CHECK_TIMEOUT_S.get()) == (120.0, 5.0, 30.0)
    monkeypatch.setenv("LIGHTNING_TRACKER_CHECK_TIMEOUT_S", " ")
    assert CHECK_TIMEOUT_S.get() == 30.0


def test_a_variable_set_after_import_counts_at_the_next_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_PROBE_TIMEOUT_S", "0.25")
    assert PROBE_TIMEOUT_S.get() == 0.25
    monkeypatch.setenv("LIGHTNING_TRACKER_PROBE_TIMEOUT_S", "7")
    assert PROBE_TIMEOUT_S.get() == 7.0
    monkeypatch.setenv("LIGHTNING_TRACKER_STORAGE_OPTIONS", '{"anon": true}')
    assert STORAGE_OPTIONS.get() == {"anon": True}


def test_the_spool_variable_set_after_import_moves_a_new_run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_tracker import TrackerLogger

    monkeypatch.setenv("LIGHTNING_TRACKER_SPOOL", str(tmp_path / "elsewhere"))
    logger = TrackerLogger("memory://settings-spool", name="p", version="r1")
    logger.log_metrics({"a": 1.0}, step=0)
    logger.finalize("success")
    assert (tmp_path / "elsewhere" / "memory").is_dir()


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("LIGHTNING_TRACKER_PROBE_TIMEOUT_S", "abc", "is not a number"),
        ("LIGHTNING_TRACKER_CHECK_TIMEOUT_S", "-1", "is not a finite number >= 0"),
        ("LIGHTNING_TRACKER_TB_ROTATE_S", "nan", "is not a finite number >= 0"),
        ("LIGHTNING_TRACKER_STORAGE_OPTIONS", "{anon}", "is not JSON"),
        ("LIGHTNING_TRACKER_STORAGE_OPTIONS", "[1]", "is not a JSON object"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_the_value_and_the_fix(
    name: str, value: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setting = next(s for s in SETTINGS if s.name == name)
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgumentError) as err:
        setting.get()
    message = str(err.value)
    assert message.startswith(f"${name}={value!r} {said}"), message
    assert f"set it to {setting.allowed}, e.g. {name}=" in message and "or unset it for the default" in message
    assert "\n" not in message


def test_a_bad_timeout_fails_when_the_logger_is_built_not_mid_training(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_tracker import TrackerLogger

    monkeypatch.setenv("LIGHTNING_TRACKER_PROBE_TIMEOUT_S", "abc")
    logger = TrackerLogger(tmp_path, name="p")
    with pytest.raises(InvalidArgumentError, match=r"\$LIGHTNING_TRACKER_PROBE_TIMEOUT_S='abc' is not a number"):
        logger.log_metrics({"a": 1.0}, step=0)  # the run opens at its first record


def test_only_internal_variables_are_set_by_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_tracker._settings import RUN_IDS

    monkeypatch.delenv(RUN_IDS.name, raising=False)
    RUN_IDS.publish('{"pid": 1, "ids": ["abc"]}')
    assert RUN_IDS.get() == (1, ("abc",))
    with pytest.raises(InvalidArgumentError, match="LIGHTNING_TRACKER_STORE is the user's setting"):
        STORE.publish("./elsewhere")
