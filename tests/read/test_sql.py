"""``Store.sql``: DuckDB in process over the views ``runs`` and ``metrics``, on every storage target.

The ``metrics`` view must hold exactly what ``Run.metrics(wide=False)`` returns: a covered
chunk (planted with a value no reader may see) is left out and a step logged again keeps
its last value. Runs are written by the real logger, plus chunks written straight in the
published format where the test needs to control chunk names.
"""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import InvalidArgumentError, StorageError
from lightning_tracker.format.layout import METRICS_DIR, chunk_name
from lightning_tracker.format.schemas import METRICS
from lightning_tracker.storage import Storage
from tests.helpers import REPO


def _chunk(storage: Storage, run: str, name: str, rows: list[tuple[int, str, float]]) -> None:
    table = pa.table(
        {
            "step": [r[0] for r in rows],
            "time": [1000.0 + r[0] for r in rows],
            "key": [r[1] for r in rows],
            "value": [r[2] for r in rows],
        }
    ).cast(METRICS)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(f"{run}/{METRICS_DIR}/{name}", buf.getvalue())


def _sweep(save_dir: str, options: dict[str, Any] | None) -> Store:
    """Three runs in project ``a``, one in ``b``; run ``a/r1`` has planted chunks of session 9."""
    for project, version, lr in (("a", "r0", 0.1), ("a", "r1", 0.01), ("a", "r2", 0.001), ("b", "r3", 0.5)):
        logger = TrackerLogger(save_dir, name=project, version=version, storage_options=options, tensorboard=False)
        logger.log_hyperparams({"lr": lr, "model": {"width": 8}})
        for step in range(5):
            logger.log_metrics({"loss": lr * (10 - step), "val/acc": step / 10}, step=step)
        logger.log_metrics({"loss": -1.0}, step=2)  # logged again: the last value wins
        logger.finalize("success")
    store = Store(save_dir, options)
    # session 9: chunk 0..0 is covered by 0..1 (a compaction wrote 0..1 and has not deleted 0..0 yet)
    _chunk(store.storage, "a/r1", chunk_name(9, 0, 0), [(100, "loss", 999.0), (101, "covered", 1.0)])
    _chunk(store.storage, "a/r1", chunk_name(9, 0, 1), [(100, "loss", 5.0)])
    _chunk(store.storage, "a/r1", chunk_name(9, 2, 2), [(100, "loss", 6.0), (1, "val/acc", 0.75)])
    return store


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["key", "step"]).reset_index(drop=True)


def test_the_metrics_view_holds_what_run_metrics_returns_on_every_store(
    store_target: tuple[str, dict[str, Any] | None],
) -> None:
    save_dir, options = store_target
    store = _sweep(save_dir, options)
    points = store.sql("select * from metrics")
    assert list(points.columns) == ["project", "run", "key", "step", "time", "value"]
    assert sorted(set(zip(points["project"], points["run"], strict=True))) == [
        ("a", "r0"),
        ("a", "r1"),
        ("a", "r2"),
        ("b", "r3"),
    ]
    for run in store.runs():
        mine = points[(points["project"] == run.project) & (points["run"] == run.id)]
        expected = _sorted(run.metrics(wide=False))
        got = _sorted(mine[["step", "time", "key", "value"]].astype({"key": str}))
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    r1 = points[points["run"] == "r1"].set_index(["key", "step"])["value"]
    assert r1[("loss", 100)] == 6.0 and r1[("loss", 2)] == -1.0 and r1[("val/acc", 1)] == 0.75
    assert "covered" not in set(points["key"]), "a covered chunk is never read"
    assert store.sql("select count(*) as n from metrics where value = 999").n[0] == 0


def test_runs_and_metrics_join_in_one_query(tmp_path: Any) -> None:
    store = _sweep(str(tmp_path / "runs"), None)
    best = store.sql(
        'select r.id, r."config.lr" as lr, r."config.model.width" as width, min(m.value) as best '
        "from runs r join metrics m on m.project = r.project and m.run = r.id "
        "where m.key = 'loss' and m.step < 100 group by all order by lr"
    )
    assert best.values.tolist() == [
        ["r2", 0.001, 8, -1.0],
        ["r1", 0.01, 8, -1.0],
        ["r0", 0.1, 8, -1.0],
        ["r3", 0.5, 8, -1.0],
    ]
    table = store.table()
    runs = store.sql('select id, status, "summary.loss", "min.val/acc", "max.val/acc" from runs order by id')
    assert runs["id"].tolist() == sorted(table["id"])
    assert runs["summary.loss"].tolist() == table.sort_values("id")["summary.loss"].tolist()
    assert set(runs["status"]) == {"finished"}


