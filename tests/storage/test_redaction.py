"""Credentials in every URL form fsspec takes stay out of messages and files, and a URL that
cannot name a store (a capitalised scheme, a chained URL, white space around it) is refused at
construction with the fix, never taken for a store that is down."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.storage import Storage, redact_url
from lightning_tracker.writers.environment import redact_argv
from lightning_tracker.writers.sync import sync

FORMS = [
    "simplecache::s3://AKIAKEY:SECRETxyz@bucket/exp",
    "filecache::s3://AKIAKEY:SECRETxyz@bucket/exp",
    "zip://inner.txt::s3://AKIAKEY:SECRETxyz@bucket/archive.zip",
    " s3://AKIAKEY:SECRETxyz@bucket/exp",
    "s3://AKIAKEY:SECRETxyz@bucket/exp\n",
    "\ts3://AKIAKEY:SECRET/xyz@bucket/exp",
    "S3://AKIAKEY:SECRETxyz@bucket/exp",
]


@pytest.mark.parametrize("url", FORMS)
def test_credentials_in_every_url_form_fsspec_takes_are_redacted(url: str) -> None:
    shown = redact_url(url)
    assert "SECRET" not in shown and "AKIAKEY" not in shown, shown
    assert "bucket/" in shown
    assert "SECRET" not in " ".join(redact_argv(["train.py", f"--save-dir={url}", url]))


@pytest.mark.parametrize("url", FORMS)
def test_a_url_that_names_no_store_is_refused_at_construction_without_its_credentials(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    with caplog.at_level(logging.DEBUG), pytest.raises(InvalidArgumentError) as raised:
        TrackerLogger(url, name="p", spool_dir=spool)
    message = str(raised.value)
    assert message.startswith("save_dir=") and "\n" not in message.strip()
    assert "pass 's3://bucket/" in message, message  # the fix, redacted
    assert "SECRET" not in message and "AKIAKEY" not in message
    assert "SECRET" not in caplog.text
    assert not spool.exists() and os.listdir(tmp_path) == []  # nothing written, no spool folder named after it
    with pytest.raises(InvalidArgumentError):
        Store(url)


def test_a_capitalised_scheme_is_refused_naming_the_lower_case_fix() -> None:
    with pytest.raises(InvalidArgumentError, match=r"save_dir='S3://bkt/exp' .*lower case: pass 's3://bkt/exp'"):
        Storage("S3://bkt/exp")
    with pytest.raises(InvalidArgumentError, match="lower case: pass 'memory://x'"):
        Storage("Memory://x")


def test_ordinary_urls_and_local_paths_still_open(tmp_path: Path) -> None:
    assert Storage("memory://bkt/exp").url == "memory://bkt/exp"
    assert Storage(f"file://{tmp_path}").is_local
    assert Storage(str(tmp_path / "a b")).root == str(tmp_path / "a b")  # a space inside a path is a path
    assert redact_url("http://[::1]:9000/bucket") == "http://[::1]:9000/bucket"


def test_sync_names_a_spooled_run_whose_store_url_cannot_be_opened_and_syncs_the_others(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    good = TrackerLogger("memory://redaction-sync/exp", name="p", version="ok", spool_dir=spool, offline=True)
    good.log_metrics({"loss": 1.0}, step=0)
    good.finalize("success")
    bad = TrackerLogger("memory://redaction-sync/other", name="p", version="bad", spool_dir=spool, offline=True)
    bad.log_metrics({"loss": 2.0}, step=0)
    bad.finalize("success")
    spool_json = Path(bad.log_dir) / "spool.json"  # as an earlier version wrote it for save_dir="S3://…"
    spool_json.write_text(spool_json.read_text().replace("memory://redaction-sync/other", "S3://bkt/exp"))
    reports = sync(spool_root=str(spool))
    assert reports[good.log_dir].complete
    error = str(reports[bad.log_dir].error)
    assert str(spool_json) in error and "URL schemes are lower case: pass 's3://bkt/exp'" in error
