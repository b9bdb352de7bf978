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
               "layers": [64, 32], "name": "shadow", "seed": 0, "word": "\U0001f600", "min.width": 3},
    "summary": {"val/acc": 0.93, "loss": NAN, "lr": 0.009, "inf": math.inf},
    "min": {"val/acc": 0.1, "loss": None, "lr": 0.001, "inf": 1.0},
    "max": {"val/acc": 0.95, "loss": None, "lr": 0.01, "inf": math.inf},
}  # fmt: skip
RECORDS = {
    "base": BASE,
    "quoted": {**BASE, "name": 'my "best" run', "group": None, "tags": []},
    "named": {**BASE, "name": "lr=0.1"},
    "words": {**BASE, "name": "AND OR NOT"},
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
    ('name="my \\"best\\" run"', "base", False),
    # a comparison spread over whitespace is one term
    ("lr < 0.01", "base", False), ("lr <= 0.01", "base", True), ("lr <=0.01", "base", True),
    ("lr<= 0.01", "base", True),
    ("lr < 0.05 optimizer = adam", "base", True), (["lr <", "0.05"], "base", "error"), ("lr < <0.01", "base", "error"),
    ("lr<0.05 <1", "base", "error"), ("lr <", "base", "error"),
    # a list item without keywords or parentheses is one term, spaces and all
    (["notes=first try"], "base", True), ("notes=first try", "base", False), (['notes="first try"'], "base", True),
    # OR, AND, NOT (upper case) and parentheses; AND binds tighter than OR, NOT tighter than both
    ("lr<0.001 OR optimizer=adam", "base", True), ("lr<0.001 OR optimizer=sgd", "base", False),
    ("lr<0.05 AND optimizer=adam", "base", True), ("lr<0.05 AND optimizer=sgd", "base", False),
    ("NOT optimizer=sgd", "base", True), ("NOT optimizer=adam", "base", False), ("NOT NOT lr=0.01", "base", True),
    ("NOT nosuch=1", "base", True), ("NOT nosuch!=1", "base", True), ("NOT lr!=0.01", "base", True),
    ("lr>1 OR lr<0.05 optimizer=sgd", "base", False), ("(lr>1 OR lr<0.05) optimizer=adam", "base", True),
    ("(lr>1 OR lr<0.05) optimizer=sgd", "base", False), ("lr>1 OR lr<0.05 AND NOT optimizer=sgd", "base", True),
    ("NOT (tags=odd OR tags=even)", "base", False), ("NOT (tags=odd OR tags=even)", "quoted", True),
    ("((lr=0.01))", "base", True), ("(even)(sweep)", "base", True), ("( even ) OR ( odd )", "base", True),
    (["lr<0.001 OR optimizer=adam", "tags=even"], "base", True), (["lr<0.001 OR optimizer=sgd", "even"], "base", False),
    ("NOT lr<0.05 OR even", "base", True), ("NOT (lr<0.05 OR odd)", "base", False),
    # keywords are upper case: quoted, or in lower case, they are words to search
    ('"OR"', "words", True), ('"OR"', "base", False), ("or", "words", True), ("even or", "base", False),
    ('name="AND OR NOT"', "words", True), ('"NOT" "AND"', "words", True),
    # text holding a parenthesis is quoted
    ('name="f(x)"', "base", False), ('"run (2)"', "base", False), ('name="run-0" (lr=0.01)', "base", True),
    # min./max.: a metric's extremes; a hyperparameter of that spelling when no run has the metric
    ("min.val/acc<0.2", "base", True), ("max.val/acc>=0.95", "base", True), ("max.val/acc>0.95", "base", False),
    ("min.lr=0.001", "base", True), ("max.lr=0.01", "base", True), ("min.loss=null", "base", True),
    ("max.inf>1e308", "base", True), ("min.nosuch<1", "base", False), ("min.width=3", "base", True),
    ("config.min.width=3", "base", True), ("min.val/acc<0.2 OR max.val/acc<0.5", "base", True),
    # errors of structure: a keyword with nothing to join, unmatched or empty parentheses, one inside a term
    ("lr<0.01 OR", "base", "error"), ("OR lr<0.01", "base", "error"), ("lr<0.01 AND", "base", "error"),
    ("AND", "base", "error"), ("NOT", "base", "error"), ("lr<0.01 OR OR adam", "base", "error"),
    ("(lr<0.01", "base", "error"), ("lr<0.01)", "base", "error"), ("()", "base", "error"), ("( )", "base", "error"),
    ("name=f(x)", "base", "error"), ("(a)b", "base", "error"), ("NOT )", "base", "error"), ("(OR a)", "base", "error"),
    (["lr<0.01", "OR adam"], "base", "error"), ("(NOT)", "base", "error"), ("lr<0.01 (", "base", "error"),
    ("((lr<0.01)", "base", "error"), ("a AND OR b", "base", "error"), ("lr=<0.01 OR", "base", "error"),
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
    ("min.val/ac<1", "where term 'min.val/ac<1' names 'min.val/ac', which no run has; did you mean 'min.val/acc'"),
    ("lr<0.01 OR lrr>1", "where term 'lrr>1' names 'lrr', which no run has; did you mean 'lr'"),
    ("NOT (adam OR max.loss<1) min.val/acc>0 min.width=3", None),
]

