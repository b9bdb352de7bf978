"""Secrets are recognised by the shape of their value as well as by their key: a connection
string under ``connection_string``, a password under ``pass`` or ``pw``, a token under
``bearer`` or ``jwt``, a key under ``private``, a webhook URL under any name never reach a
file; learning rates, paths and model names are stored as logged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.writers.environment import redact_argv
from lightning_tracker.writers.hyperparams import REDACTED, redact_secrets, to_plain

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlcGxhbnRlZA"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEplantedKEYbody\n-----END RSA PRIVATE KEY-----\n"
# key -> a value holding a planted secret that the value or key must give away
SECRETS: dict[str, Any] = {
    "connection_string": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=plantedAK+/x==;",
    "storage": {"conn": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=plantedAK2+/x=="},
    "pass": "plantedPass1",
    "db_pw": "plantedPw2",
    "bearer": "plantedBearer3",
    "auth_header": "Bearer plantedHeaderToken4",
    "jwt": JWT,
    "session": JWT,
    "private": PEM,
    "notify": "https://hooks.slack.com/services/T0001/B0002/plantedSlack5",
    "alerts": "https://discord.com/api/webhooks/123456/plantedDiscord6",
    "gh": "ghp_plantedGithubToken7abcdefghijklmno",
    "signed": "https://acct.blob.core.windows.net/c/x.bin?sv=2022-11-02&sig=plantedSig8",
    "odbc": "Driver={ODBC};Server=db;Uid=me;Pwd=plantedOdbc9;",
}
PLANTED = [
    "plantedAK", "plantedPass1", "plantedPw2", "plantedBearer3", "plantedHeaderToken4", "c2lnbmF0dXJl",
    "plantedKEYbody", "plantedSlack5", "plantedDiscord6", "plantedGithubToken7", "plantedSig8", "plantedOdbc9",
]  # fmt: skip
# values with nothing secret in them, under keys that look nothing like secret ones: stored exactly
HARMLESS = {
    "lr": 3e-4,
    "lr_text": "3e-4",
    "data_dir": "/data/imagenet/train",
    "out": "s3://bucket/exp/run-1",
    "model": "bert-base-uncased",
    "tokenizer": "sk-learn",
    "commit": "9f2c1e4b7a3d5e6f8a9b0c1d2e3f4a5b6c7d8e9f",
    "pass_rate": 0.9,
    "private_dataset": "/mnt/private/cifar",
    "connection_timeout": "30s",
    "schedule": "cosine warmup=500 steps",
    "task": "token classification",
    "filter": "label==1 & score>=0.5",
    "hf_cache": "hf_transformers_cache",
}


def _every_file(root: Path) -> list[bytes]:
    return [(Path(d) / f).read_bytes() for d, _, fs in os.walk(root) for f in fs]


def test_secrets_under_unrecognised_keys_never_reach_a_file_and_harmless_values_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["train.py", "--conn", SECRETS["connection_string"], f"--hook={SECRETS['notify']}"])
    logger = TrackerLogger(tmp_path / "runs", name="p")
    logger.log_hyperparams({**SECRETS, **HARMLESS})
    logger.finalize("success")
    run = Store(str(tmp_path / "runs")).run(logger.version)
    blobs = _every_file(tmp_path / "runs")
    leaked = [p for p in PLANTED if any(p.encode() in b for b in blobs)]
    assert leaked == []
    assert {k: run.config[k] for k in HARMLESS} == HARMLESS
    assert run.config["connection_string"] in (
        REDACTED,
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***REDACTED***;",
    )
    assert run.config["storage"]["conn"] == "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***REDACTED***"
    assert run.config["signed"] == "https://acct.blob.core.windows.net/c/x.bin?sv=2022-11-02&sig=***REDACTED***"


def test_checkpoint_hyperparameters_lose_secret_shaped_values_under_any_key() -> None:
    params = {"lr": 0.1, "conn": SECRETS["connection_string"], "nested": {"url": SECRETS["notify"]}, "dir": "/data"}
    red = redact_secrets(params)
    assert red["lr"] == 0.1 and red["dir"] == "/data"
    assert "plantedAK" not in str(red) and "plantedSlack5" not in str(red)
    harmless = dict(HARMLESS)
    assert redact_secrets(harmless) is harmless  # nothing to redact: the same object
    assert to_plain(harmless) == harmless


def test_command_line_secrets_are_redacted_by_shape() -> None:
    argv = ["train.py", "--conn", SECRETS["connection_string"], f"--url={SECRETS['alerts']}", "--lr", "3e-4", JWT]
    shown = " ".join(redact_argv(argv))
    assert not [p for p in PLANTED if p in shown]
    assert "--lr 3e-4" in shown and "AccountName=acct" in shown
