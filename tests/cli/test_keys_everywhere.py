"""One rule for keys, metric families, the metric order and statuses: the CLI, the API and the page agree.

Real runs (``TrackerLogger`` to a temp folder), the CLI through ``main([...])``, the API
through ``Store`` and ``Run``, the page through ``report.data.build_payload``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.format import keys, status
from lightning_tracker.report.data import build_payload

# hyperparameter lr and a metric lr (what a scheduler logs) in a different order
CLASH = {"run-0": (0.1, 0.2), "run-1": (0.01, 0.3), "run-2": (0.001, 0.1)}


def _clash(save_dir: str) -> None:
    for name, (lr, logged_lr) in CLASH.items():
        logger = TrackerLogger(save_dir, name="p", run_name=name, tensorboard=False)
        logger.log_hyperparams({"lr": lr, "width": 8})
        logger.log_metrics({"lr": logged_lr, "val/loss": lr * 10, "train/loss": 1.0, "test/acc": 0.5}, step=0)
        logger.finalize("success")


def _runs(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[list[str], list[list[str]]]:
    """The header and the rows (name first) of a piped ``runs`` table."""
    assert main(["runs", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = re.split(r"\s{2,}", next(line for line in lines if line.startswith("id ")).strip())
    rows = [re.split(r"\s{2,}", line.strip())[1:] for line in lines if "run-" in line]
    return header, rows


@pytest.fixture
def clash(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "300")
    save_dir = str(tmp_path / "runs")
    _clash(save_dir)
    return save_dir


def test_a_bare_key_is_the_hyperparameter_in_where_sort_columns_the_api_and_the_page(
    clash: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --where
    _, rows = _runs([clash, "--where", "lr<0.05"], capsys)
    assert sorted(r[0] for r in rows) == ["run-1", "run-2"]
    _, rows = _runs([clash, "--where", "summary.lr<0.25"], capsys)
    assert sorted(r[0] for r in rows) == ["run-0", "run-2"]
    # --sort
    _, rows = _runs([clash, "--sort", "lr"], capsys)
    assert [r[0] for r in rows] == ["run-2", "run-1", "run-0"], "by the hyperparameter"
    _, rows = _runs([clash, "--sort", "summary.lr"], capsys)
    assert [r[0] for r in rows] == ["run-2", "run-0", "run-1"], "by the metric"
    _, rows = _runs([clash, "--sort", "config.lr"], capsys)
    assert [r[0] for r in rows] == ["run-2", "run-1", "run-0"]
    # --columns
    header, rows = _runs([clash, "--columns", "lr", "--sort", "lr"], capsys)
    assert header[-1] == "lr" and [r[-1] for r in rows] == ["0.001", "0.01", "0.1"]
    header, rows = _runs([clash, "--columns", "summary.lr", "--sort", "lr"], capsys)
    assert header[-1] == "summary.lr" and [r[-1] for r in rows] == ["0.1", "0.3", "0.2"]
    # the API
    store = Store(clash)
    assert [r.name for r in store.runs(where="lr<0.05")] == ["run-1", "run-2"]
    assert [r.name for r in store.runs(where={"lr": 0.1})] == ["run-0"]
    assert [r.name for r in store.runs(where={"summary.lr": 0.1})] == ["run-2"]
    table = store.table()
    params = [c.split(".", 1)[1] for c in table.columns if c.startswith("config.")]
    metrics = [c.split(".", 1)[1] for c in table.columns if c.startswith("summary.")]
    assert keys.column("lr", params, metrics) == "config.lr"
    # the page: the filter box's records and its headers come from the same owner
    from lightning_tracker.format import query

    payload = build_payload(store)
    records = [
        {"name": r["name"], "params": r["config"], "summary": r["summary"], "tags": r["tags"]} for r in payload["runs"]
    ]
    assert sorted(r["name"] for r in records if query.parse("lr<0.05").matches(r)) == ["run-1", "run-2"]
    assert payload["keys"]["labels"]["config.lr"] == "lr"
    assert payload["keys"]["labels"]["summary.lr"] == "summary.lr"


def test_the_runs_table_heads_a_hyperparameter_and_a_metric_of_one_name_distinctly(
    clash: str, capsys: pytest.CaptureFixture[str]
) -> None:
    header, rows = _runs([clash], capsys)
    assert header.count("lr") == 1 and header.count("summary.lr") == 1
    assert len(header) == len(set(header)), header
    lr, logged = header.index("lr"), header.index("summary.lr")
    by_name = {r[0]: r for r in rows}
    assert by_name["run-1"][lr - 1] == "0.01" and by_name["run-1"][logged - 1] == "0.3"


def test_the_main_metric_order_is_the_same_in_the_cli_and_on_the_page(
    clash: str, capsys: pytest.CaptureFixture[str]
) -> None:
    header, _ = _runs([clash, "--all"], capsys)
    payload = build_payload(Store(clash))
    cli = [h.removeprefix("summary.") for h in header if h in ("summary.lr", "val/loss", "train/loss", "test/acc")]
    page = [k for k in payload["keys"]["order"] if keys.is_score(k)]
    assert cli == page == ["val/loss", "train/loss", "test/acc", "lr"]


def test_system_metrics_under_a_logger_prefix_are_a_family_everywhere(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_tracker import GradientMonitor, SystemMonitor
    from tests.helpers import tiny_model, trainer

    monkeypatch.setenv("COLUMNS", "300")
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", prefix="fit", tensorboard=False)
    fit = trainer(
        logger, max_epochs=1, callbacks=[SystemMonitor(interval_s=0.05, gpu=False), GradientMonitor(every_n_steps=1)]
    )
    fit.fit(tiny_model())
    run = Store(save_dir).run(logger.version)
    system = [c for c in run.system().columns if c not in ("step", "time")]
    assert system and all(c.startswith("fit-system/") for c in system), system
    gradients = [c for c in run.gradients().columns if c not in ("step", "time")]
    assert gradients and all(c.startswith(("fit-gradients/", "fit-parameters/")) for c in gradients), gradients
    header, _ = _runs([save_dir], capsys)
    assert not [h for h in header if "system/" in h or "gradients/" in h], header
    assert any(h.startswith("fit-train") for h in header), header
    payload = build_payload(Store(save_dir))
    assert set(payload["keys"]["families"]) == set(system) | set(gradients)
    # the page judges runs by the owner's scores: no family metric, no epoch, the prefixed splits kept
    scores = set(payload["keys"]["scores"])
    assert not scores & (set(system) | set(gradients) | {"epoch"}), scores
    assert any(k.startswith("fit-train") for k in scores), scores


def test_status_crashed_comes_from_the_one_list(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import start_training

    monkeypatch.setenv("COLUMNS", "300")
    save_dir = str(tmp_path / "runs")
    proc, crashed = start_training(save_dir, tmp_path / "out", dict(os.environ))
    proc.kill()
    proc.wait()
    done = TrackerLogger(save_dir, name="p", run_name="done", tensorboard=False)
    done.log_metrics({"loss": 1.0}, step=0)
    done.finalize("success")
    assert main(["runs", save_dir, "--status", "crashed"]) == 0
    out = capsys.readouterr().out
    assert crashed[:8] in out and "done" not in out and "1 run in" in out
    assert [r.id for r in Store(save_dir).runs(status="crashed")] == [crashed]
    assert {r["id"]: r["status"] for r in build_payload(Store(save_dir))["runs"]}[crashed] == "crashed"
    assert main(["runs", save_dir, "--status", "crashd"]) == 2
    assert f"use one of: {', '.join(status.STATUSES)}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'crashd' is not a run status; use one of: running, finished"):
        Store(save_dir).runs(status=["finished", "crashd"])


def _hyperparameter_and_metric_in_different_runs(save_dir: str) -> None:
    """Run A has the hyperparameter ``lr=0.5`` (no metric lr), run B the metric ``lr=0.001`` (no hyperparameter)."""
    a = TrackerLogger(save_dir, name="p", run_name="run-a", tensorboard=False)
    a.log_hyperparams({"lr": 0.5})
    a.finalize("success")
    b = TrackerLogger(save_dir, name="p", run_name="run-b", tensorboard=False)
    b.log_metrics({"lr": 0.001}, step=0)
    b.finalize("success")


def test_a_bare_key_is_decided_over_the_runs_queried_not_each_run(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_tracker.format import query

    monkeypatch.setenv("COLUMNS", "300")
    save_dir = str(tmp_path / "runs")
    _hyperparameter_and_metric_in_different_runs(save_dir)
    # --where: lr is A's hyperparameter for both runs, so B (which has only the metric) does not match
    assert main(["runs", save_dir, "--where", "lr<0.01"]) == 1
    assert "no runs match --where 'lr<0.01'" in capsys.readouterr().out
    assert [r[0] for r in _runs([save_dir, "--where", "lr>0.1"], capsys)[1]] == ["run-a"]
    assert [r[0] for r in _runs([save_dir, "--where", "summary.lr<0.01"], capsys)[1]] == ["run-b"]
    # --sort and --columns name the same column
    assert [r[0] for r in _runs([save_dir, "--sort", "lr"], capsys)[1]] == ["run-a", "run-b"]
    assert [r[0] for r in _runs([save_dir, "--sort", "summary.lr"], capsys)[1]] == ["run-b", "run-a"]
    header, rows = _runs([save_dir, "--columns", "lr"], capsys)
    assert header[-1] == "lr" and [(r[0], r[-1]) for r in rows] == [("run-a", "0.5"), ("run-b", "—")]
    header, rows = _runs([save_dir, "--columns", "summary.lr"], capsys)
    assert header[-1] == "summary.lr" and [(r[0], r[-1]) for r in rows] == [("run-a", "—"), ("run-b", "0.001")]
    # filtering out run A does not turn lr into the metric: the runs queried decide, as in --where
    header, rows = _runs([save_dir, "--where", "summary.lr<0.01", "--columns", "lr", "--sort", "lr"], capsys)
    assert header[-1] == "lr" and [(r[0], r[-1]) for r in rows] == [("run-b", "—")]
    header, rows = _runs([save_dir, "--where", "summary.lr<0.01"], capsys)
    assert "summary.lr" in header and "lr" not in header and rows[0][-1] == "0.001"
    # a typo still names the closest keys
    assert main(["runs", save_dir, "--where", "lrr<0.01"]) == 2
    assert "did you mean 'lr'" in capsys.readouterr().err
    # the API
    store = Store(save_dir)
    names = lambda runs: [r.name for r in runs]  # noqa: E731 (a local shorthand)
    assert names(store.runs(where="lr<0.01")) == [] and names(store.runs(where={"lr": 0.001})) == []
    assert names(store.runs(where="lr>0.1")) == ["run-a"]
    assert names(store.runs(where="summary.lr<0.01")) == names(store.runs(where={"summary.lr": 0.001})) == ["run-b"]
    table = store.table()
    assert table.set_index("name")["config.lr"].to_dict() == {
        "run-a": 0.5,
        "run-b": pytest.approx(float("nan"), nan_ok=True),
    }
    assert keys.column("lr", table.attrs["scope"]["params"], table.attrs["scope"]["metrics"]) == "config.lr"
    assert store.table(where="summary.lr<0.01").attrs["scope"] == {"params": ["lr"], "metrics": ["lr"]}
    # the page: its records, filtered over all of them, and its headers
    payload = build_payload(store)
    records = [{"name": r["name"], "params": r["config"], "summary": r["summary"]} for r in payload["runs"]]
    assert [r["name"] for r in records] == ["run-a", "run-b"]
    assert query.parse("lr<0.01").select(records) == [False, False]
    assert query.parse("summary.lr<0.01").select(records) == [False, True]
    assert payload["keys"]["labels"] == {"config.lr": "lr", "summary.lr": "summary.lr"}
    # with no hyperparameter lr among the runs queried, lr is the metric
    assert names(store.runs(where="lr<0.01 run-b")) == []
    only_b = str(tmp_path / "only-b")
    b = TrackerLogger(only_b, name="p", run_name="run-b", tensorboard=False)
    b.log_metrics({"lr": 0.001}, step=0)
    b.finalize("success")
    assert names(Store(only_b).runs(where="lr<0.01")) == ["run-b"]
    header, rows = _runs([only_b, "--where", "lr<0.01", "--columns", "lr", "--sort", "lr"], capsys)
    assert header[-1] == "lr" and rows[0][-1] == "0.001"
