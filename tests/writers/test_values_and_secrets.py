"""The write side under odd input: values and steps that cannot be stored, a full disk under
TensorBoard, and secrets that must not reach the store (local folder and moto S3)."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.documents import PARAM_MAX_CHARS
from lightning_tracker.writers import tensorboard
from lightning_tracker.writers.hyperparams import REDACTED, flatten, is_secret_key
from tests.conftest import S3Server
from tests.helpers import lightning, tiny_model_class, trainer


def _target(where: str, tmp_path: Path, s3_server: S3Server) -> tuple[str, dict[str, Any] | None]:
    if where == "local":
        return str(tmp_path / "runs"), None
    return f"s3://{s3_server.new_bucket()}/exp", s3_server.storage_options


def _every_file(tmp_path: Path, url: str, options: dict[str, Any] | None) -> list[bytes]:
    """The bytes of every file the run left: the local folder or spool, and the bucket."""
    blobs = [(Path(d) / f).read_bytes() for d, _, fs in os.walk(tmp_path) for f in fs]
    if url.startswith("s3://"):
        fs = Store(url, options).storage.fs
        blobs += [fs.cat_file(p) for p in fs.find(url.removeprefix("s3://"))]
    return blobs


# -- 5. steps ------------------------------------------------------------------------------
def test_a_huge_step_does_not_stop_later_automatic_steps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logger = TrackerLogger(tmp_path, name="p", tensorboard=False)
    for step in range(3):
        logger.log_metrics({"a": float(step)}, step=step)
    with caplog.at_level(logging.WARNING):
        for bad in (2**63, 1e300, np.uint64(2**64 - 1), -(2**64)):
            logger.log_metrics({"a": 10.0}, step=bad)  # each at the automatic step instead
    for _ in range(3):
        logger.log_metrics({"a": 20.0})  # step-less: the automatic step goes on from where it was
    logger.log_metrics({"top": 1.0}, step=2**63 - 1)  # the highest int64 step is a step
    logger.log_metrics({"top": 2.0})  # and the automatic step stays there, never beyond int64
    logger.finalize("success")
    metrics = Store(tmp_path).run(logger.version).metrics().set_index("step")
    a = metrics["a"].dropna()
    assert list(a.index) == list(range(10)) and list(a) == [0.0, 1.0, 2.0] + [10.0] * 4 + [20.0] * 3
    assert metrics["top"].dropna().to_dict() == {2**63 - 1: 2.0}
    warnings = [r.getMessage() for r in caplog.records if "outside the steps" in r.getMessage()]
    assert len(warnings) == 1, "one warning per kind of bad step, not per call"


# -- 9. TensorBoard on a full disk ---------------------------------------------------------
@pytest.mark.parametrize("failure", ["partial write", "fsync"])
def test_a_full_disk_leaves_tensorboard_files_readable_and_loses_no_scalar(
    failure: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write_at = tensorboard._write_at

    def full_disk(fd: int, offset: int, data: bytes) -> None:
        if failure == "partial write":  # half a record reaches the file, then the disk is full
            os.pwrite(fd, data[: len(data) // 2 + 3], offset)
        else:  # the write went through; fsync reports the blocks could not be allocated
            os.pwrite(fd, data, offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    logger = TrackerLogger(tmp_path, name="p", flush_interval=300)
    writer = logger.experiment

    def log(steps: range) -> None:
        for step in steps:
            logger.log_metrics({"a": float(step), "b": -float(step)}, step=step)
        writer.flush()

    log(range(0, 100))
    monkeypatch.setattr(tensorboard, "_write_at", full_disk)
    with caplog.at_level(logging.WARNING):
        log(range(100, 200))
        log(range(200, 300))
    assert any("TensorBoard" in r.getMessage() for r in caplog.records), "the failure is reported"
    # meanwhile TensorBoard reads the file to its last whole record, every scalar before the failure
    during = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0})
    during.Reload()
    assert [e.step for e in during.Scalars("a")] == list(range(100))
    monkeypatch.setattr(tensorboard, "_write_at", real_write_at)  # space is back
    log(range(300, 400))
    logger.finalize("success")
    acc = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    for key, sign in (("a", 1.0), ("b", -1.0)):
        events = acc.Scalars(key)
        assert [e.step for e in events] == list(range(400)), key
        assert [e.value for e in events] == [sign * s for s in range(400)], key
    assert len(Store(tmp_path).run(logger.version).metrics()["a"].dropna()) == 400


# -- 11. secrets ---------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["local", "s3"])
def test_omegaconf_env_interpolations_are_stored_unresolved_and_the_rest_resolved(
    where: str, tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from omegaconf import OmegaConf

    monkeypatch.chdir(tmp_path)  # no git.diff of this work tree (it holds the planted string)
    monkeypatch.setenv("LT_TEST_HUB_TOKEN", "hf_planted_env_secret_5151")
    cfg = OmegaConf.create(
        {
            "model": {"hub": "${oc.env:LT_TEST_HUB_TOKEN}", "width": 8, "double": "${model.width}"},
            "upload": {"target": "${model.hub}", "url": "https://user:${oc.env:LT_TEST_HUB_TOKEN}@hub"},
            "lr": 0.1,
            "lr_copy": "${lr}",
            "broken": "${no.such.key}",
            "required": "???",
        }
    )
    url, options = _target(where, tmp_path, s3_server)
    logger = TrackerLogger(url, name="p", storage_options=options)
    with caplog.at_level(logging.WARNING):
        logger.log_hyperparams(cfg)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    blobs = _every_file(tmp_path, url, options)
    assert len(blobs) >= 5 and not any(b"hf_planted_env_secret_5151" in b for b in blobs)
    run = Store(url, options).run(logger.version)
    assert run.config["model"] == {"hub": "${oc.env:LT_TEST_HUB_TOKEN}", "width": 8, "double": 8}
    # user info of a URL is dropped as always; the rest stays as written
    assert run.config["upload"] == {"target": "${model.hub}", "url": "https://hub"}
    # one unresolvable interpolation leaves the others resolved
    assert (run.config["lr_copy"], run.config["broken"], run.config["required"]) == (0.1, "${no.such.key}", "???")
    assert any("no.such.key" in r.getMessage() for r in caplog.records)


SECRET_KEYS = [
    "dbpassword",
    "hftoken",
    "apitoken",
    "secretkey",
    "privatekey",
    "clientsecret",
    "DBPASSWORD",
    "myApiToken",
    "gcpcredentials",
    "sentrydsn",
    "accesskeys",
    "authtoken",
    "api_key",
    "hf_token",
]
ORDINARY_KEYS = ["keyboard", "monkey", "tokenizer", "passage", "author", "turkey", "hotkey", "secretary",
                 "keyframe", "tokenizer_name", "pad_token", "eos_token", "mask_token", "authors", "passes"]  # fmt: skip


def test_one_word_secret_keys_are_redacted_and_ordinary_words_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [k for k in SECRET_KEYS if not is_secret_key(k)] == []
    assert [k for k in ORDINARY_KEYS if is_secret_key(k)] == []
    monkeypatch.chdir(tmp_path)
    logger = TrackerLogger(tmp_path / "runs", name="p")
    logger.log_hyperparams({k: f"planted-{i}-value" for i, k in enumerate(SECRET_KEYS + ORDINARY_KEYS)})
    logger.finalize("success")
    config = Store(tmp_path / "runs").run(logger.version).config
    assert all(config[k] == REDACTED for k in SECRET_KEYS)
    assert all(
        config[k] == f"planted-{i}-value" for i, k in enumerate(SECRET_KEYS + ORDINARY_KEYS) if k in ORDINARY_KEYS
    )
    for i in range(len(SECRET_KEYS)):
        assert not any(f"planted-{i}-value".encode() in b for b in _every_file(tmp_path, "", None))


def test_stored_checkpoints_carry_no_secret_hyperparameters(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pl = lightning("pytorch_lightning")
    monkeypatch.chdir(tmp_path)

    class WithKey(tiny_model_class("pytorch_lightning")):  # type: ignore[misc]
        def __init__(self, api_key: str, lr: float = 0.05, width: int = 8, batch_size: int = 8) -> None:
            super().__init__(lr=lr, width=width, batch_size=batch_size)
            self.save_hyperparameters()

    url = f"s3://{s3_server.new_bucket()}/exp"
    logger = TrackerLogger(url, name="p", storage_options=s3_server.storage_options, log_model=True)
    ckpt = pl.callbacks.ModelCheckpoint(save_top_k=-1)
    trainer(logger, max_epochs=2, enable_checkpointing=True, callbacks=[ckpt]).fit(WithKey("sk-planted-ckpt-8181"))
    local = sorted(Path(ckpt.dirpath).glob("*.ckpt"))
    assert len(local) == 2
    for path in local:  # Lightning's own files are Lightning's: unchanged
        assert b"sk-planted-ckpt-8181" in path.read_bytes()
    run = Store(url, s3_server.storage_options).run(logger.version)
    assert len(run.checkpoints) == 2
    for ref in run.checkpoints:
        path = ref.download(tmp_path / ref.name)  # verified against the manifest's size and sha256
        assert b"sk-planted-ckpt-8181" not in Path(path).read_bytes()
        stored = torch.load(path, weights_only=False)
        original = torch.load(Path(ckpt.dirpath) / ref.entry["file"], weights_only=False)
        assert stored["hyper_parameters"] == {**original["hyper_parameters"], "api_key": REDACTED}
        assert all(torch.equal(stored["state_dict"][k], v) for k, v in original["state_dict"].items())
        assert (stored["global_step"], stored["epoch"]) == (ref.entry["step"], ref.entry["epoch"])
        WithKey.load_from_checkpoint(path)  # still a checkpoint Lightning loads


# -- 13. smaller ---------------------------------------------------------------------------
def test_a_remote_save_dir_with_dot_dot_parts_stays_inside_the_spool(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    spool = tmp_path / "deep" / "spool"
    logger = TrackerLogger(
        f"s3://{bucket}/a/../../../x",
        name="p",
        storage_options=s3_server.storage_options,
        spool_dir=spool,
        finalize_timeout=10,
    )
    logger.log_metrics({"a": 1.0}, step=0)
    logger.finalize("success")
    real = os.path.realpath(logger.log_dir)
    assert real.startswith(str(spool) + os.sep), real
    assert sorted(os.listdir(tmp_path)) == ["deep"] and os.listdir(tmp_path / "deep") == ["spool"]
    assert os.path.commonpath([spool, logger.save_dir]) == str(spool)


@pytest.mark.parametrize("name", ["mnist\n", "mnist\r\n", "\nmnist"])
def test_names_with_a_trailing_newline_are_rejected(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="folder name inside save_dir"):
        TrackerLogger(tmp_path, name=name)
    with pytest.raises(InvalidArgumentError, match="version="):
        TrackerLogger(tmp_path, version=name)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_huge_hyperparameter_is_cut_in_run_json_and_kept_whole_in_config_json(
    where: str, tmp_path: Path, s3_server: S3Server
) -> None:
    url, options = _target(where, tmp_path, s3_server)
    logger = TrackerLogger(url, name="p", storage_options=options, tensorboard=False)
    prompt = "long prompt " * 100_000
    logger.log_hyperparams({"prompt": prompt, "lr": 0.1, "layers": list(range(10_000)), "short": [1, 2]})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    store = Store(url, options)
    raw = store.storage.read_bytes(f"p/{logger.version}/run.json")
    assert len(raw) < 20_000, "run.json is rewritten at every flush: it stays small"
    params = json.loads(raw)["params"]
    assert len(params["prompt"]) == PARAM_MAX_CHARS and params["prompt"] == prompt[: PARAM_MAX_CHARS - 1] + "…"
    assert params["layers"].startswith("[0, 1, 2") and params["layers"].endswith("…")
    assert (params["lr"], params["short"]) == (0.1, [1, 2])
    run = store.run(logger.version)
    assert run.config["prompt"] == prompt and run.config["layers"] == list(range(10_000))


def test_dotted_and_nested_keys_that_join_alike_are_both_kept(tmp_path: Path) -> None:
    assert flatten({"a": {"b": 2}, "a.b": 1}) == {"a.b~1": 2, "a.b": 1}
    assert flatten({"a.b": 1, "a": {"b": 2, "c": 3}, "a.b~1": 4}) == {"a.b": 1, "a.b~2": 2, "a.c": 3, "a.b~1": 4}
    logger = TrackerLogger(tmp_path, name="p", tensorboard=False)
    logger.log_hyperparams({"a.b": 1, "a": {"b": 2}})
    logger.log_hyperparams({"a": {"b": 3}})  # a change of the nested one is its own change
    logger.finalize("success")
    run = Store(tmp_path).run(logger.version)
    assert run.flat_config == {"a.b": 1, "a.b~1": 3}
    assert run.config == {"a.b": 1, "a": {"b": 3}}
    assert run.config_history[-1]["changes"] == {"a.b~1": [2, 3]}
