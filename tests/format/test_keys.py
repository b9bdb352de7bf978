"""The one owner of what a key names, which metrics form a family and which matter first (pure)."""

from __future__ import annotations

import pytest

from lightning_tracker.format import keys, query, status, validate

PARAMS = ["lr", "width", "name", "summary.x", "start"]
METRICS = ["lr", "val/acc", "loss", "status", "x", "epoch"]


@pytest.mark.parametrize(
    ("key", "column"),
    [
        ("lr", "config.lr"),  # a bare key: the hyperparameter before the metric
        ("config.lr", "config.lr"),
        ("params.lr", "config.lr"),
        ("summary.lr", "summary.lr"),
        ("val/acc", "summary.val/acc"),
        ("name", "name"),  # a field before a hyperparameter of the same name
        ("config.name", "config.name"),
        ("status", "status"),
        ("summary.status", "summary.status"),
        ("summary.x", "summary.x"),  # the prefix is read first: the metric x
        ("config.summary.x", "config.summary.x"),
        ("nothing", None),
        ("summary.width", None),
        ("config.loss", None),
    ],
)
def test_a_bare_key_names_a_field_then_a_hyperparameter_then_a_metric(key: str, column: str | None) -> None:
    assert keys.column(key, PARAMS, METRICS) == column


def test_the_query_grammar_resolves_keys_through_the_same_owner() -> None:
    record = {"name": "run-0", "params": {"lr": 0.1, "name": "shadow"}, "summary": {"lr": 0.09, "loss": 1.0}}
    expected = {"lr": 0.1, "summary.lr": 0.09, "config.lr": 0.1, "loss": 1.0, "name": "run-0", "config.name": "shadow"}
    for key, value in expected.items():
        assert query.resolve(record, key) == value, key
    assert query.resolve(record, "nothing") is query.MISSING
    assert query.FIELDS == keys.FIELDS


# run A has the hyperparameter lr (no metric lr), run B the metric lr (no hyperparameter lr)
RUN_A = {"name": "run-a", "params": {"lr": 0.5}, "summary": {}}
RUN_B = {"name": "run-b", "params": {}, "summary": {"lr": 0.001}}


def test_a_bare_key_is_decided_over_the_runs_queried_not_each_run() -> None:
    params, metrics = query.scope([RUN_A, RUN_B])
    assert (params, metrics) == ({"lr"}, {"lr"})
    assert keys.locate("lr", params, metrics) == ("params", "lr") and keys.column("lr", params, metrics) == "config.lr"
    assert query.resolve(RUN_B, "lr", (params, metrics)) is query.MISSING, "B has no hyperparameter lr"
    assert query.resolve(RUN_B, "summary.lr", (params, metrics)) == 0.001
    assert query.parse("lr<0.01").select([RUN_A, RUN_B]) == [False, False]
    assert query.parse("summary.lr<0.01").select([RUN_A, RUN_B]) == [False, True]
    assert keys.labels(params, metrics) == {"config.lr": "lr", "summary.lr": "summary.lr"}
    # with no hyperparameter lr among the runs, lr is the metric
    assert query.parse("lr<0.01").select([RUN_B]) == [True]
    assert keys.column("lr", *query.scope([RUN_B])) == "summary.lr"


def test_every_header_is_distinct_and_resolves_back_to_its_column() -> None:
    labels = keys.labels(PARAMS, METRICS)
    assert labels["config.lr"] == "lr" and labels["summary.lr"] == "summary.lr"
    assert labels["summary.loss"] == "loss" and labels["config.name"] == "config.name"
    assert labels["config.start"] == "config.start", "not mistaken for the start column"
    assert len(set(labels.values())) == len(labels)
    assert not set(labels.values()) & set(keys.RESERVED), "no header shadows a table's own column"
    for col, header in labels.items():
        assert keys.column(header, PARAMS, METRICS) == col, header


@pytest.mark.parametrize(
    ("key", "family"),
    [
        ("system/cpu_percent", "system"),
        ("fit-system/cpu_percent", "system"),  # TrackerLogger(prefix="fit")
        ("stage/a-system/gpu0/utilization_percent", "system"),
        ("gradients/norm_total", "gradients"),
        ("fit-gradients/norm/encoder", "gradients"),
        ("parameters/update_ratio_total", "parameters"),
        ("fit-parameters/norm_total", "parameters"),
        ("val/loss", None),
        ("mysystem/cpu", None),
        ("system", None),
        ("lr-SGD", None),
        ("-system/cpu", None),  # no prefix before the join character
    ],
)
def test_families_are_recognised_under_a_logger_prefix_too(key: str, family: str | None) -> None:
    assert keys.family(key) == family
    assert keys.is_score(key) == (family is None)


def test_the_logger_joins_its_prefix_with_the_character_the_owner_expects() -> None:
    from lightning_tracker.integration.logger import TrackerLogger

    assert TrackerLogger.LOGGER_JOIN_CHAR == keys.JOIN


def test_metrics_are_ordered_monitored_val_train_test_others_epoch_families() -> None:
    names = [
        "system/cpu_percent",
        "epoch",
        "aaa",
        "test/acc",
        "train/loss",
        "train_acc",
        "val/acc",
        "val/loss",
        "gradients/norm_total",
        "Validation_f1",
        "fit-val/x",
        "lr-SGD",
        "parameters/norm_total",
    ]
    assert keys.metric_order(names, ["train/loss"]) == [
        "train/loss",
        "Validation_f1",
        "fit-val/x",
        "val/acc",
        "val/loss",
        "train_acc",
        "test/acc",
        "aaa",
        "lr-SGD",
        "epoch",
        "gradients/norm_total",
        "parameters/norm_total",
        "system/cpu_percent",
    ]
    assert keys.main_metric(names) == "Validation_f1"
    assert keys.main_metric(["epoch", "system/cpu_percent"]) is None


def test_the_most_common_monitor_comes_first() -> None:
    assert keys.monitored(["val/loss", None, "val/acc", "val/acc", ""]) == ["val/acc", "val/loss"]
    assert keys.metric_order(["val/loss", "val/acc"], keys.monitored(["val/loss"])) == ["val/loss", "val/acc"]


def test_statuses_are_the_stored_ones_then_the_derived_ones() -> None:
    assert status.STATUSES == ("running", "finished", "failed", "pruned", "crashed", "damaged")
    run = b'{"format_version": 3, "status": "%s"}'
    stored = [s for s in status.STATUSES if not validate.parse_document("run.json", run % s.encode()).damaged]
    assert stored == list(status.STORED), "what a run.json may hold"
    assert not set(status.DERIVED) & set(status.STORED)


def test_every_status_has_a_style_in_the_terminal_and_on_the_page() -> None:
    import os

    from lightning_tracker.cli import terminal
    from tests.helpers import REPO

    assert set(terminal._STATUS_STYLE) == set(status.STATUSES)
    with open(os.path.join(REPO, "lightning_tracker", "report", "assets", "app.css"), encoding="utf-8") as f:
        css = f.read()
    assert [s for s in status.STATUSES if f".status-{s}" not in css] == []
