"""Alerts: a run's own record of them (``alerts.json``) and their delivery to a webhook.

``logger.alert(title, text, level)`` and the automatic alerts (``fit`` raised, the watched
metric became NaN or ±inf, the run ended) append to memory on the caller's thread:
:class:`AlertProducer` keeps the record, which the flusher writes as ``alerts.json``, and
hands a Slack-compatible body to :class:`WebhookSender`. That one thread posts them, at
most one every ``min_interval_s`` (Slack's rate), retrying a refused or failed post with
exponential back-off; its queue is bounded (an alert beyond it is counted and left out),
so training never waits for, nor fails because of, the webhook. ``close`` waits a short,
bounded time for what is queued; the thread runs only while there is something to send.

The webhook URL is a secret (a Slack URL carries its token in the path): it lives in memory
only, its ``repr`` and every message show the host alone.

Example:
    >>> route = AlertRoute.build("https://hooks.example.com/T0/B0/s3cret", alert_on=("failed",))
    >>> route
    AlertRoute(url='https://hooks.example.com/***', link=None, events=('failed',), metric=None)
    >>> AlertRoute.build(None, alert_on=("nan",), environ_url=None).url is None
    True
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightning_tracker._settings import ALERTS, ALERTS_LINK
from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import new_alerts
from lightning_tracker.format.layout import ALERTS_FILE
from lightning_tracker.format.secrets import redact_text
from lightning_tracker.storage import atomic_write

__all__ = ["ALERT_EVENTS", "ALERT_LEVELS", "AlertProducer", "AlertRoute", "WebhookSender"]

log = logging.getLogger(__name__)

ALERT_LEVELS = ("info", "warn", "error")
"""What ``logger.alert(level=...)`` takes, as W&B's ``AlertLevel``."""
ALERT_EVENTS = ("failed", "nan", "end")
"""The automatic alerts: ``fit`` raised; the watched metric became NaN or ±inf; the run ended (any status)."""
_DEFAULT_EVENTS = ("failed", "nan")
_KEPT = 1000  # alerts kept in alerts.json: the newest
_COLORS = {"info": "#1a7f37", "warn": "#9a6700", "error": "#cf222e"}