def test_a_project_limits_both_views(tmp_path: Any) -> None:
    store = _sweep(str(tmp_path / "runs"), None)
    assert store.sql("select distinct project from metrics", project="b")["project"].tolist() == ["b"]
    assert store.sql("select id from runs", project="b")["id"].tolist() == ["r3"]
    counts = store.sql("select run, count(*) as n from metrics group by run order by run", project="a")
    assert counts["run"].tolist() == ["r0", "r1", "r2"]
    assert counts["n"].tolist() == [10, 11, 10], "r1: its 10 points, val/acc@1 replaced, and loss@100"


def test_only_the_views_a_query_names_are_read(tmp_path: Any) -> None:
    store = _sweep(str(tmp_path / "runs"), None)
    store.storage.write_bytes(f"a/r0/{METRICS_DIR}/{chunk_name(9, 0, 0)}", b"not parquet")
    assert store.sql("select count(*) as n from runs").n[0] == 4, "the runs view reads no chunk"
    assert store.sql("select 42 as answer").answer[0] == 42
    with pytest.raises(StorageError, match="the metrics chunk .*a/r0/metrics/009-00000000-00000000.parquet is damaged"):
        store.sql("select count(*) from metrics")


def test_an_empty_store_has_both_views_with_their_columns(tmp_path: Any) -> None:
    store = Store(str(tmp_path / "empty"))
    assert store.sql("select count(*) as n from metrics").n[0] == 0
    assert list(store.sql("select * from runs").columns)[:3] == ["id", "name", "project"]


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("selec * from runs", 'Parser Error: syntax error at or near "selec"'),
        ("select nope from metrics", 'Referenced column "nope" not found'),
        ("select * from nosuch", "Table with name nosuch does not exist"),
        ("select config.lr from runs", 'Referenced table "config" not found'),
        ("", "sql='' is not a query"),
    ],
)
def test_bad_sql_is_one_line_naming_the_query_and_the_views(tmp_path: Any, sql: str, said: str) -> None:
    store = _sweep(str(tmp_path / "runs"), None) if sql.startswith("select config") else Store(str(tmp_path / "e"))
    with pytest.raises(InvalidArgumentError) as err:
        store.sql(sql)
    message = str(err.value)
    assert "\n" not in message and said in message, message
    if sql:
        assert message.startswith(f"sql query {sql!r} failed: ")
        assert "views runs (" in message and "metrics (project, run, key, step, time, value)" in message
        assert 'double-quoting names with dots or slashes, e.g. select "config.lr"' in message


def test_store_sql_without_duckdb_names_the_extra(tmp_path: Any) -> None:
    code = (
        "import sys; sys.modules['duckdb'] = None\n"
        "import lightning_tracker\n"
        "from lightning_tracker import Store\n"
        "from lightning_tracker.exceptions import MissingDependencyError\n"
        "try:\n"
        f"    Store({str(tmp_path)!r}).sql('select 1')\n"
        "except MissingDependencyError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert "Store.sql needs DuckDB, which is not installed; pip install 'lightning-tracker[duckdb]'" in done.stdout


def test_the_sql_command_prints_a_table(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = str(tmp_path / "runs")
    _sweep(save_dir, None)
    query = "select run, count(*) as n, min(value) as best from metrics where key = 'loss' group by 1 order by 1"
    assert main(["sql", "-s", save_dir, "-p", "a", query]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "n", "best"]
    assert [ln.split() for ln in lines[-3:]] == [["r0", "5", "-1"], ["r1", "6", "-1"], ["r2", "5", "-1"]]
    assert main(["sql", "-s", save_dir, "--csv", 'select "config.lr" from runs order by 1']) == 0
    assert capsys.readouterr().out.splitlines() == ["config.lr", "0.001", "0.01", "0.1", "0.5"]
    assert main(["sql", "-s", save_dir, "selec 1"]) == 2
    assert "sql query 'selec 1' failed: Parser Error" in capsys.readouterr().err
