"""The query grammar: one table of cases through Python and through the report's JavaScript twin.

``lightning_tracker/format/query.py`` and ``report/assets/query.js`` must agree on every case,
error messages included; then ``Store.runs(where=...)`` and ``--where`` on real stores. The
grammar itself imports nothing but the standard library, so its cases run without the rest.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import uuid
from typing import Any

import pytest

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format import query
from tests.helpers import REPO

QUERY_JS = os.path.join(REPO, "lightning_tracker", "report", "assets", "query.js")
NAN = float("nan")

BASE = {
    "id": "20260101-abc", "name": "run-0", "project": "sweep", "group": "g1", "status": "finished",
    "tags": ["sweep", "even"], "notes": "first try",
    "params": {"lr": 0.01, "optimizer": "adam", "model.width": 64, "flag": True, "nothing": None,
               "layers": [64, 32], "name": "shadow", "seed": 0, "word": "\U0001f600"},
    "summary": {"val/acc": 0.93, "loss": NAN, "lr": 0.009, "inf": math.inf},
}  # fmt: skip
RECORDS = {
    "base": BASE,
    "quoted": {**BASE, "name": 'my "best" run', "group": None, "tags": []},
    "named": {**BASE, "name": "lr=0.1"},
}

# (terms: a string, or a list of one term each; record; expected: True, False or "error")
CASES: list[tuple[Any, str, Any]] = [
    # operators on numbers; `==` is `=`; key and value are trimmed
    ("lr<0.05", "base", True), ("lr<=0.01", "base", True), ("lr<0.01", "base", False),
    ("lr>0.001", "base", True), ("lr>=0.01", "base", True), ("lr>0.01", "base", False),
    ("lr=0.01", "base", True), ("lr==0.01", "base", True), ("lr!=0.01", "base", False),
    (["  lr  <=  0.01 "], "base", True), ("lr=1e-2", "base", True),
    ("model.width=64.0", "base", True), ("config.model.width=64", "base", True),
    ("params.model.width>63", "base", True), ("seed=0", "base", True),
    ("inf>=1e308", "base", True), ("inf<=1e999", "base", True),
    # booleans are not numbers
    ("seed=false", "base", False), ("flag=true", "base", True), ("flag=1", "base", False),
    ("flag!=1", "base", True), ("flag>0", "base", False), ("flag!=false", "base", True),
    # text: exact for = and !=, code points for ordering (quoted JSON); against numbers: unequal
    ("optimizer=adam", "base", True), ('optimizer="adam"', "base", True), ("optimizer=ADAM", "base", False),
    ("optimizer!=sgd", "base", True), ('optimizer<"b"', "base", True), ('optimizer>"b"', "base", False),
    ("optimizer<5", "base", False), ("optimizer=5", "base", False), ("optimizer!=5", "base", True),
    ('word>"\\uffff"', "base", True), ('name>="run-0"', "base", True),
    # null
    ("nothing=null", "base", True), ("nothing!=null", "base", False), ("nothing=0", "base", False),
    ("lr=null", "base", False), ("lr!=null", "base", True), ("group=null", "quoted", True),
    ("group=null", "base", False),
    # a missing key fails every comparison, != included
    ("nosuch=1", "base", False), ("nosuch!=1", "base", False), ("summary.nosuch<1", "base", False),
    ("config.val/acc>0", "base", False),
    # resolution: hyperparameter first, then metric; fields before both; prefixes pick one
    ("val/acc>=0.9", "base", True), ("summary.val/acc>=0.9", "base", True),
    ("lr=0.009", "base", False), ("summary.lr=0.009", "base", True), ("name=run-0", "base", True),
    ("config.name=shadow", "base", True), ("params.name=shadow", "base", True), ("id=20260101-abc", "base", True),
    ("status=finished", "base", True), ('notes="first try"', "base", True), ("project!=sweep", "base", False),
    ("group=g1", "base", True),
    # tags: one of them, or none of them
    ("tags=even", "base", True), ("tags=odd", "base", False), ("tags!=odd", "base", True),
    ("tags!=even", "base", False), ("tags=even", "quoted", False), ("tags!=even", "quoted", True),
    ('tags<"a"', "base", "error"),
    # NaN fails everything but !=
    ("loss<1", "base", False), ("loss>1", "base", False), ("loss>=0", "base", False),
    ("loss=1", "base", False), ("loss!=1", "base", True), ('loss!="x"', "base", True),
    # what is not JSON is text (NaN and Infinity are not JSON)
    ("lr=NaN", "base", False), ("lr!=NaN", "base", True), ("lr=.01", "base", False),
    ("lr<NaN", "base", "error"), ("lr<Infinity", "base", "error"),
    # a list compares as its JSON text
    (["layers=[64, 32]"], "base", True), ("layers=[64,32]", "base", True), ('layers="[64, 32]"', "base", True),
    ("layers!=[1]", "base", True), ("layers=[32,64]", "base", False),
    # bare words: case-insensitive substrings of id, name, project, group, status, tags
    ("RUN-0", "base", True), ("even", "base", True), ("sweep", "base", True), ("g1", "base", True),
    ("finish", "base", True), ("abc", "base", True), ("adam", "base", False), ("try", "base", False),
    ('"run-0"', "base", True), ('"lr=0.1"', "named", True), ('"lr=0.1"', "base", False),
    ("lr=0.1", "named", False), ('name="lr=0.1"', "named", True),
    # several terms: all must hold; whitespace splits outside double quotes
    ("lr<0.05 optimizer=adam", "base", True), ("lr<0.05 optimizer=sgd", "base", False),
    (["lr<0.05", "val/acc>=0.9"], "base", True), ("", "base", True), ("   ", "base", True),
    ('name="my \\"best\\" run" lr<1', "quoted", True), ('"best\\" run"', "quoted", True),
    ('name="my \\"best\\" run"', "base", False), ("lr < 0.01", "base", "error"),
    # errors: empty value or key, a value that starts with an operator, ordering by non-numbers
    ("lr<", "base", "error"), (["lr<=  "], "base", "error"), ("<0.01", "base", "error"),
    ("=x", "base", "error"), ("lr=<0.01", "base", "error"), ("lr==<1", "base", "error"),
    ("lr=>0.01", "base", "error"), ("lr!==1", "base", "error"), ("lr<abc", "base", "error"),
    ("flag<true", "base", "error"), ("lr>=null", "base", "error"), ("lr<[1]", "base", "error"),
]  # fmt: skip

# (terms, expected: None or the start of the error message) against every record
KEY_CHECKS: list[tuple[str, Any]] = [
    ("lrr<0.01", "where term 'lrr<0.01' names 'lrr', which no run has; did you mean 'lr'"),
    ("val/ac>0", "where term 'val/ac>0' names 'val/ac', which no run has; did you mean 'val/acc'"),
    ("summary.val/ac>0", "where term 'summary.val/ac>0' names 'summary.val/ac'"),
    ("config.val/acc>0", "where term 'config.val/acc>0' names 'config.val/acc'"),
    ("zzzzzzzz=1", "where term 'zzzzzzzz=1' names 'zzzzzzzz', which no run has; known keys are "),
    ("lr<0.01 adam group=x config.lr>0 summary.loss!=1 tags=x", None),
    ("nosuch", None),
]

_NODE = """
const q = require(process.argv[1]);
const revive = (k, v) => (v === "__nan__" ? NaN : v === "__inf__" ? Infinity : v);
const input = JSON.parse(require("fs").readFileSync(0, "utf8"), revive);
const run = (f) => { try { return { ok: f() }; } catch (err) { return { error: err.message }; } };
const cases = input.cases.map(([terms, record]) => run(() => q.parse(terms).matches(record)));
const checks = input.checks.map((terms) =>
  run(() => { q.checkKeys(q.parse(terms), q.knownKeys(input.records)); return null; }));