def _host_only(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/***"


def check_webhook(url: Any, arg: str = "alerts") -> str:
    """``url`` if it is an ``http(s)://host/...`` URL; raises naming ``arg`` (the value shown by its host only)."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"{arg}={url!r} is not a webhook URL; pass 'https://hooks.slack.com/services/...'")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url.strip()):
        shown = repr(_host_only(url) if parts.hostname else url[:12] + "…" if len(url) > 12 else url)
        raise InvalidArgumentError(
            f"{arg}={shown} is not a webhook URL; pass an http(s) URL such as 'https://hooks.slack.com/services/...'"
        )
    return url.strip()


def check_level(level: Any) -> str:
    """``level`` if it is one of :data:`ALERT_LEVELS`; raises naming it otherwise."""
    if level not in ALERT_LEVELS:
        raise InvalidArgumentError(f"level={level!r} is not an alert level; use one of: {', '.join(ALERT_LEVELS)}")
    return str(level)


@dataclass(frozen=True)
class AlertRoute:
    """Where alerts go and which automatic ones are raised; checked once, at construction.

    Attributes:
        url: the webhook (None: alerts are only recorded in the run). Never written anywhere.
        link: a link to the run (``$LIGHTNING_TRACKER_ALERTS_LINK`` with ``{project}`` and
            ``{run}`` filled in), or None.
        events: the automatic alerts raised, from :data:`ALERT_EVENTS`.
        metric: the metric watched for NaN or ±inf (None: the checkpoint's monitor).
        prefix: the logger's metric prefix (``"<prefix>-"``), which the stored keys carry.
    """

    url: str | None = field(repr=False)
    link: str | None = None
    events: tuple[str, ...] = ()
    metric: str | None = None
    prefix: str = ""

    def __repr__(self) -> str:
        shown = None if self.url is None else _host_only(self.url)
        return f"AlertRoute(url={shown!r}, link={self.link!r}, events={self.events!r}, metric={self.metric!r})"

    @classmethod
    def build(
        cls,
        alerts: str | None,
        alert_on: str | Sequence[str] = _DEFAULT_EVENTS,
        alert_metric: str | None = None,
        environ_url: str | None | bool = True,
    ) -> AlertRoute:
        """Checks the logger's arguments; ``alerts=None`` takes ``$LIGHTNING_TRACKER_ALERTS``.

        Raises:
            InvalidArgumentError: a bad URL, event or metric name, in one line naming it.
        """
        if alerts is None:
            env = ALERTS.get() if environ_url is True else environ_url
            url = None if not env else check_webhook(env, f"${ALERTS.name}")
        else:
            url = check_webhook(alerts)
        events = (alert_on,) if isinstance(alert_on, str) else tuple(alert_on)
        unknown = [e for e in events if e not in ALERT_EVENTS]
        if unknown:
            raise InvalidArgumentError(
                f"alert_on={alert_on!r}: {unknown[0]!r} is not an alert event; use any of: {', '.join(ALERT_EVENTS)}"
            )
        if alert_metric is not None and (not isinstance(alert_metric, str) or not alert_metric):
            raise InvalidArgumentError(f"alert_metric={alert_metric!r} must be a metric name such as 'val/loss'")
        return cls(url, ALERTS_LINK.get(), events, alert_metric)


class WebhookSender:
    """Posts JSON bodies to a webhook from one daemon thread: rate-limited, retried, bounded.

    Args:
        url: the webhook (kept in memory only).
        max_queue: bodies waiting at most; one beyond is left out and counted in ``dropped``.
        min_interval_s: the least time between two posts.
        retries: further attempts after a failed post (a 5xx or 429 answer, no answer).
        backoff_s: the first wait before a retry; it doubles each time (a ``Retry-After`` is
            honoured up to 30 s).
        timeout_s: one request's timeout.
    """

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 100,
        min_interval_s: float = 1.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
    ) -> None:
        self._url = url
        self._queue: collections.deque[bytes] = collections.deque()
        self._max_queue = max_queue
        self._min_interval_s = min_interval_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._last_post = -math.inf
        self.sent = 0
        self.failed = 0  # bodies given up after every retry
        self.dropped = 0  # bodies left out: the queue was full, or close() came first

    def __repr__(self) -> str:
        return f"WebhookSender({_host_only(self._url)!r}, sent={self.sent}, failed={self.failed})"

    def send(self, body: dict[str, Any]) -> bool:
        """Queues ``body``; never waits. Returns False when the queue is full (the body is left out)."""
        data = json.dumps(body, allow_nan=False, default=str).encode("utf-8")
        with self._cond:
            if len(self._queue) >= self._max_queue:
                self.dropped += 1
                return False
            self._queue.append(data)
            if self._thread is None:  # runs while there is something to send: an idle run has no thread
                self._thread = threading.Thread(target=self._serve, name="lightning-tracker-alerts", daemon=True)
                self._thread.start()
        return True

    def close(self, timeout: float) -> None:
        """Waits at most ``timeout`` seconds for what is queued; what is left goes on in the background
        while the process lives (a daemon thread: the interpreter's exit does not wait for it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._thread is not None and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            waiting = len(self._queue) + (self._thread is not None)
        if waiting or self.dropped or self.failed:
            log.warning(
                "alerts to %s: %d delivered, %d failed after retries, %d left out (queue full), %d still being sent",
                _host_only(self._url),
                self.sent,
                self.failed,
                self.dropped,
                waiting,
            )

    def _serve(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._thread = None
                    self._cond.notify_all()
                    return
                data = self._queue.popleft()
            try:
                delivered = self._post_with_retries(data)
            except Exception:
                log.exception("lightning_tracker: an alert could not be sent")
                delivered = False
            with self._cond:
                if delivered:
                    self.sent += 1
                else:
                    self.failed += 1

    def _post_with_retries(self, data: bytes) -> bool:
        delay = self._backoff_s
        for attempt in range(self._retries + 1):
            time.sleep(max(0.0, self._last_post + self._min_interval_s - time.monotonic()))
            self._last_post = time.monotonic()
            retry_after = self._post(data)
            if retry_after is None:
                return True
            if retry_after < 0 or attempt == self._retries:
                return False  # refused for good (a 4xx other than 429), or out of retries
            time.sleep(max(delay, min(retry_after, 30.0)))
            delay *= 2
        return False

    def _post(self, data: bytes) -> float | None:
        """One POST: None when delivered, seconds to wait before a retry, or -1 when not to retry."""
        request = urllib.request.Request(
            self._url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as answer:
                answer.read()
            return None
        except urllib.error.HTTPError as err:
            err.close()
            if err.code == 429 or err.code >= 500:
                try:
                    return float(err.headers.get("Retry-After") or 0)
                except ValueError:
                    return 0.0
            log.warning("the alert webhook %s refused an alert: HTTP %d", _host_only(self._url), err.code)
            return -1.0
        except (OSError, ValueError):  # no answer, reset, timed out
            return 0.0


class AlertProducer:
    """One run's alerts: the record written as ``alerts.json`` and the delivery to the webhook.

    Args:
        local_dir: the run's local folder (an ``alerts.json`` already there is continued).
        route: where alerts go and which automatic ones are raised.
        describe: returns the run's ``project``, ``id``, ``name`` and ``status`` now.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> route = AlertRoute.build(None, environ_url=None)
        >>> run = {"project": "p", "id": "r1", "name": "n", "status": "running"}
        >>> alerts = AlertProducer(folder, route, lambda: run)
        >>> alerts.alert("Loss spiked", "val/loss is 9.1", "warn")
        >>> alerts.write()
        >>> [(a["title"], a["level"]) for a in json.load(open(f"{folder}/alerts.json"))["alerts"]]
        [('Loss spiked', 'warn')]
    """

    def __init__(self, local_dir: str, route: AlertRoute, describe: Callable[[], dict[str, Any]]) -> None:
        self._path = os.path.join(local_dir, ALERTS_FILE)
        self.route = route
        self._describe = describe
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = self._load()  # a resumed run's, brought into the spool
        self._dirty = False
        self._bad: set[str] = set()  # watched metrics now NaN or ±inf: alerted once until finite again
        self.sender = WebhookSender(route.url) if route.url else None

    def _load(self) -> list[dict[str, Any]]:
        try:
            with open(self._path, "rb") as f:
                return _records(f.read())
        except OSError:
            return []

    def merge(self, stored: bytes | None) -> None:
        """Puts the alerts of a stored ``alerts.json`` (earlier sessions', from a store that answered
        after training started) before this session's, so the next write keeps both."""
        if stored is None:
            return
        earlier = _records(stored)
        with self._lock:
            mine = [r for r in self._records if r not in earlier]
            self._records = [*earlier, *mine][-_KEPT:]
            self._dirty = True

    def alert(
        self,
        title: str,
        text: str,
        level: str = "info",
        event: str = "user",
        step: int | None = None,
        status: str | None = None,
    ) -> None:
        """Records one alert and queues its delivery; touches memory only (``status``: the run's, if not as stored)."""
        title, text = self._redact(title), self._redact(text)  # an exception's text may hold a secret
        run = self._describe()
        if status is not None:
            run = {**run, "status": status}
        record = {"time": time.time(), "level": level, "title": title, "text": text, "event": event, "step": step}
        with self._lock:
            self._records = [*self._records[-(_KEPT - 1) :], record]
            self._dirty = True
        if self.sender is not None:
            self.sender.send(self._body(record, run))

    def _redact(self, value: str) -> str:
        if self.route.url and self.route.url in value:
            value = value.replace(self.route.url, _host_only(self.route.url))
        return redact_text(value)

    def _body(self, record: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
        link = None
        if self.route.link:
            link = self.route.link.replace("{project}", run["project"]).replace("{run}", run["id"])
        where = f"{run['project']}/{run['name']} ({run['id']})"
        summary = f"[{record['level']}] {record['title']}: {where} is {run['status']}"
        fields = [
            {"title": "project", "value": run["project"], "short": True},
            {"title": "run", "value": f"{run['name']} ({run['id']})", "short": True},
            {"title": "status", "value": run["status"], "short": True},
            {"title": "level", "value": record["level"], "short": True},
        ]
        attachment = {
            "color": _COLORS[record["level"]],
            "title": record["title"],
            "text": record["text"],
            "fields": fields,
            "ts": int(record["time"]),
        }
        if link:
            attachment["title_link"] = link
        return {
            "text": f"{summary}\n{record['text']}" + (f"\n{link}" if link else ""),
            "attachments": [attachment],
            "lightning_tracker": {**{k: run[k] for k in ("project", "id", "name", "status")}, **record, "link": link},
        }

    def watch(self, batch: Iterable[tuple[Any, ...]], monitor: str | None) -> None:
        """Alerts once when the watched metric's newest value in ``batch`` is NaN or ±inf (flusher thread).

        The watched metric is the route's ``metric``, else ``monitor`` (the checkpoint's), as
        logged or with the logger's prefix; the values are floats already (the flusher read them).
        """
        name = self.route.metric or monitor
        if "nan" not in self.route.events or not name:
            return
        keys = {name, f"{self.route.prefix}{name}"}
        last: tuple[int, float] | None = None
        for key, step, _, value in batch:
            if key in keys and (last is None or step >= last[0]):
                last = (step, value)
        if last is None:
            return
        step, value = last
        if math.isfinite(value):
            self._bad.discard(name)
        elif name not in self._bad:
            self._bad.add(name)
            self.alert(f"{name} is {value}", f"{name} became {value} at step {step}", "error", "nan", step)

    def on_end(self, status: str, reason: str | None) -> None:
        """The automatic alert of a run that ends with ``status``: ``failed`` if asked for, else ``end``."""
        if status == "failed" and "failed" in self.route.events:
            self.alert("Run failed", reason or "the run failed", "error", "failed", status=status)
        elif "end" in self.route.events:
            level = "info" if status == "finished" else "warn" if status == "pruned" else "error"
            self.alert(f"Run {status}", reason or f"the run ended {status}", level, "end", status=status)

    def write(self) -> None:
        """Writes ``alerts.json`` when an alert came since the last write (flusher thread)."""
        with self._lock:
            if not self._dirty:
                return
            data = dumps(new_alerts(list(self._records)))
            self._dirty = False
        atomic_write(self._path, data)

    def close(self, timeout: float) -> None:
        """Waits at most ``timeout`` seconds for queued deliveries."""
        if self.sender is not None:
            self.sender.close(timeout)


def _records(data: bytes) -> list[dict[str, Any]]:
    """The alert records of an ``alerts.json``'s bytes (none from a damaged one)."""
    try:
        records = json.loads(data).get("alerts")
    except (ValueError, AttributeError):
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
