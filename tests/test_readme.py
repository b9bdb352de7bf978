"""The README's first hour: its two set-up commands and every Python example it shows.

``make demo`` installs the package (no setuptools warning, the report's assets shipped);
``make test`` writes nothing into the user's home or the repository; every ```python
block of README.md runs as given, in order, and records the runs it says it does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store
from tests.conftest import S3Server
from tests.helpers import REPO, wheel_sources

README = Path(REPO) / "README.md"
HOME_DEFAULTS = ("LIGHTNING_TRACKER_SPOOL", "MPLCONFIGDIR", "IPYTHONDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                 "XDG_DATA_HOME")  # fmt: skip
SETUP_COMMANDS = """```bash
make demo   # trains several configurations of a small classifier and lists the runs in ./runs
make test   # installs everything into .venv and runs the whole test suite
```
"""


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_the_readme_opens_with_its_title_a_picture_of_the_report_and_the_two_set_up_commands() -> None:
    title, blank, picture, blank2, rest = README.read_text().split("\n", 4)
    assert (title, blank, blank2) == ("# lightning_tracker", "", "")
    found = re.fullmatch(r"!\[[^\]]+\]\((docs/[\w.-]+\.png)\)", picture)
    assert found, picture
    png = Path(REPO) / found.group(1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, "a real screenshot"
    assert rest.startswith(SETUP_COMMANDS)


def test_every_trainer_of_the_readme_logs_every_step() -> None:
    import ast

    calls = [
        node
        for block in _python_blocks()
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("Trainer")
    ]
    assert len(calls) >= 6
    unset = [ast.unparse(c) for c in calls if "log_every_n_steps" not in {k.arg for k in c.keywords}]
    assert not unset, f"without log_every_n_steps a short fit records no train/loss: {unset}"


def test_the_readme_s_install_commands_name_the_wheel_the_build_makes_and_every_extra() -> None:
    import configparser

    from lightning_tracker import __version__

    text = README.read_text()
    wheels = set(re.findall(r"dist/(lightning_tracker-[^\s\[\"]+\.whl)", text))
    assert wheels == {f"lightning_tracker-{__version__}-py3-none-any.whl"}, wheels
    config = configparser.ConfigParser()
    config.read(Path(REPO) / "setup.cfg")
    extras = set(config["options.extras_require"]) - {"test", "bench"}
    table = text[text.index("| Extra | Adds | For |") :].split("\n\n")[0]
    listed = {name for row in table.splitlines()[2:] for name in re.findall(r"`([\w-]+)`", row.split("|")[1])}
    assert listed == extras, f"the README's extras table and setup.cfg differ: {listed ^ extras}"


def test_every_python_block_of_the_readme_runs_in_order_and_records_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: S3Server
) -> None:
    import s3fs

    blocks = _python_blocks()
    assert len(blocks) >= 6
    assert not [b for b in blocks if "..." in b], "a README example holds a '...' placeholder"
    # the S3 examples take their credentials and endpoint from the standard environment
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    buckets = sorted(set(re.findall(r"s3://([a-z0-9.-]+)/", "\n".join(blocks))))
    assert buckets == ["my-bucket"]
    s3 = s3fs.S3FileSystem(**s3_server.storage_options, skip_instance_cache=True)
    for bucket in buckets:
        if s3.exists(bucket):
            s3.rm(bucket, recursive=True)
        s3.mkdir(bucket)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"README.md, python block {number}", "exec"), namespace)  # as a reader runs them

    local = Store("./runs")
    assert local.projects() == ["demo"]
    runs = {run.id: run for run in local.runs("demo")}
    first = runs[namespace["run_id"]]
    assert first.status == "finished" and first.tags == ["baseline"] and first.config == {"lr": 0.05}
    assert len(first.doc["sessions"]) == 2, "resumed with resume='must'"
    # resumed from its own checkpoint: epochs 4 to 6 follow epochs 1 to 3, nothing is logged twice
    train = first.metrics().dropna(subset=["train/loss"])
    assert list(train["step"]) == list(range(6 * 8)), "the history of both sessions, one point per step"
    assert first.summary["val/loss"]["count"] == 6
    monitored = [run for run in runs.values() if not run.histograms().empty]
    assert len(runs) == 3 and len(monitored) == 1, "the GradientMonitor example recorded histograms"
    media = namespace["media_run"].media()
    assert set(media["key"]) == {"val/samples", "val/generated", "val/per_class"} and namespace["media_run"].tags == [
        "media"
    ]
    assert media.loc[media["key"] == "val/samples", "caption"].tolist()[-4:] == ["a", "b", "c", "d"]

    remote = Store("s3://my-bucket/experiments", s3_server.storage_options)
    stored = remote.runs("demo")
    assert len(stored) == 2 and {run.status for run in stored} == {"finished"}
    with_checkpoints = [run for run in stored if run.checkpoints]
    assert len(with_checkpoints) == 1
    resumed = with_checkpoints[0]
    assert resumed.monitor == {"name": "val/loss", "mode": "min"}
    assert len(resumed.doc["sessions"]) == 2 and resumed.summary["val/loss"]["high_step"] == 6 * 8 - 1  # epoch 6
    _run_the_shell_examples(first.id, monitored[0].id)
    spool = os.environ["LIGHTNING_TRACKER_SPOOL"]  # the fixtures' spool in tmp_path, a user's is in ~/.cache
    _everything_written_is_ignored_by_git(sorted(n for n in os.listdir(tmp_path) if str(tmp_path / n) != spool))


def _everything_written_is_ignored_by_git(written: list[str]) -> None:
    """What the examples left in the working folder is covered by the repository's .gitignore."""
    if shutil.which("git") is None or not (Path(REPO) / ".git").exists():
        return  # not a git work tree: nothing to check against
    assert {"runs", "report.html"} <= set(written), written
    paths = [f"{name}/x" if os.path.isdir(name) else name for name in written]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert sorted(done.stdout.split()) == sorted(paths), f"not ignored by git: {set(paths) - set(done.stdout.split())}"


