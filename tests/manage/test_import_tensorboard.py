"""``import tensorboard``: logs a real ``TensorBoardLogger`` wrote in a real Trainer, and a
``SummaryWriter``'s images, text, histograms and HParams, read back with ``Store``/``Run`` equal
to what TensorBoard's own reader sees; importing twice adds nothing. Local and moto S3."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lightning_tracker import Store
from lightning_tracker.cli import main
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.manage.import_tensorboard import import_tensorboard
from tests.helpers import REPO, lightning, local_or_s3, tiny_model, trainer


def _trainer_logs(logdir: Path, runs: int = 2) -> list[str]:
    """Fits the tiny model ``runs`` times with a real TensorBoardLogger; returns the version folders."""
    pl = lightning("pytorch_lightning")
    folders = []
    for i in range(runs):
        logger = pl.loggers.TensorBoardLogger(str(logdir), name="lightning_logs")
        trainer(logger, max_epochs=2).fit(tiny_model(lr=0.05 * (i + 1)))
        folders.append(os.path.relpath(logger.log_dir, logdir))
    return folders


def _writer_logs(logdir: Path) -> str:
    """Images, text, histograms and HParams written by torch's SummaryWriter into one folder."""
    from torch.utils.tensorboard import SummaryWriter

    folder = logdir / "writer"
    writer = SummaryWriter(str(folder))
    rng = np.random.default_rng(0)
    for step in range(3):
        writer.add_scalar("train/loss", 1.0 / (step + 1), global_step=step)
        writer.add_image("samples", rng.integers(0, 255, (3, 8, 12), dtype=np.uint8), global_step=step)
        writer.add_text("notes", f"step **{step}**", global_step=step)
        writer.add_histogram("layer.weight", rng.normal(size=500), global_step=step)
        writer.add_histogram("layer.weight.grad", rng.normal(size=500) * 0.1, global_step=step)
    # run_name=".": the HParams go into this folder, as TensorBoardLogger writes them
    writer.add_hparams({"lr": 0.01, "optimizer": "adam", "layers": 3}, {"hp/acc": 0.75}, run_name=".")
    writer.close()
    return "writer"


def _tensorboard_view(folder: Path) -> Any:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(folder), size_guidance={k: 0 for k in ea.DEFAULT_SIZE_GUIDANCE})
    acc.Reload()
    return acc


