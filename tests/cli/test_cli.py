"""The lightning-tracker command line on local, memory and S3 stores: columns, the store, exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from lightning_tracker import TrackerLogger
from lightning_tracker.cli import main
from tests.helpers import REPO, in_terminal

LRS = (0.005, 0.05, 0.0001)


def _make_runs(save_dir: str, options: Any, project: str = "cli") -> list[TrackerLogger]:
    """Three runs that differ in ``lr``, share ``width``, and log monitor families besides their metrics."""
    loggers = []
    for i, lr in enumerate(LRS):
        logger = TrackerLogger(
            save_dir, name=project, run_name=f"run-{i}", storage_options=options, tags=["sweep"], tensorboard=False
        )
        logger.log_hyperparams({"lr": lr, "width": 64, "seed": 0, "optimizer": "adam" if i else "sgd"})
        for step in range(5):
            logger.log_metrics(
                {
                    "val/acc": 0.5 + lr * 10 + step * 0.01,
                    "train/loss": 1.0 / (step + 1),
                    "epoch": 0,
                    "system/cpu_percent": 50.0,
                    "gradients/total/norm": 1.5,
                },
                step=step,
            )
        logger.finalize("success")
        loggers.append(logger)
    return loggers


def _opts(options: Any) -> list[str]:
    return ["--storage-options", json.dumps(options)] if options else []


def _rows(out: str) -> list[list[str]]:
    """The rows of a piped ``runs`` table, split on runs of two spaces or more."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if "run-" in line]