def _shell_lines() -> list[str]:
    """The ``lightning-tracker`` command lines of the README's bash blocks, comments removed."""
    blocks = re.findall(r"^```bash\n(.*?)^```$", README.read_text(), flags=re.MULTILINE | re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("lightning-tracker ")]


def _run_the_shell_examples(run_id: str, monitored_id: str) -> None:
    """Each command as a reader types it after the Python examples (RUN replaced by real ids)."""
    import shlex

    lines = _shell_lines()
    assert {line.split()[1] for line in lines} >= {"runs", "show", "compare", "hist", "report", "serve", "sync"}
    for line in lines:
        ids = line.replace("RUN RUN", f"{run_id} {monitored_id}").replace("hist RUN", f"hist {monitored_id}")
        argv = shlex.split(ids.replace("RUN", run_id))[1:]
        command = [sys.executable, "-m", "lightning_tracker.cli", *argv]
        if argv[0] == "serve":  # runs until stopped: it must start and answer
            proc = subprocess.Popen(
                [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            try:
                started = proc.stdout.readline() if proc.stdout else ""
                assert "serving" in started and "http://127.0.0.1:" in started, (line, started, proc.stderr)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            continue
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        # only a filter may match nothing (status 1, said plainly); every other line must succeed
        nothing = "--where" in argv and done.returncode == 1 and "no runs match" in done.stdout
        assert done.returncode == 0 or nothing, (line, done.stdout[-2000:], done.stderr[-2000:])
        assert "Traceback" not in done.stderr, line
    assert os.path.exists("report.html") and os.listdir(f"histograms-{monitored_id}")


def test_make_test_writes_nothing_into_the_home_or_the_repository(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # as on a user's machine: nothing points the spool or any cache away from the home
    env = {k: v for k, v in os.environ.items() if k not in HOME_DEFAULTS}
    env["HOME"] = str(home)
    before = set(os.listdir(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--doctest-modules", "lightning_tracker", "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert " passed" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert not [p for p in written if "lightning_tracker" in p], written
    assert written == [], f"the doctests wrote into the home folder: {written}"
    new = set(os.listdir(REPO)) - before
    assert not new & {"runs", "report.html"} and not [n for n in new if n.startswith("histograms-")], new


def test_a_test_that_writes_into_the_repository_fails(tmp_path: Path) -> None:
    repo = tmp_path / "repo"  # a repository with our conftest.py, nothing else
    repo.mkdir()
    shutil.copy(Path(REPO) / "conftest.py", repo / "conftest.py")
    (repo / "pytest.ini").write_text("[pytest]\naddopts = --doctest-modules -p no:cacheprovider\n")
    seen = tmp_path / "seen.txt"
    (repo / "test_writes.py").write_text(f"""
import os

def test_writes_a_report():
    open("report.html", "w").close()

def test_writes_into_tmp_path(tmp_path):
    (tmp_path / "report.html").write_text("fine")
    with open({str(seen)!r}, "w") as f:
        f.write("\\n".join(os.environ[name] for name in {HOME_DEFAULTS!r}))
""")
    (repo / "module.py").write_text('''
def f():
    """
    >>> import os; os.makedirs("runs/demo/r1")
    """
''')
    done = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=repo, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 1, out
    assert "ERROR at teardown of test_writes_a_report" in out and "['report.html']" in out, out
    assert "ERROR at teardown of [doctest] module.f" in out and "'runs/demo', 'runs/demo/r1'" in out, out
    assert "3 passed, 2 errors" in out, out  # both pass, then fail at teardown
    folders = seen.read_text().splitlines()
    assert len(folders) == len(HOME_DEFAULTS) and not [f for f in folders if f.startswith(os.path.expanduser("~"))]
    assert not [f for f in folders if os.path.exists(f)], "the session's temporary folder is removed at the end"


def test_the_package_installs_without_setuptools_warnings_and_ships_its_assets(tmp_path: Path) -> None:
    src = wheel_sources(tmp_path)
    out = tmp_path / "wheel"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", str(src), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    editable = subprocess.run(  # what `pip install -e .` calls (PEP 660)
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_editable({str(tmp_path)!r})"],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    for build in (done, editable):
        text = build.stdout + build.stderr
        assert build.returncode == 0, text[-3000:]
        assert "would be ignored" not in text and "absent from the `packages` configuration" not in text, text[-3000:]
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    assets = Path(REPO) / "lightning_tracker" / "report" / "assets"
    expected = {
        f"lightning_tracker/report/assets/{p.relative_to(assets).as_posix()}" for p in assets.rglob("*") if p.is_file()
    }
    assert {"lightning_tracker/report/assets/app.js", "lightning_tracker/report/assets/page.html"} <= expected
    assert expected <= shipped, sorted(expected - shipped)
    assert "lightning_tracker/py.typed" in shipped


def test_what_the_readme_s_commands_write_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (Path(REPO) / ".git").exists():
        pytest.skip("not a git work tree")
    written = ["runs/demo/r1/run.json", "report.html", "histograms-r1/net.0.weight.png", ".tools/node_modules/x"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.split() == written, done.stdout + done.stderr