@pytest.mark.parametrize("target", ["local", "s3"])
def test_tensorboard_logs_import_as_runs_that_read_back_what_tensorboard_shows(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, options = local_or_s3(target, tmp_path, request)
    logdir = tmp_path / "tb"
    versions = _trainer_logs(logdir)
    writer = _writer_logs(logdir)
    store = Store(url, options)
    results = import_tensorboard(store, str(logdir), "imported")
    assert [r.folder for r in results] == sorted([*versions, writer]) and all(r.imported for r in results)
    runs = {r.folder: store.run(r.run_id, "imported") for r in results}

    for version in versions:
        run, acc = runs[version], _tensorboard_view(logdir / version)
        assert run.status == "finished" and run.name == os.path.basename(version) and run.group == "lightning_logs"
        assert run.flat_config["lr"] in (0.05, 0.1) and run.flat_config["width"] == 8  # hparams.yaml
        history = run.metrics(wide=False)
        for tag in acc.Tags()["scalars"]:
            events = acc.Scalars(tag)
            got = history[history["key"] == tag]
            expected = {e.step: (e.wall_time, e.value) for e in events}  # the last value per step
            assert sorted(got["step"]) == sorted(expected), tag
            for step, t, value in zip(got["step"], got["time"], got["value"], strict=True):
                assert (t, value) == pytest.approx(expected[step], rel=1e-6), (tag, step)
        assert {"train/loss", "val/loss"} <= set(history["key"])
        first = min(e.wall_time for t in acc.Tags()["scalars"] for e in acc.Scalars(t))
        assert run.start_time == pytest.approx(first) and 0 <= run.duration < 600
        assert run.meta == {} and run.git_diff == ""  # the importing machine is not where the logs were written

    run, acc = runs[writer], _tensorboard_view(logdir / writer)
    assert run.flat_config == {"lr": 0.01, "optimizer": "adam", "layers": 3}
    assert list(run.metrics()["hp/acc"].dropna()) == [0.75]  # the HParams metric is a scalar
    media = run.media()
    images = media[media["kind"] == "image"]
    assert list(images["step"]) == [0, 1, 2] and set(images["key"]) == {"samples"}
    for e in acc.Images("samples"):
        expected = np.asarray(Image.open(io.BytesIO(e.encoded_image_string)))
        assert np.array_equal(np.asarray(run.read_media("samples", e.step)), expected)
        assert float(images[images["step"] == e.step]["time"].iloc[0]) == pytest.approx(e.wall_time)
    texts = media[media["kind"] == "text"]
    assert list(texts["key"]) == ["notes"] * 3
    assert [run.read_media("notes", s)["text"].tolist() for s in range(3)] == [[f"step **{s}**"] for s in range(3)]
    hist = run.histograms()
    assert set(hist["tensor"]) == {"layer.weight", "layer.weight.grad"}
    assert set(hist[hist["tensor"] == "layer.weight.grad"]["kind"]) == {"gradient"}
    for e in acc.Histograms("layer.weight"):
        row = hist[(hist["tensor"] == "layer.weight") & (hist["step"] == e.step)].iloc[0]
        h = e.histogram_value
        assert row["numel"] == h.num == 500 and list(row["counts"]) == list(h.bucket)
        assert (row["min"], row["max"], row["sum"], row["time"]) == pytest.approx((h.min, h.max, h.sum, e.wall_time))

    again = import_tensorboard(store, str(logdir), "imported")  # the same logs again: nothing added
    assert [r.run_id for r in again] == [r.run_id for r in results] and not any(r.imported for r in again)
    assert sorted(store.run_ids("imported")) == sorted(r.run_id for r in results)
    changes = store.storage.listdir("imported/.index/changes")
    # each imported run tells the index (the mirror that publishes it may tell it twice: start and end)
    assert {name.split("-", 1)[1].rsplit("-", 1)[0] for name in changes} == {r.run_id for r in results}


def test_an_import_cut_off_before_its_run_json_is_finished_by_the_next(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    _writer_logs(logdir)
    store = Store(str(tmp_path / "runs"))
    (result,) = import_tensorboard(store, str(logdir), "p")
    before = store.run(result.run_id).metrics()
    store.storage.rm(f"p/{result.run_id}/run.json")  # as if cut off before its documents
    store.storage.write_bytes(f"p/{result.run_id}/metrics/000-zzzzzzzz-00000000-00000000.parquet", b"half")
    (again,) = import_tensorboard(store, str(logdir), "p")
    assert again.imported and again.run_id == result.run_id
    assert store.run(result.run_id).metrics().equals(before)


@pytest.mark.parametrize("bad", ["missing", "file", "empty"])
def test_a_bad_logdir_is_a_one_line_error(bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logdir = tmp_path / "logs"
    if bad == "file":
        logdir.write_text("x")
    elif bad == "empty":
        (logdir / "version_0").mkdir(parents=True)
    with pytest.raises(InvalidArgumentError, match=r"^LOGDIR="):
        import_tensorboard(Store(str(tmp_path / "runs")), str(logdir), "p")
    assert main(["import", "tensorboard", str(logdir), "-s", str(tmp_path / "runs"), "-p", "p"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: LOGDIR=") and "\n" not in err, err


def test_import_on_the_command_line_says_what_it_imported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logdir = tmp_path / "tb"
    _writer_logs(logdir)
    store = str(tmp_path / "runs")
    assert main(["import", "tensorboard", str(logdir), "-s", store, "-p", "p", "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["folder"] == "writer" and doc["imported"] and doc["images"] == 3 and doc["histograms"] == 6
    assert main(["import", "tensorboard", str(logdir), "-s", store, "-p", "p"]) == 0
    assert "already imported" in capsys.readouterr().out


def test_import_without_tensorboard_names_the_extra_to_install(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    _writer_logs(logdir)
    script = (
        "import sys; sys.modules['tensorboard'] = None\n"  # as if it were not installed
        "from lightning_tracker.cli import main\n"
        f"sys.exit(main(['import', 'tensorboard', {str(logdir)!r}, '-s', {str(tmp_path / 'runs')!r}, '-p', 'p']))"
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "pip install 'lightning-tracker[tensorboard]'" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "runs").exists()  # said before anything was written


def _scalars(folder: Path, steps: range) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))  # a new event file in the folder, as a resumed SummaryWriter writes
    for step in steps:
        writer.add_scalar("loss", 1.0 / (step + 1), global_step=step)
    writer.close()


def test_a_reimport_says_what_new_events_it_did_not_import_and_update_imports_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir, url = tmp_path / "tb", str(tmp_path / "runs")
    _scalars(logdir / "version_0", range(5))
    store = Store(url)
    (first,) = import_tensorboard(store, str(logdir), "p")
    _scalars(logdir / "version_0", range(5, 10))  # the training went on after the import
    (again,) = import_tensorboard(store, str(logdir), "p")
    assert not again.imported and again.run_id == first.run_id and again.new_files == 1 and again.new_bytes > 0
    assert list(store.run(first.run_id, "p").metrics()["loss"].index) == list(range(5))  # nothing changed yet
    capsys.readouterr()
    assert main(["import", "tensorboard", str(logdir), "-s", url, "-p", "p"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert f"version_0: already imported as p/{first.run_id}; 1 new event file" in said and "use --update" in said
    assert main(["import", "tensorboard", str(logdir), "-s", url, "-p", "p", "--update"]) == 0
    assert f"version_0 → p/{first.run_id} (updated)" in " ".join(capsys.readouterr().out.split())
    run = store.run(first.run_id, "p")
    loss = run.metrics()["loss"]
    assert list(loss.index) == list(range(10)) and list(loss) == pytest.approx([1.0 / (s + 1) for s in range(10)])
    assert len(store.storage.listdir(f"p/{first.run_id}/metrics")) == 1  # the old import's chunk is gone
    (last,) = import_tensorboard(store, str(logdir), "p")
    assert not last.imported and last.new_files == 0 and store.run_ids("p") == [first.run_id]


def test_two_imports_of_the_same_logs_write_the_same_objects(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    _writer_logs(logdir)
    stores = [Store(str(tmp_path / name)) for name in ("a", "b")]
    (a,), (b,) = (import_tensorboard(store, str(logdir), "p") for store in stores)
    # the same names: an import that finds another's objects (no run.json yet) keeps them, and never
    # removes what the other is about to name in its run.json
    run = f"p/{a.run_id}"
    assert a.run_id == b.run_id and sorted(stores[0].storage.find(run)) == sorted(stores[1].storage.find(run))


def test_two_imports_of_the_same_logs_at_once_leave_one_whole_run(tmp_path: Path) -> None:
    logdir, url = tmp_path / "tb", str(tmp_path / "runs")
    _writer_logs(logdir)
    argv = [sys.executable, "-m", "lightning_tracker.cli", "import", "tensorboard", str(logdir), "-s", url, "-p", "p"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in "ab"]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    (run_id,) = Store(url).run_ids("p")
    run = Store(url).run(run_id, "p")
    assert (
        len(run.media()) == 6
        and len(run.histograms()) == 6
        and list(run.metrics()["train/loss"].dropna())
        == [
            1.0,
            0.5,
            pytest.approx(1 / 3),
        ]
    )
    alone = Store(str(tmp_path / "alone"))
    import_tensorboard(alone, str(logdir), "p")
    assert sorted(Store(url).storage.find(f"p/{run_id}")) == sorted(alone.storage.find(f"p/{run_id}"))
