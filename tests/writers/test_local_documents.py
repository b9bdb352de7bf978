"""The spool's own documents (``spool.json``, ``.mirror.json``, the checkpoint staging files) are
shaped by ``format/documents.py`` and read back through the same check as every document."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import StorageError
from lightning_tracker.format.documents import STAGING_STATE, VERSIONS
from lightning_tracker.format.layout import MIRROR_FILE, SPOOL_FILE, STAGING_DIR
from lightning_tracker.format.validate import parse_document
from lightning_tracker.writers.sync import sync
from tests.helpers import lightning, tiny_model, trainer


def test_a_real_remote_run_writes_local_documents_that_read_back_whole(tmp_path: Path) -> None:
    url = f"memory://local-docs-{uuid.uuid4().hex[:8]}"
    logger = TrackerLogger(url, name="p", log_model=True, spool_dir=tmp_path / "spool", tensorboard=False)
    checkpoint = lightning().callbacks.ModelCheckpoint(every_n_train_steps=2, save_top_k=1, monitor="step", mode="max")
    trainer(logger, max_steps=4, enable_checkpointing=True, callbacks=[checkpoint]).fit(tiny_model())
    folder = Path(logger.log_dir)
    for name, path in (
        (SPOOL_FILE, folder / SPOOL_FILE),
        (MIRROR_FILE, folder / MIRROR_FILE),
        (STAGING_STATE, folder / STAGING_DIR / "state.json"),
    ):
        parsed = parse_document(name, path.read_bytes())
        assert parsed.problems == () and parsed.version == VERSIONS[name], (name, parsed.problems)
    assert Store(url).run(logger.version).checkpoints


def test_sync_reports_a_damaged_spool_json_naming_it_and_uploads_the_other_runs(tmp_path: Path) -> None:
    url = f"memory://spool-docs-{uuid.uuid4().hex[:8]}"
    folders = []
    for _ in range(2):
        logger = TrackerLogger(url, name="p", offline=True, spool_dir=tmp_path / "spool", tensorboard=False)
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
        folders.append(logger.log_dir)
    damaged = os.path.join(folders[0], SPOOL_FILE)
    with open(damaged) as f:
        doc = json.load(f)
    with open(damaged, "w") as f:
        json.dump({**doc, "url": 42}, f)

    reports = sync(spool_root=str(tmp_path / "spool"))
    error = reports[folders[0]].error
    assert isinstance(error, StorageError) and not reports[folders[0]].complete
    assert damaged in str(error) and "field 'url' is 42; expected a string" in str(error)
    assert "repair the file" in str(error)
    assert reports[folders[1]].complete
    assert [r.id for r in Store(url).runs("p")] == [os.path.basename(folders[1])]


def test_a_damaged_mirror_state_is_ignored_and_sync_compares_with_the_store(tmp_path: Path) -> None:
    url = f"memory://mirror-docs-{uuid.uuid4().hex[:8]}"
    logger = TrackerLogger(url, name="p", offline=True, spool_dir=tmp_path / "spool", tensorboard=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    with open(os.path.join(logger.log_dir, MIRROR_FILE), "w") as f:
        json.dump({"format_version": 1, "published": {"run.json": "everything"}}, f)
    report = sync([logger.log_dir], keep=True)[logger.log_dir]  # kept: its state is read below
    assert report.complete and "run.json" in report.uploaded
    assert Store(url).run(logger.version).metrics()["loss"].tolist() == [1.0]
    published = parse_document(MIRROR_FILE, Path(logger.log_dir, MIRROR_FILE).read_bytes())
    assert not published.damaged and "run.json" in published.doc["published"], "rewritten whole by the mirror"
