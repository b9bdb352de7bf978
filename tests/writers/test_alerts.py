"""Alerts from a real Trainer to a real HTTP webhook on 127.0.0.1: what is posted, what the run
records, and that a failing or hung webhook is retried and counted at the server but never
holds or fails training."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import InvalidArgumentError
from tests.helpers import local_or_s3, tiny_model, trainer

PACKAGE = "pytorch_lightning"


class Webhook:
    """A webhook on 127.0.0.1 that keeps every body it is posted, answers ``statuses`` in turn
    (then 200), and holds each request while ``hold`` is set until ``release`` is."""

    def __init__(self, statuses: tuple[int, ...] = (), hold: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.requests = 0
        self.paths: list[str] = []
        self._statuses = list(statuses)
        self.hold = hold
        self.held = threading.Event()
        self.release = threading.Event()
        self.delivered = threading.Event()  # set at the first body answered 200
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.requests += 1
                webhook.paths.append(self.path)
                if webhook.hold:
                    webhook.held.set()
                    webhook.release.wait(30)
                status = webhook._statuses.pop(0) if webhook._statuses else 200
                if status == 200:
                    webhook.bodies.append(json.loads(body))
                    webhook.delivered.set()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.token = f"tok-{uuid.uuid4().hex}"
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/{self.token}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, bodies: int) -> list[dict[str, Any]]:
        """The bodies once ``bodies`` were delivered (the sender posts at most one a second, in the background)."""
        for _ in range(600):
            if len(self.bodies) >= bodies:
                return self.bodies
            self.release.wait(0.1)
        raise AssertionError(f"{len(self.bodies)} of {bodies} alerts delivered in a minute")

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


class _AlertsAtEpochEnd(tiny_model(PACKAGE).__class__):  # type: ignore[misc]
    def on_train_epoch_end(self) -> None:
        self.logger.alert("Epoch done", f"epoch {self.current_epoch} ended", level="warn")


def _all_bytes(*roots: Path) -> bytes:
    data = b""
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                data += Path(folder, name).read_bytes()
    return data


@pytest.mark.parametrize("target", ["local", "s3"])
def test_an_alert_is_posted_as_slack_json_and_recorded_in_the_run(
    target: str,
    tmp_path: Path,
    request: Any,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_ALERTS_LINK", "https://tracker.example.com/?project={project}&run={run}")
    save_dir, options = local_or_s3(target, tmp_path, request)
    logger = TrackerLogger(save_dir, name="p", storage_options=options, alerts=webhook.url, run_name="otter")
    trainer(logger, PACKAGE, max_epochs=2).fit(_AlertsAtEpochEnd())

    body = webhook.wait_for(2)[0]
    assert webhook.requests == 2, "one post per alert, the run's end not asked for"
    assert body["text"].startswith(f"[warn] Epoch done: p/otter ({logger.version}) is running")
    link = f"https://tracker.example.com/?project=p&run={logger.version}"
    assert link in body["text"]
    (attachment,) = body["attachments"]
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields == {"project": "p", "run": f"otter ({logger.version})", "status": "running", "level": "warn"}
    assert (attachment["title"], attachment["text"], attachment["title_link"]) == ("Epoch done", "epoch 0 ended", link)
    run = Store(save_dir, storage_options=options).run(logger.version)
    assert [(a["title"], a["text"], a["level"], a["event"]) for a in run.alerts] == [
        ("Epoch done", "epoch 0 ended", "warn", "user"),
        ("Epoch done", "epoch 1 ended", "warn", "user"),
    ]
    assert webhook.token.encode() not in _all_bytes(tmp_path), "the webhook URL reached a file"
    capsys.readouterr()
    options_args = ["--storage-options", json.dumps(options)] if options else []
    assert main(["show", logger.version, "-s", save_dir, *options_args]) == 0
    shown = capsys.readouterr().out
    assert "alerts" in shown and "epoch 1 ended" in shown and webhook.token not in shown


def test_fit_raising_posts_an_error_alert_naming_the_exception(tmp_path: Path, webhook: Webhook) -> None:
    class Boom(tiny_model(PACKAGE).__class__):  # type: ignore[misc]
        def training_step(self, batch: Any, index: int) -> Any:
            if self.global_step == 3:
                raise RuntimeError("loss exploded")
            return super().training_step(batch, index)

    logger = TrackerLogger(tmp_path, name="p", alerts=webhook.url)
    with pytest.raises(RuntimeError):
        trainer(logger, PACKAGE).fit(Boom())
    (body,) = webhook.wait_for(1)
    assert body["lightning_tracker"]["event"] == "failed" and body["lightning_tracker"]["status"] == "failed"
    assert body["attachments"][0]["text"] == "RuntimeError: loss exploded"
    run = Store(tmp_path).run(logger.version)
    assert run.status == "failed" and [a["event"] for a in run.alerts] == ["failed"]


def test_the_monitored_metric_becoming_nan_alerts_once(tmp_path: Path, webhook: Webhook) -> None:
    class GoesNaN(tiny_model(PACKAGE).__class__):  # type: ignore[misc]
        def validation_step(self, batch: Any, index: int) -> None:
            value = torch.tensor(float("nan") if self.current_epoch >= 1 else 0.5)
            self.log("val/loss", value)

    callbacks = [lightning_callbacks().ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss")]
    logger = TrackerLogger(tmp_path / "runs", name="p", alerts=webhook.url, flush_interval=0.1)
    trainer(logger, PACKAGE, max_epochs=4, callbacks=callbacks, enable_checkpointing=True).fit(GoesNaN())
    nan_alerts = [b["lightning_tracker"] for b in webhook.wait_for(1) if b["lightning_tracker"]["event"] == "nan"]
    assert len(nan_alerts) == 1 and nan_alerts[0]["level"] == "error"
    assert nan_alerts[0]["title"] == "val/loss is nan"
    assert [a["event"] for a in Store(tmp_path / "runs").run(logger.version).alerts] == ["nan"]


def lightning_callbacks() -> Any:
    import importlib

    return importlib.import_module(f"{PACKAGE}.callbacks")


def test_the_run_end_alert_is_opt_in(tmp_path: Path, webhook: Webhook) -> None:
    logger = TrackerLogger(tmp_path, name="p", alerts=webhook.url, alert_on=("failed", "end"))
    trainer(logger, PACKAGE, max_epochs=1).fit(tiny_model(PACKAGE))
    (body,) = webhook.wait_for(1)
    assert (body["lightning_tracker"]["title"], body["lightning_tracker"]["status"]) == ("Run finished", "finished")


def test_a_failing_webhook_is_retried_with_backoff_and_counted_at_the_server(tmp_path: Path) -> None:
    hook = Webhook(statuses=(500, 503))
    try:
        logger = TrackerLogger(tmp_path, name="p", alerts=hook.url)
        trainer(logger, PACKAGE, max_epochs=1).fit(tiny_model(PACKAGE))
        logger.alert("Done", "evaluation finished")
        logger.finalize("success")  # waits at most 2 s; the sender goes on in the background
        assert hook.delivered.wait(60), "delivered in the end"
        assert hook.requests == 3 and [b["lightning_tracker"]["title"] for b in hook.bodies] == ["Done"]
    finally:
        hook.stop()


def test_a_hung_webhook_never_holds_training_or_finalize(tmp_path: Path) -> None:
    hook = Webhook(hold=True)
    try:

        class Chatty(tiny_model(PACKAGE).__class__):  # type: ignore[misc]
            def on_train_batch_end(self, *args: Any) -> None:
                self.logger.alert("step", f"step {self.global_step}")

        logger = TrackerLogger(tmp_path, name="p", alerts=hook.url, finalize_timeout=5.0)
        trainer(logger, PACKAGE, max_epochs=20).fit(Chatty())  # 160 alerts: more than the queue holds
        assert hook.held.is_set() and not hook.release.is_set()
        assert hook.requests == 1, "the first post is still held by the server: every other alert waited in memory"
        run = Store(tmp_path).run(logger.version)
        assert run.status == "finished" and len(run.alerts) == 160
    finally:
        hook.stop()


def test_bad_alert_arguments_fail_in_one_line_naming_the_argument(tmp_path: Path, monkeypatch: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^alerts='hooks\.slack\.…' is not a webhook URL; pass") as err:
        TrackerLogger(tmp_path, alerts="hooks.slack.com/services/T0/B0/secret")
    assert "secret" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InvalidArgumentError, match=r"^alert_on=\('failed', 'oom'\): 'oom' is not an alert event"):
        TrackerLogger(tmp_path, alert_on=("failed", "oom"))
    monkeypatch.setenv("LIGHTNING_TRACKER_ALERTS", "ftp://hooks.example.com/T0/secret")
    with pytest.raises(InvalidArgumentError, match=r"^\$LIGHTNING_TRACKER_ALERTS='ftp://hooks.example.com/\*\*\*'"):
        TrackerLogger(tmp_path)
    monkeypatch.delenv("LIGHTNING_TRACKER_ALERTS")
    logger = TrackerLogger(tmp_path, name="p")
    with pytest.raises(InvalidArgumentError, match=r"^level='critical' is not an alert level; use one of: info, warn"):
        logger.alert("t", "x", level="critical")


def test_the_environment_webhook_is_used_and_never_written(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTNING_TRACKER_ALERTS", webhook.url)
    logger = TrackerLogger(tmp_path / "runs", name="p")
    logger.log_hyperparams({"lr": 0.1})
    logger.alert("hello", f"posted to {webhook.url}")
    logger.finalize("success")
    assert [b["lightning_tracker"]["title"] for b in webhook.wait_for(1)] == ["hello"]
    assert webhook.token not in json.dumps(webhook.bodies)
    assert webhook.token.encode() not in _all_bytes(tmp_path)