process.stdout.write(JSON.stringify({ cases, checks }));
"""


def _portable(value: Any) -> Any:
    """NaN and infinity as markers JSON can carry to node."""
    if isinstance(value, float) and not math.isfinite(value):
        return "__nan__" if math.isnan(value) else "__inf__"
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return value


def _python(f: Any) -> dict[str, Any]:
    try:
        return {"ok": f()}
    except InvalidArgumentError as err:
        return {"error": str(err)}


@pytest.fixture(scope="module")
def js_results() -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    payload = {
        "cases": [[terms, RECORDS[name]] for terms, name, _ in CASES],
        "checks": [terms for terms, _ in KEY_CHECKS],
        "records": list(RECORDS.values()),
    }
    done = subprocess.run(
        [node, "-e", _NODE, QUERY_JS],
        input=json.dumps(_portable(payload)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[repr(c[0]) for c in CASES])
def test_python_and_javascript_agree_on_every_case(index: int, js_results: dict[str, Any]) -> None:
    terms, name, expected = CASES[index]
    py = _python(lambda: query.parse(terms).matches(RECORDS[name]))
    js = js_results["cases"][index]
    assert py == js, f"Python {py} but JavaScript {js}"
    assert ("error" if "error" in py else py["ok"]) == expected, py


@pytest.mark.parametrize("index", range(len(KEY_CHECKS)), ids=[c[0] for c in KEY_CHECKS])
def test_unknown_keys_are_named_with_the_closest_known_ones(index: int, js_results: dict[str, Any]) -> None:
    terms, expected = KEY_CHECKS[index]
    py = _python(lambda: query.check_keys(query.parse(terms), query.known_keys(RECORDS.values())))
    assert py == js_results["checks"][index], "Python and JavaScript suggest the same keys"
    if expected is None:
        assert py == {"ok": None}
    else:
        assert py["error"].startswith(expected)


def test_errors_name_the_term_the_problem_and_an_example() -> None:
    messages = {}
    for term in ("lr<", "<0.01", "lr=<0.01", "lr<abc", 'tags<"a"'):
        with pytest.raises(InvalidArgumentError) as err:
            query.parse([term])
        messages[term] = str(err.value)
    assert messages["lr<"] == "where term 'lr<' has no value after '<'; write KEY OP VALUE, e.g. 'lr<0.01'"
    assert messages["<0.01"] == "where term '<0.01' has no key before '<'; write KEY OP VALUE, e.g. 'lr<0.01'"
    assert messages["lr=<0.01"].endswith("write one operator between key and value, e.g. 'lr<=0.01'")
    assert "'<' compares numbers; write a number, or quote text as JSON" in messages["lr<abc"]
    assert "tags takes = (one of the tags) or != (none of them)" in messages['tags<"a"']
    with pytest.raises(InvalidArgumentError, match="is not text"):
        query.parse(["lr<1", 3])  # type: ignore[list-item]


def test_a_query_lists_its_keys_once_and_resolves_like_the_report() -> None:
    q = query.parse(["lr<0.1", "lr>0.001", "adam", "summary.val/acc>0.5"])
    assert q.keys == ("lr", "summary.val/acc")
    assert query.resolve(BASE, "tags") == ["sweep", "even"] and query.resolve(BASE, "nope") is query.MISSING


# run A has the hyperparameter lr (no metric lr), run B the metric lr (no hyperparameter lr)
RUN_A = {"id": "a", "name": "run-a", "tags": [], "params": {"lr": 0.5}, "summary": {}}
RUN_B = {"id": "b", "name": "run-b", "tags": [], "params": {}, "summary": {"lr": 0.001}}
SET_CASES = {  # terms: (which of [A, B] match, which of [B] alone match)
    "lr<0.01": ([False, False], [True]),
    "lr>0.1": ([True, False], [False]),
    "lr!=0.5": ([False, False], [True]),
    "summary.lr<0.01": ([False, True], [True]),
    "config.lr>0": ([True, False], [False]),
    "run-b": ([False, True], [True]),
}
_NODE_SETS = """
const q = require(process.argv[1]);
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const among = q.scope(input.both);
process.stdout.write(JSON.stringify(input.terms.map((terms) => [
  q.parse(terms).select(input.both), q.parse(terms).select([input.both[1]]),
  input.both.map((r) => q.parse(terms).matches(r, among)),
])));
"""


def test_a_bare_key_is_decided_over_the_runs_queried_not_each_run() -> None:
    got = {
        terms: (query.parse(terms).select([RUN_A, RUN_B]), query.parse(terms).select([RUN_B])) for terms in SET_CASES
    }
    assert got == SET_CASES
    among = query.scope([RUN_A, RUN_B])
    assert query.resolve(RUN_B, "lr", among) is query.MISSING and query.resolve(RUN_B, "summary.lr", among) == 0.001
    assert query.check_keys(query.parse("lr<0.01"), query.known_keys([RUN_A, RUN_B])) is None
    with pytest.raises(InvalidArgumentError, match=r"names 'lrr', which no run has; did you mean 'lr'\?"):
        query.check_keys(query.parse("lrr<0.01"), query.known_keys([RUN_A, RUN_B]))
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    payload = {"terms": list(SET_CASES), "both": [RUN_A, RUN_B]}
    done = subprocess.run(
        [node, "-e", _NODE_SETS, QUERY_JS],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    js = json.loads(done.stdout)
    assert {t: (both, alone) for t, (both, alone, _) in zip(SET_CASES, js, strict=True)} == SET_CASES
    assert all(both == by_record for both, _, by_record in js), "matches(record, scope) is select, one at a time"


def _sweep(save_dir: str) -> None:
    from lightning_tracker import TrackerLogger

    for i, (lr, acc) in enumerate(((0.1, 0.95), (0.01, 0.91), (0.001, 0.5))):
        logger = TrackerLogger(
            save_dir, name="q", run_name=f"run-{i}", tags=["odd" if i % 2 else "even"], tensorboard=False
        )
        logger.log_hyperparams({"lr": lr, "optimizer": "adam" if i == 1 else "sgd"})
        logger.log_metrics({"val/acc": acc}, step=0)
        logger.finalize("success")


def test_store_runs_takes_the_query_grammar(tmp_path: Any) -> None:
    from lightning_tracker import Store

    save_dir = f"memory://q-{uuid.uuid4().hex[:10]}"
    _sweep(save_dir)
    store = Store(save_dir)
    names = lambda runs: [r.name for r in runs]  # noqa: E731 (a local shorthand)
    assert names(store.runs(where="val/acc>=0.9")) == ["run-0", "run-1"]
    assert names(store.runs("q", where="val/acc>=0.9 lr<0.05")) == ["run-1"]
    assert names(store.runs(where=["summary.val/acc >= 0.9", "tags!=odd"])) == ["run-0"]
    assert names(store.runs(where="run-2")) == ["run-2"], "a bare word searches names"
    assert names(store.runs(where={"val/acc": 0.91})) == ["run-1"], "a mapping resolves keys the same way"
    assert list(store.table("q", where=["optimizer=adam"])["name"]) == ["run-1"]
    with pytest.raises(InvalidArgumentError, match=r"names 'lrr', which no run has; did you mean 'lr'\?"):
        store.runs(where="lrr<0.01")
    with pytest.raises(InvalidArgumentError, match="where term 'lr=<0.01'"):
        Store(str(tmp_path / "empty")).runs(where="lr=<0.01")
    assert Store(str(tmp_path / "empty")).runs(where="lrr<0.01") == [], "no runs: nothing to check keys against"
    with pytest.raises(InvalidArgumentError, match="neither a query, a predicate nor a mapping"):
        store.runs(where=42)  # type: ignore[arg-type]


def test_cli_where_uses_the_same_grammar(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_tracker.cli import main

    monkeypatch.setenv("COLUMNS", "400")  # so the error is not wrapped by the terminal width
    save_dir = str(tmp_path / "runs")
    _sweep(save_dir)
    assert main(["runs", save_dir, "--where", "val/acc>=0.9"]) == 0
    out = capsys.readouterr().out
    assert "run-0" in out and "run-1" in out and "run-2" not in out
    assert main(["runs", save_dir, "--where", "lr=<0.01"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "where term 'lr=<0.01'" in lines[0] and "e.g. 'lr<=0.01'" in lines[0], lines
    assert main(["runs", save_dir, "-w", "lrr<0.01"]) == 2
    assert "did you mean 'lr'" in capsys.readouterr().err


def test_the_page_inlines_query_js_before_the_app() -> None:
    from lightning_tracker.report import render_page

    page = render_page(None, live_interval=5)
    assert 0 < page.index("root.LightningQuery = api") < page.index("const Q = LightningQuery")
