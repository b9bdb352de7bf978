"""``export delta``: a project's points and runs as Delta Lake tables, read back by the engines users run.

Each export is read back through ``deltalake``, Polars and DuckDB (over
``DeltaTable.to_pyarrow_dataset()``: no DuckDB extension) and compared with
``Run.metrics()``. Runs are written by the real logger; S3 is a moto server on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.manage.delta import export_delta
from tests.helpers import REPO


def _log(save_dir: str, options: dict[str, Any] | None, version: str, steps: range, lr: float = 0.1) -> None:
    logger = TrackerLogger(save_dir, name="p", version=version, storage_options=options, tensorboard=False)
    logger.log_hyperparams({"lr": lr})
    for step in steps:
        logger.log_metrics({"loss": lr * (100 - step), "val/acc": step / 100}, step=step)
    logger.finalize("success")


def _sweep(save_dir: str, options: dict[str, Any] | None = None) -> Store:
    for i in range(3):
        _log(save_dir, options, f"r{i}", range(20 + i), lr=10.0**-i)
    return Store(save_dir, options)


def _expected(store: Store) -> pd.DataFrame:
    frames = [run.metrics(wide=False).assign(run=run.id) for run in store.runs("p")]
    return _canon(pd.concat(frames))


def _canon(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[["run", "key", "step", "time", "value"]].astype({"run": str, "key": str})
    return frame.sort_values(["run", "key", "step"]).reset_index(drop=True)


def _read_back(uri: str, options: dict[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """The points table as deltalake, Polars and DuckDB read it."""
    import duckdb
    import polars as pl

    table = DeltaTable(f"{uri}/points", storage_options=options)
    dataset = table.to_pyarrow_dataset()  # DuckDB scans it as it is: no delta extension
    return {
        "deltalake": _canon(table.to_pandas()),
        "polars": _canon(pl.read_delta(f"{uri}/points", storage_options=options).to_pandas()),
        "duckdb": _canon(duckdb.connect().register("points", dataset).execute("select * from points").df()),
    }


def test_an_export_reads_back_through_deltalake_polars_and_duckdb_as_run_metrics(tmp_path: Any) -> None:
    store = _sweep(str(tmp_path / "runs"))
    out = str(tmp_path / "delta")
    done = export_delta(store, "p", out)
    expected = _expected(store)
    assert (done.runs, done.replaced, done.points, done.unchanged) == (3, 0, len(expected), 0)
    for engine, got in _read_back(out).items():
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, obj=engine)
    points = DeltaTable(f"{out}/points")
    assert points.metadata().partition_columns == ["project", "run"]
    assert {f for f in points.file_uris()} and all("project=p/run=r" in f for f in points.file_uris())
    runs = DeltaTable(f"{out}/runs").to_pandas().sort_values("id")
    assert runs["id"].tolist() == ["r0", "r1", "r2"] and runs["points"].tolist() == [40, 42, 44]
    assert runs["status"].tolist() == ["finished"] * 3 and '"lr": 0.1' in runs["params"].iloc[1]


def test_exporting_twice_adds_nothing(tmp_path: Any) -> None:
    store = _sweep(str(tmp_path / "runs"))
    out = str(tmp_path / "delta")
    export_delta(store, "p", out)
    versions = (DeltaTable(f"{out}/points").version(), DeltaTable(f"{out}/runs").version())
    again = export_delta(store, "p", out)
    assert (again.runs, again.points, again.unchanged) == (0, 0, 3)
    assert (DeltaTable(f"{out}/points").version(), DeltaTable(f"{out}/runs").version()) == versions, "no commit"
    assert len(DeltaTable(f"{out}/points").to_pandas()) == len(_expected(store))


def test_a_run_resumed_after_its_export_is_replaced_not_doubled(tmp_path: Any) -> None:
    save_dir, out = str(tmp_path / "runs"), str(tmp_path / "delta")
    store = _sweep(save_dir)
    export_delta(store, "p", out)
    _log(save_dir, None, "r1", range(15, 30), lr=0.5)  # resumed: steps 15..20 logged again, 21..29 new
    store = Store(save_dir)
    done = export_delta(store, "p", out)
    assert (done.runs, done.replaced, done.unchanged) == (1, 1, 2)
    for engine, got in _read_back(out).items():
        pd.testing.assert_frame_equal(got, _expected(store), check_dtype=False, obj=engine)
    runs = DeltaTable(f"{out}/runs").to_pandas()
    assert sorted(runs["id"]) == ["r0", "r1", "r2"], "one row per run"
    assert runs.set_index("id")["points"]["r1"] == 60


def test_an_export_cut_short_before_its_runs_table_is_finished_without_doubles(tmp_path: Any) -> None:
    store = _sweep(str(tmp_path / "runs"))
    out = str(tmp_path / "delta")
    export_delta(store, "p", out)
    shutil.rmtree(tmp_path / "delta" / "runs")  # as if the export stopped after committing the points
    done = export_delta(store, "p", out)
    assert (done.runs, done.unchanged) == (3, 0)
    pd.testing.assert_frame_equal(_read_back(out)["deltalake"], _expected(store), check_dtype=False)


def test_an_export_from_and_to_s3_without_a_lock_service(s3_server: Any) -> None:
    options = s3_server.storage_options
    store = _sweep(f"s3://{s3_server.new_bucket()}/exp", options)
    delta_options = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    out = f"s3://{s3_server.new_bucket()}/delta"
    first = export_delta(store, "p", out, storage_options=delta_options)
    again = export_delta(store, "p", out, storage_options=delta_options)
    assert (first.runs, again.runs, again.unchanged) == (3, 0, 3)
    for engine, got in _read_back(out, delta_options).items():
        pd.testing.assert_frame_equal(got, _expected(store), check_dtype=False, obj=engine)
    # a second writer that last saw the table before our next commit commits after it, never over it:
    # delta-rs puts each commit with If-None-Match, which the server honours (no lock service)
    from deltalake import write_deltalake

    stale = DeltaTable(f"{out}/points", storage_options=delta_options)
    _log(store.storage.url, options, "r3", range(5))
    assert export_delta(Store(store.storage.url, options), "p", out, storage_options=delta_options).runs == 1
    other = pa.table({"project": ["q"], "run": ["x"], "key": ["loss"], "step": [0], "time": [0.0], "value": [1.0]})
    write_deltalake(stale, other, mode="append", partition_by=["project", "run"])
    runs = DeltaTable(f"{out}/points", storage_options=delta_options).to_pandas()[["project", "run"]]
    assert sorted(set(map(tuple, runs.values.tolist()))) == [
        ("p", "r0"),
        ("p", "r1"),
        ("p", "r2"),
        ("p", "r3"),
        ("q", "x"),
    ]


def test_export_names_a_missing_project(tmp_path: Any) -> None:
    store = _sweep(str(tmp_path / "runs"))
    with pytest.raises(InvalidArgumentError, match=r"project='q' is not in .*; its projects: p"):
        export_delta(store, "q", str(tmp_path / "delta"))


def test_the_export_command_writes_and_says_what_it_wrote(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir, out = str(tmp_path / "runs"), str(tmp_path / "delta")
    _sweep(save_dir)
    assert main(["export", "delta", "-s", save_dir, "-p", "p", "-o", out]) == 0
    said = capsys.readouterr().out
    assert "exported 126 points of 3 runs (0 replaced, 0 unchanged)" in said and f"{out}/points" in said
    assert main(["export", "delta", "-s", save_dir, "-p", "p", "-o", out]) == 0
    assert "exported 0 points of 0 runs (0 replaced, 3 unchanged)" in capsys.readouterr().out
    assert main(["export", "delta", "-s", save_dir, "-o", out]) == 2
    assert "export needs the project to export; pass -p PROJECT" in capsys.readouterr().err


def test_export_without_deltalake_names_the_extra(tmp_path: Any) -> None:
    module, call, extra = "deltalake", "export_delta(Store(path), 'p', path + '/out')", "delta"
    _sweep(str(tmp_path / "runs"))
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from lightning_tracker import Store\n"
        "from lightning_tracker.manage.delta import export_delta\n"
        "from lightning_tracker.exceptions import MissingDependencyError\n"
        f"path = {str(tmp_path / 'runs')!r}\n"
        "try:\n"
        f"    {call}\n"
        "except MissingDependencyError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert f"pip install 'lightning-tracker[{extra}]'" in done.stdout, done.stdout + done.stderr


def test_the_engines_doc_s_python_recipes_run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import re

    text = open(os.path.join(REPO, "docs", "engines.md"), encoding="utf-8").read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "SparkSession" not in b]
    assert len(blocks) == 5, "sql, export, deltalake, Polars, DuckDB"
    monkeypatch.chdir(tmp_path)
    for i, lr in enumerate((0.1, 0.01)):
        logger = TrackerLogger("./runs", name="demo", version=f"r{i}", tensorboard=False)
        logger.log_hyperparams({"lr": lr})
        for step in range(3):
            logger.log_metrics({"val/loss": lr * (3 - step)}, step=step)
        logger.finalize("success")
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "docs/engines.md", "exec"), namespace)
    assert sorted(namespace["points"].to_table().column("run").to_pylist()) == ["r0"] * 3 + ["r1"] * 3
    assert sorted(namespace["best"]["value"].to_list()) == [0.01, 0.1]
