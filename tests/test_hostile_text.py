"""Text read from a store reaches the terminal and the file system as data, never as commands.

A store is shared, synced and downloaded: its run names, tags, metric names and
hyperparameters are whatever was written into it. The CLI prints them as plain text
(rich markup is not read, control characters are shown as ``\\x1b``), in a real
pseudo-terminal too, and ``hist`` makes file names of them that stay inside ``--out``.
"""

from __future__ import annotations

import io
import json
import os
import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.format.codec import dumps, loads
from lightning_tracker.format.documents import new_run
from lightning_tracker.format.layout import HISTOGRAMS_DIR, RUN_FILE, chunk_name
from lightning_tracker.storage import Storage
from tests.helpers import in_terminal, local_or_s3

# rich markup, a hyperlink, clear screen, an OSC 8 link, a window title, a cursor report and a C1 CSI
HOSTILE = (
    "[/]x [link=http://evil.example]click[/link] [bold red]loud "
    "\x1b[2J\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\ \x1b]0;pwned\x07 \x1b[6n \x9b31m"
)
# what rich itself sends a terminal: colours, cursor hide/show, line erase and moves of its live displays
RICH_OWN = re.compile(rb"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[[0-9]*[ABCDGK]")


def _opts(options: Any) -> list[str]:
    return ["--storage-options", json.dumps(options)] if options else []


def _hostile_store(save_dir: str, options: Any) -> tuple[str, str]:
    """Two runs: one whose name, tag, metric names and hyperparameters are hostile, one plain."""
    ids = []
    for name, lr in ((HOSTILE, 0.1), ("plain", 0.2)):
        logger = TrackerLogger(
            save_dir, name="p", run_name="placeholder", tags=[HOSTILE], storage_options=options, tensorboard=False
        )
        logger.log_hyperparams({"lr": lr, "note": HOSTILE, "[/]": "[link=http://evil.example]x[/link]"})
        logger.log_metrics({HOSTILE: lr, "[/]": 2.0, "loss": lr}, step=0)
        logger.finalize("success")
        storage = Storage(save_dir, options)
        rel = f"p/{logger.version}/{RUN_FILE}"
        storage.write_bytes(rel, dumps({**loads(storage.read_bytes(rel)), "name": name}))  # as a foreign writer may
        ids.append(logger.version)
    return ids[0], ids[1]


def _commands(save_dir: str, hostile: str, plain: str) -> list[list[str]]:
    return [["runs", save_dir, "-p", "p"], ["show", hostile, save_dir], ["compare", hostile, plain, "-s", save_dir]]


def test_stored_markup_and_escape_sequences_print_as_plain_text(
    store_target: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    hostile, plain = _hostile_store(save_dir, options)
    for argv in _commands(save_dir, hostile, plain):
        assert main([*argv, *_opts(options)]) == 0, argv
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out, argv
        assert "\\x1b" in out and "[/]" in out, argv  # shown, as text
        if argv[0] == "show":  # wide enough that no cell folds
            assert "\\x1b[2J" in out and "[link=http://evil.example]" in out and "[bold red]loud" in out
    assert main(["show", "\x1b[2J[/]nope", save_dir, *_opts(options)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[2J[/]nope" in err


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("target", ["local", "s3"])
def test_in_a_terminal_no_escape_sequence_from_the_store_reaches_the_screen(
    target: str, columns: int, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    save_dir, options = local_or_s3(target, tmp_path, request)
    hostile, plain = _hostile_store(save_dir, options)
    for argv in _commands(save_dir, hostile, plain):
        status, out = in_terminal([*argv, *_opts(options)], columns)
        assert status == 0 and b"Traceback" not in out, (argv, out[-2000:])
        assert RICH_OWN.search(out), "a terminal gets rich's styles: the test sees a real terminal"
        foreign = RICH_OWN.sub(b"", out)
        assert b"\x1b" not in foreign and b"\xc2\x9b" not in foreign and b"\x07" not in foreign, (argv, foreign)
        assert b"\\x" in out and b"[/]" in out, argv


def _write_histograms(storage: Storage, tensors: list[tuple[str, str]]) -> None:
    doc = new_run("r1", "p", "r1", group=None, tags=[], notes=None, heartbeat_interval_s=2.0, url="x")
    storage.write_bytes(f"p/r1/{RUN_FILE}", dumps({**doc, "status": "finished"}))
    rows = [(t, k, step) for t, k in tensors for step in range(3)]
    table = pa.table(
        {
            "step": [s for _, _, s in rows],
            "time": [0.0] * len(rows),
            "tensor": [t for t, _, _ in rows],
            "kind": [k for _, k, _ in rows],
            "edges": [[-1.0, 0.0, 1.0]] * len(rows),
            "counts": [[s + 1, 2] for _, _, s in rows],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(f"p/r1/{HISTOGRAMS_DIR}/{chunk_name(0, 0, 0)}", buf.getvalue())


CRAFTED = [
    ("cls/head", "gradient"), ("cls_head", "gradient"), ("../../../escaped", "gradient"),
    ("/tmp/absolute", "parameter"), ("$\\frac{$", "gradient"), ("\x1b[2J", "parameter"),
    ("w", "../../../../outside"), ("w", "/abs/kind"), (".hidden", "gradient"),
]  # fmt: skip


def test_hist_writes_one_png_per_tensor_inside_out_whatever_the_stored_names(
    store_target: tuple[str, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir, options = store_target
    _write_histograms(Storage(save_dir, options), CRAFTED)
    out = tmp_path / "deep" / "out"
    assert main(["hist", "r1", "*", save_dir, "--out", str(out), *_opts(options)]) == 0
    printed = capsys.readouterr().out
    written = sorted(os.listdir(out))
    assert len(written) == len(CRAFTED), written
    for name in written:
        assert name.endswith(".png") and not name.startswith(".") and re.fullmatch(r"[A-Za-z0-9._=+-]+", name)
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    everything = [os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files if f.endswith(".png")]
    assert sorted(everything) == sorted(str(out / n) for n in written), "no PNG outside --out"
    assert "\x1b" not in printed
    assert main(["hist", "r1", "*", save_dir, "--out", str(tmp_path / "g"), "--kind", "gradient", *_opts(options)]) == 0
    assert len(os.listdir(tmp_path / "g")) == sum(kind == "gradient" for _, kind in CRAFTED)


def test_hist_replaces_a_link_in_out_instead_of_writing_through_it(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    _write_histograms(Storage(save_dir), [("w", "gradient")])
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("keep me")
    (out / "gradient-w.png").symlink_to(victim)
    assert main(["hist", "r1", "*", save_dir, "--out", str(out)]) == 0
    assert victim.read_text() == "keep me"
    assert not (out / "gradient-w.png").is_symlink() and (out / "gradient-w.png").read_bytes()[:4] == b"\x89PNG"
    assert len(Store(save_dir).run("r1").histograms()) == 3