def test_runs_shows_the_columns_a_person_wants(
    store_target: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    loggers = _make_runs(save_dir, options)
    assert main(["runs", "-s", save_dir, "-p", "cli", "--sort=-val/acc", *_opts(options)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("id "))
    assert header.split() == ["id", "name", "status", "duration", "lr", "optimizer", "val/acc", "train/loss", "epoch"]
    assert "width" not in header and "seed" not in header, "only hyperparameters that differ are shown"
    assert "system/cpu" not in out and "2 monitor metrics (gradients/, parameters/, system/) hidden" in out
    assert "3 runs in" in out and "\x1b" not in out, "a pipe gets plain text"
    rows = _rows(out)
    assert [r[1] for r in rows] == ["run-1", "run-0", "run-2"]
    assert [r[4] for r in rows] == ["0.05", "0.005", "0.0001"], "numbers whole, never cut"
    short = rows[0][0]
    assert loggers[1].version.startswith(short) and len(short) < len(loggers[1].version)
    assert main(["show", short, "-s", save_dir, *_opts(options)]) == 0, "the short id finds the run"
    assert "run-1" in capsys.readouterr().out
    assert main(["runs", "-s", save_dir, "-p", "cli", "--all", *_opts(options)]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("id "))
    assert "width" in header and "system/cpu_percent" in header and "gradients/total/norm" in header
    assert (
        main(["runs", "-s", save_dir, "-p", "cli", "--columns", "val/acc,system/*", "-c", "seed", *_opts(options)]) == 0
    )
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("id "))
    assert header.split()[4:] == ["val/acc", "system/cpu_percent", "seed"]


def test_runs_puts_the_monitored_metric_first(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import lightning, tiny_model, trainer

    save_dir = str(tmp_path / "runs")
    for lr in (0.05, 0.01):  # a real ModelCheckpoint: the logger records what it monitors
        checkpoint = lightning().callbacks.ModelCheckpoint(dirpath=str(tmp_path / f"ck{lr}"), monitor="train/loss")
        trainer(
            TrackerLogger(save_dir, name="cli"),
            max_epochs=1,
            limit_train_batches=2,
            enable_checkpointing=True,
            callbacks=[checkpoint],
        ).fit(tiny_model(lr=lr))
    assert main(["runs", "-s", save_dir, "-p", "cli"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("id ")).split()
    assert header[4:] == ["lr", "train/loss", "val/loss", "epoch"], "the monitored metric first, then val*"


@pytest.mark.parametrize("columns", [80, 120])
def test_in_a_terminal_whole_columns_are_left_out_never_cut(tmp_path: Any, columns: int) -> None:
    save_dir = str(tmp_path / "runs")
    loggers = _make_runs(save_dir, None)
    for i, logger in enumerate(loggers):  # many differing hyperparameters: more than 120 columns hold
        logger2 = TrackerLogger(save_dir, name="cli", version=logger.version, tensorboard=False)
        logger2.log_hyperparams({f"param_{k}": i * 1000.125 + k for k in range(12)})
        logger2.finalize("success")
    status, raw = in_terminal(["runs", "-s", save_dir, "-p", "cli"], columns)
    import re

    screen = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", raw).decode()
    assert status == 0 and "Traceback" not in screen
    lines = [line.rstrip("\r") for line in screen.splitlines()]
    table = [line for line in lines if "run-" in line]
    assert len(table) == 3 and all(len(line) <= columns for line in lines)
    for line in table:
        assert "…" not in line, "no cell is cut"
    for lr, line in zip(LRS, sorted(table, key=lambda ln: ln.split()[1]), strict=True):
        assert f" {lr:g} " in f"{line} "
    notes = " ".join(lines[lines.index(table[-1]) + 1 :])  # rich wraps the note at the window's width
    assert "did not fit" in notes and "widen the terminal or pick with --columns" in " ".join(notes.split())
    header = next(line for line in lines if line.lstrip().startswith("id ")).split()
    # by priority: identity, the main metric, then the differing hyperparameters from the left
    assert header[:4] == ["id", "name", "status", "lr"] and "val/acc" in header and "duration" not in header
    assert header[-1] == "val/acc" and all(h.startswith(("lr", "optimizer", "param_")) for h in header[3:-1])


def test_every_command_names_its_store_the_same_way(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    a, b, _ = (lg.version for lg in _make_runs(save_dir, None))
    out_dir = str(tmp_path / "h")
    for argv in (
        ["runs", "-s", save_dir, "-p", "cli"],
        ["runs", save_dir, "-p", "cli"],
        ["show", a, "-s", save_dir],
        ["show", a, save_dir],
        ["show", save_dir, a],
        ["compare", a, b, "-s", save_dir],
        ["compare", a, b, save_dir],
        ["hist", a, save_dir, "--out", out_dir],
        ["hist", a, "*", "-s", save_dir, "--out", out_dir],
        ["report", "-s", save_dir, "-o", str(tmp_path / "r.html")],
    ):
        if argv[0] == "hist":  # the run is found; it has no histograms to draw
            assert main(argv) == 1 and f"matches no tensor with histograms in run {a}" in capsys.readouterr().out
            continue
        assert main(argv) == 0, (argv, capsys.readouterr())
        assert a[:8] in capsys.readouterr().out or argv[0] == "report", argv
    monkeypatch.setenv("LIGHTNING_TRACKER_STORE", save_dir)
    assert main(["show", "run-1"]) == 0 and "run-1" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIGHTNING_TRACKER_STORE")
    assert main(["runs", "-p", "cli"]) == 0 and "3 runs" in capsys.readouterr().out, "./runs by default"
    assert main(["runs", "-s", save_dir, str(tmp_path)]) == 2
    assert "two stores given" in capsys.readouterr().err


def test_credentials_come_from_the_options_or_the_environment(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = f"s3://{s3_server.new_bucket()}/exp"
    _make_runs(save_dir, s3_server.storage_options)
    monkeypatch.setenv("LIGHTNING_TRACKER_STORAGE_OPTIONS", json.dumps(s3_server.storage_options))
    assert main(["runs", "-s", save_dir, "-p", "cli"]) == 0 and "3 runs" in capsys.readouterr().out
    monkeypatch.delenv("LIGHTNING_TRACKER_STORAGE_OPTIONS")
    # the backend's own standard environment, as boto reads it
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", s3_server.endpoint),
    ):
        monkeypatch.setenv(name, value)
    assert main(["runs", "-s", save_dir, "-p", "cli"]) == 0 and "3 runs" in capsys.readouterr().out


# each mistake a newcomer makes, and what the command says instead of an empty result
MISTAKES = [
    (["--where", "lrr<0.01"], "names 'lrr', which no run has; did you mean 'lr'?"),
    (["--where", "lr=<0.01"], "write one operator between key and value"),
    (["--where", "lr<abc"], "'<' compares numbers"),
    (["--status", "finishd"], "--status='finishd' is not a run state; use one of: running, finished, failed"),
    (["--columns", "nope"], "--columns: 'nope' is not a hyperparameter or metric of these runs"),
    (["--columns", "val/ac"], "did you mean val/acc"),
    (["-p", "clii"], "no project 'clii' in"),
    (["--sort", "bogus"], "--sort='bogus' is not a column"),
    (["--sort=-val/ac"], "--sort='val/ac' is not a column; did you mean val/acc?"),
    (["--sort", "durtion"], "did you mean duration?"),
]


@pytest.mark.parametrize(("extra", "said"), MISTAKES)
def test_mistakes_are_usage_errors_not_empty_results(
    extra: list[str], said: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = str(tmp_path / "runs")
    _make_runs(save_dir, None)
    assert main(["runs", "-s", save_dir, "-p", "cli", *extra]) == 2
    captured = capsys.readouterr()
    assert said in captured.err and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "no runs" not in captured.out


def test_the_store_itself_is_checked(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = tmp_path / "runs"
    _make_runs(str(save_dir), None)
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (str(tmp_path / "nope"), "does not exist; pass the folder the runs were written to with -s PATH"),
        (str(tmp_path / "file.txt"), "is a file, not a folder of runs"),
        (str(save_dir / "cli"), f"looks like a project folder; try -s {save_dir} -p cli"),
    ]
    for store, said in cases:
        for argv in (["runs", "-s", store], ["show", "run-1", "-s", store], ["report", "-s", store]):
            assert main(argv) == 2, argv
            assert said in capsys.readouterr().err, argv
    assert not (tmp_path / "report.html").exists()


def test_exit_statuses_found_nothing_matched_usage(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = str(tmp_path / "runs")
    _make_runs(save_dir, None)
    assert main(["runs", "-s", save_dir, "-p", "cli", "-w", "lr<0.01"]) == 0
    assert main(["runs", "-s", save_dir, "-p", "cli", "-w", "lr>1"]) == 1
    assert "no runs match --where 'lr>1' in" in capsys.readouterr().out
    assert main(["runs", "-s", save_dir, "-p", "cli", "--status", "failed"]) == 1
    assert main(["show", "nope", "-s", save_dir]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and "lightning-tracker runs -s" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["runs", "-s", str(empty)]) == 1
    assert "no runs in" in capsys.readouterr().out
    assert main(["report", "-s", save_dir, "-p", "cli", "-o", str(tmp_path / "r.html"), "nope"]) == 2
    assert main(["report", "-s", str(empty), "-o", str(tmp_path / "r.html")]) == 1, "an empty store: nothing matched"
    assert "no runs in" in capsys.readouterr().out and not (tmp_path / "r.html").exists()
    assert main(["report", "-s", save_dir, "-o", str(tmp_path / "r.html"), "--share", "30"]) == 2
    assert "--share=30 days" in capsys.readouterr().err and not (tmp_path / "r.html").exists(), "checked first"


def test_a_store_with_several_projects_lists_them(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    save_dir = str(tmp_path / "runs")
    _make_runs(save_dir, None, project="alpha")
    beta = TrackerLogger(save_dir, name="beta", tensorboard=False)
    beta.log_metrics({"loss": 1.0}, step=0)
    beta.finalize("success")
    assert main(["runs", "-s", save_dir]) == 0
    out = capsys.readouterr().out
    assert "2 projects in" in out and _rows(out.replace("alpha", "run-alpha").replace("beta", "run-beta")) == [
        ["run-alpha", "3"],
        ["run-beta", "1"],
    ]
    assert "-p PROJECT" in out
    assert main(["runs", "-s", save_dir, "-p", "beta"]) == 0
    out = capsys.readouterr().out
    assert "1 run in" in out and "1 runs" not in out
    assert main(["runs", "-s", save_dir, "--sort", "loss"]) == 0, "a sort asks for runs: across the projects"
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("id ")).split()
    assert header[:4] == ["id", "name", "project", "status"]


def test_a_storage_failure_is_one_line_with_the_fix(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.servers import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "NO_COLOR": "1"}
    options = json.dumps({"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    base = [
        sys.executable,
        "-m",
        "lightning_tracker.cli",
        "runs",
        "-s",
        "s3://bucket/exp",
        "--storage-options",
        options,
    ]
    done = subprocess.run(base, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "no credentials for s3://bucket/exp" in done.stderr and "AWS_ACCESS_KEY_ID" in done.stderr
    env |= {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    done = subprocess.run(base, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 3 and done.stderr.count("\n") == 1, done.stderr  # 3: transient, run it again
    assert "cannot reach the server of s3://bucket/exp" in done.stderr and "endpoint_url" in done.stderr
    done = subprocess.run([*base, "--debug"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 3 and "Traceback" in done.stderr and "cannot reach the server" in done.stderr


def test_version_and_the_script() -> None:
    done = subprocess.run([sys.executable, "-m", "lightning_tracker.cli", "--version"], capture_output=True, text=True)
    from lightning_tracker import __version__

    assert done.returncode == 0 and done.stdout.strip() == f"lightning-tracker {__version__}"
    done = subprocess.run([sys.executable, "-m", "lightning_tracker.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "runs" in done.stdout and "sync" in done.stdout


def test_the_command_the_demo_prints_works_in_a_new_shell(tmp_path: Any) -> None:
    # a new shell: the virtual environment is not activated, its scripts are not on PATH
    venv_bin = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if os.path.abspath(p) != venv_bin)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": path}
    code = "from lightning_tracker.cli.producing import command_name; print(command_name())"
    name = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO
    ).stdout.strip()
    if os.path.dirname(sys.executable).startswith(REPO):
        assert name == os.path.relpath(os.path.join(venv_bin, "lightning-tracker"), REPO)
    done = subprocess.run(["bash", "-c", f"{name} --version"], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0 and done.stdout.startswith("lightning-tracker "), (name, done.stderr)


def test_a_closed_pipe_is_not_an_error(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    for i in range(3):  # 3 lines of 2,000 differing hyperparameters: far more than a pipe buffer holds
        logger = TrackerLogger(save_dir, name="cli", tensorboard=False)
        logger.log_hyperparams({f"param_{k:04d}": 1000.0 * i + k for k in range(2000)})
        logger.finalize("success")
    cmd = f"{sys.executable} -m lightning_tracker.cli runs -s {save_dir} -p cli | head -c 10"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_a_report_is_written_to_any_url_and_shared_by_a_signed_link(
    s3_server: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import urllib.request

    save_dir = str(tmp_path / "runs")
    _make_runs(save_dir, None)
    url = f"s3://{s3_server.new_bucket()}/reports/sweep.html"
    argv = ["report", "-s", save_dir, "-p", "cli", "-o", url, "--share", "2", *_opts(s3_server.storage_options)]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"report written to {url}" in out and "share this link (valid 2 days): http" in out
    link = out.split("): ", 1)[1].split()[0]
    import time
    from urllib.parse import parse_qs, urlparse

    query = parse_qs(urlparse(link).query)
    if "X-Amz-Expires" in query:  # signature version 4
        assert query["X-Amz-Expires"] == ["172800"]
    else:  # version 2: an absolute expiry time
        assert abs(int(query["Expires"][0]) - (time.time() + 2 * 86400)) < 300
    with urllib.request.urlopen(link, timeout=30) as response:  # plain https(http) GET, no credentials
        page = response.read().decode()
    assert page.startswith("<!DOCTYPE html>") and "run-1" not in page[:100]
    assert main(["report", "-s", save_dir, "-p", "cli", "-o", str(tmp_path / "r.html"), "--share", "1"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot be shared by a signed link: file storage has no signed https links" in err
    assert (tmp_path / "r.html").exists(), "the report is written; only the link is missing"


@pytest.mark.parametrize("form", [["-s"], []])
def test_serve_takes_the_store_as_every_command_does(form: list[str], tmp_path: Any) -> None:
    import re
    import urllib.request

    save_dir = str(tmp_path / "runs")
    _make_runs(save_dir, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_tracker.cli", "serve", *form, save_dir, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = re.search(r"http://127\.0\.0\.1:\d+/?", line)
        assert url, line
        with urllib.request.urlopen(url[0], timeout=30) as response:
            assert response.status == 200 and b"<!DOCTYPE html>" in response.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _colours(raw: bytes) -> set[str]:
    """The foreground colours (SGR 30–37, 38;…, 90–97) a terminal was sent."""
    import re

    found = set()
    for params in re.findall(rb"\x1b\[([0-9;]*)m", raw):
        codes = params.decode().split(";")
        found |= {c for c in codes if c.isdigit() and (30 <= int(c) <= 38 or 90 <= int(c) <= 97)}
    return found


def test_colours_follow_the_terminal_and_no_color(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    _make_runs(save_dir, None)
    status, coloured = in_terminal(["runs", "-s", save_dir, "-p", "cli"], 120)
    assert status == 0 and _colours(coloured), "a terminal gets colours"
    status, plain = in_terminal(["runs", "-s", save_dir, "-p", "cli"], 120, env={"NO_COLOR": "1"})
    assert status == 0 and not _colours(plain), "NO_COLOR: no colours"
    assert b"run-1" in plain and "─".encode() in plain, "still a table"


def test_a_missing_package_is_said_of_the_store_not_of_save_dir(capsys: pytest.CaptureFixture[str]) -> None:
    # fsspec knows dropbox:// but its package is not installed: the reader is told about the store it named
    assert main(["runs", "-s", "dropbox://team/runs"]) == 2
    err = capsys.readouterr().err
    assert "the store 'dropbox://team/runs' needs the package 'dropbox'" in err and "pip install dropbox" in err
    assert "save_dir" not in err and err.count("\n") == 1