_NODE = """
const q = require(process.argv[1]);
const revive = (k, v) => (v === "__nan__" ? NaN : v === "__inf__" ? Infinity : v);
const input = JSON.parse(require("fs").readFileSync(0, "utf8"), revive);
const run = (f) => { try { return { ok: f() }; } catch (err) { return { error: err.message }; } };
const cases = input.cases.map(([terms, record]) => run(() => q.parse(terms).matches(record)));
const checks = input.checks.map((terms) =>
  run(() => { q.checkKeys(q.parse(terms), q.knownKeys(input.records)); return null; }));
const structure = input.structure.map((terms) => run(() => q.parse(terms).matches({})));
process.stdout.write(JSON.stringify({ cases, checks, structure }));
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
        "structure": list(STRUCTURE_ERRORS),
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


STRUCTURE_ERRORS = {
    "lr<0.01 OR": "where query 'lr<0.01 OR' has nothing after 'OR'; write TERM OR TERM, e.g. 'lr<0.01 OR lr>0.1'",
    "OR adam": "where query 'OR adam' has nothing before 'OR'; write TERM OR TERM, e.g. 'lr<0.01 OR lr>0.1'",
    "a AND": "where query 'a AND' has nothing after 'AND'; write TERM AND TERM, e.g. 'lr<0.01 AND optimizer=adam'",
    "NOT": "where query 'NOT' has nothing after 'NOT'; write NOT TERM, e.g. 'NOT tags=baseline'",
    "(a": "where query '(a' opens a '(' it does not close; close it, e.g. '(lr<0.01 OR lr>0.1)'",
    "a)": "where query 'a)' closes a ')' it did not open; open it or remove it, e.g. '(lr<0.01 OR lr>0.1)'",
    "()": "where query '()' has empty parentheses; put terms inside, e.g. '(lr<0.01 OR lr>0.1)'",
    "name=f(x)": "where query 'name=f(x)' has a '(' inside the term 'name=f('; "
    "quote text that holds one, e.g. 'name=\"run (2)\"'",
    "(a)b": "where query '(a)b' has a ')' inside a term; quote text that holds one, e.g. 'name=\"run (2)\"'",
}


@pytest.mark.parametrize("terms", list(STRUCTURE_ERRORS))
def test_errors_of_structure_name_the_query_the_problem_and_an_example(terms: str, js_results: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        query.parse(terms)
    assert str(err.value) == STRUCTURE_ERRORS[terms]
    assert {"error": STRUCTURE_ERRORS[terms]} == js_results["structure"][list(STRUCTURE_ERRORS).index(terms)]


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
    assert names(store.runs(where="val/acc<0.9 OR optimizer=adam")) == ["run-1", "run-2"]
    assert names(store.runs(where="NOT (optimizer=adam OR tags=odd)")) == ["run-0", "run-2"]
    assert names(store.runs(where="min.val/acc<0.6")) == ["run-2"], "min. names the metric's smallest value"
    assert names(store.runs(where=["max.val/acc >= 0.95", "lr > 0.05"])) == ["run-0"]
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
    assert main(["runs", save_dir, "--where", "lr>0.05 OR optimizer=adam", "-w", "NOT tags=odd"]) == 0
    out = capsys.readouterr().out
    assert "run-0" in out and "run-1" not in out and "run-2" not in out
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


def test_the_report_s_filter_box_takes_or_not_and_min_max(tmp_path: Any, browser_page: tuple[Any, list[str]]) -> None:
    from lightning_tracker import Store
    from lightning_tracker.report import write_report
    from tests.report.pages import open_page

    page, errors = browser_page
    save_dir = str(tmp_path / "runs")
    _sweep(save_dir)
    path = write_report(Store(save_dir), tmp_path / "report.html")
    open_page(page, f"file://{path}")
    names = "rows => rows.map((r) => r.querySelector('td:nth-child(2)').textContent)"
    shown: dict[str, list[str]] = {}
    for terms in ("min.val/acc<0.6 OR optimizer=adam", "NOT (optimizer=adam OR tags=odd)", "max.val/acc>=0.95"):
        page.fill("#filter", terms)
        assert page.text_content("#filter-error") == "", terms
        shown[terms] = sorted(page.eval_on_selector_all("#runs-table tbody tr", names))
    assert shown == {
        "min.val/acc<0.6 OR optimizer=adam": ["run-1", "run-2"],
        "NOT (optimizer=adam OR tags=odd)": ["run-0", "run-2"],
        "max.val/acc>=0.95": ["run-0"],
    }
    page.fill("#filter", "lr<0.01 OR")
    assert page.text_content("#filter-error").startswith("where query 'lr<0.01 OR' has nothing after 'OR'")
    assert errors == []
