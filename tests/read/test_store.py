"""The read side (``Store``, ``Run``) and the CLI's compare and report, on every storage target."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import InvalidArgumentError


def make_sweep(save_dir: str, options: Any = None, steps: int = 20) -> list[str]:
    """Three finished runs of project ``sweep`` with distinct ``lr``/``optimizer`` and system metrics."""
    ids = []
    for i, (lr, optimizer) in enumerate(((0.1, "sgd"), (0.01, "adam"), (0.001, "sgd"))):
        logger = TrackerLogger(
            save_dir,
            name="sweep",
            run_name=f"run-{i}",
            storage_options=options,
            tags=["sweep", "odd" if i % 2 else "even"],
            tensorboard=False,
        )
        logger.log_hyperparams({"lr": lr, "optimizer": optimizer, "model": {"width": 64}})
        for step in range(steps):
            logger.log_metrics({"train/loss": math.exp(-lr * step), "system/cpu_percent": 10.0 + i}, step=step)
        logger.log_metrics({"val/acc": 0.5 + lr}, step=steps)
        logger.finalize("success")
        ids.append(logger.version)
    return ids


def test_where_filters_by_hyperparameter_metric_and_predicate(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    make_sweep(save_dir, options)
    store = Store(save_dir, options)
    assert [r.name for r in store.runs("sweep", where={"optimizer": "sgd"})] == ["run-0", "run-2"]
    assert [r.name for r in store.runs(where={"config.lr": lambda v: v < 0.05})] == ["run-1", "run-2"]
    assert [r.name for r in store.runs(where={"summary.val/acc": lambda v: v > 0.55})] == ["run-0"]
    assert [r.name for r in store.runs("sweep", tags=["even"], where=lambda r: r.config["model"]["width"] == 64)] == [
        "run-0",
        "run-2",
    ]
    assert store.runs(where={"no.such.key": 1}) == []
    table = store.table("sweep", where={"optimizer": "adam"})
    assert list(table["name"]) == ["run-1"] and table["config.model.width"].tolist() == [64]


def test_where_rejects_a_value_that_is_neither_query_mapping_nor_predicate(tmp_path: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"where=0.1 .*where=\{'lr': 0.1\}"):
        Store(str(tmp_path)).runs(where=0.1)  # type: ignore[arg-type]


def test_a_runs_table_reads_only_run_json_and_reports_progress(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    ids = make_sweep(save_dir, options)
    store = Store(save_dir, options)
    for run_id in ids:  # the table must not need these: run.json holds params and summary
        store.storage.rm(f"sweep/{run_id}/config.json")
    calls: list[tuple[int, int]] = []
    table = store.table("sweep", progress=lambda done, total: calls.append((done, total)))
    assert table["config.lr"].tolist() == [0.1, 0.01, 0.001]
    assert table["summary.val/acc"].tolist() == pytest.approx([0.6, 0.51, 0.501])
    assert calls == [(3, 3)]


def test_system_returns_only_system_metrics_in_full(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    make_sweep(save_dir, options, steps=50)
    run = Store(save_dir, options).run("run-1")
    system = run.system()
    assert list(system.columns) == ["step", "time", "system/cpu_percent"]
    assert system["step"].tolist() == list(range(50)) and (system["system/cpu_percent"] == 11.0).all()
    assert set(run.system(wide=False)["key"]) == {"system/cpu_percent"}
    assert "system/cpu_percent" in run.metrics().columns, "metrics() still returns every key"


def test_metrics_keep_every_point_and_the_last_write_per_step(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False)
    for step in range(5000):
        logger.log_metrics({"loss": float(step)}, step=step)
    logger.finalize("success")
    resumed = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False)
    resumed.log_metrics({"loss": -1.0}, step=10)  # a resume re-logs step 10
    resumed.finalize("success")
    history = Store(save_dir).run("r1").metrics(["loss"])
    assert len(history) == 5000 and history["step"].is_monotonic_increasing
    assert history.loc[history["step"] == 10, "loss"].item() == -1.0
    assert history.loc[history["step"] == 4999, "loss"].item() == 4999.0


def test_read_side_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import lightning_tracker.read.store, lightning_tracker.report, lightning_tracker.cli\n"
        "print('torch' in sys.modules and sys.modules['torch'] is not None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _opts(options: Any) -> list[str]:
    return ["--storage-options", json.dumps(options)] if options else []


def test_compare_shows_differing_hyperparameters_and_metrics_side_by_side(
    store_target: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    make_sweep(save_dir, options)
    assert main(["compare", "run-0", "run-1", "run-2", "--store", save_dir, *_opts(options)]) == 0
    out = capsys.readouterr().out
    assert "hyperparameters that differ (2 of 3)" in out
    lines = out.splitlines()
    lr = next(line for line in lines if line.startswith("│ lr "))
    assert [c.strip() for c in lr.split("│")[2:5]] == ["0.1", "0.01", "0.001"]
    assert not any(line.startswith("│ model.width") for line in lines), "shared values are left out"
    acc = next(line for line in lines if line.startswith("│ val/acc"))
    assert [c.strip() for c in acc.split("│")[2:5]] == ["0.6", "0.51", "0.501"]
    assert "system/cpu_percent" not in out


def test_compare_names_the_missing_run_and_how_to_list_runs(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = str(tmp_path / "runs")
    make_sweep(save_dir)
    assert main(["compare", "run-0", "nope", "--store", save_dir]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and "lightning-tracker runs" in err


def test_report_command_writes_a_report_of_the_chosen_runs(
    store_target: tuple[str, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightning_tracker.report.data import build_payload

    save_dir, options = store_target
    make_sweep(save_dir, options)
    out = tmp_path / "out" / "r.html"
    assert main(["report", "run-0", "run-2", "--store", save_dir, "-o", str(out), *_opts(options)]) == 0
    assert f"report written to {out}" in capsys.readouterr().out
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="lt-data" type="application/gzip-base64"' in page
    payload = build_payload(Store(save_dir, options), project="sweep")
    assert [r["name"] for r in payload["runs"]] == ["run-0", "run-1", "run-2"]
    assert payload["series"][payload["runs"][0]["key"]]["train/loss"]["n"] == 20


def test_report_command_rejects_a_folder_as_output(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = str(tmp_path / "runs")
    make_sweep(save_dir)
    assert main(["report", "--store", save_dir, "-o", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert f"output={str(tmp_path)!r} is a folder; pass a file name such as" in err
    assert not os.path.exists(tmp_path / "report.html")
