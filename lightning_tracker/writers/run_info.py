"""The run's own documents: ``run.json`` (identity, status, heartbeat, summary) and ``config.json``.

The caller's thread changes them in memory (:meth:`RunInfo.log_config`,
:meth:`RunInfo.set_info`); the flusher writes them into the run's local folder, after the
chunks they describe, and the mirror commits them to the store in that order.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from lightning_tracker.format.codec import dumps
from lightning_tracker.format.documents import new_config, new_meta, new_run, run_params, writer_identity
from lightning_tracker.format.layout import CONFIG_FILE, GIT_DIFF_FILE, META_FILE, RUN_FILE
from lightning_tracker.format.validate import RunDocument, parse_document, parse_run
from lightning_tracker.storage import atomic_write
from lightning_tracker.writers import environment, hyperparams

__all__ = ["RunInfo"]


def _seconds(value: Any, default: float) -> float:
    """A session's start as a number (a stored one may be damaged: the run's start then)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


_KEPT_ON_RESUME = ("start_time", "sessions", "name", "group", "notes", "monitor")


class RunInfo:
    """``run.json`` and ``config.json`` of one run, in memory, written by the flusher.

    Args:
        run_id: the run id.
        project: the project folder.
        name: the name given, or None (on resume: keep the stored one).
        default_name: the name of a new run when ``name`` is None.
        group: optional group.
        tags: labels.
        notes: free text.
        heartbeat_interval_s: the writer's flush interval.
        url: where the run lives, without credentials.

    Example:
        >>> import tempfile
        >>> info = RunInfo("r1", "p", None, "calm-otter-1", None, ["a"], None, 2.0, "/x")
        >>> info.log_config({"lr": 0.1}, step=0)
        True
        >>> info.log_config({"lr": 0.2}, step=5)
        True
        >>> folder = tempfile.mkdtemp()
        >>> info.write(folder, summary={})
        >>> info.config["history"][0]["changes"], sorted(os.listdir(folder))
        ({'lr': [0.1, 0.2]}, ['config.json', 'run.json'])
    """

    def __init__(
        self,
        run_id: str,
        project: str,
        name: str | None,
        default_name: str,
        group: str | None,
        tags: list[str],
        notes: str | None,
        heartbeat_interval_s: float,
        url: str,
    ) -> None:
        self.doc = new_run(
            run_id,
            project,
            name or default_name,
            group=group,
            tags=tags,
            notes=notes,
            heartbeat_interval_s=heartbeat_interval_s,
            url=url,
        )
        self.config: dict[str, Any] = new_config()
        # what this session says itself: a stored value never replaces it (the monitor once a callback saved)
        self.explicit: dict[str, Any] = {"name": name, "group": group, "notes": notes, "monitor": None}
        self.lock = threading.RLock()
        self._config_dirty = True
        self._warned: set[str] = set()
        self._params: dict[str, Any] = {}  # run.json's capped params, computed from the flat dict _params_of
        self._params_of: dict[str, Any] | None = None

    def adopt(self, stored: RunDocument | dict[str, Any], config: dict[str, Any] | None) -> None:
        """Continues a stored run: its start, sessions and (unless given now) name, group and notes.

        Args:
            stored: the stored ``run.json``, checked (a plain document is checked here, by
                :func:`~lightning_tracker.format.validate.parse_run`, so a legacy form such
                as ``tags`` written as one string is read as the reader reads it).
            config: the stored ``config.json``, checked, or None.

        Example:
            >>> info = RunInfo("r1", "p", None, "calm-otter-1", None, ["new"], None, 2.0, "/x")
            >>> info.adopt({"format_version": 3, "status": "finished", "tags": "baseline"}, None)
            >>> info.doc["tags"]
            ['baseline', 'new']
        """
        run = stored if isinstance(stored, RunDocument) else parse_run(stored)
        for key in _KEPT_ON_RESUME:
            if run.doc.get(key) is not None and self.explicit.get(key) is None:
                self.doc[key] = run.doc[key]
        self.doc["tags"] = sorted(set(run.tags) | set(self.doc["tags"]))
        if config is not None:
            self.config = {**new_config(), **config}

    def start_session(self, local_dir: str, session: int, writer_key: str, first: bool) -> None:
        """Records a new session (who, where, which command and commit); the first one
        also writes ``meta.json`` and, in a dirty work tree, ``git.diff``."""
        meta, diff = environment.collect()
        with self.lock:
            self.doc["sessions"].append(
                {
                    "index": session,
                    "writer_key": writer_key,
                    "start_time": time.time(),
                    **writer_identity(),
                    "command": meta["command"],
                    "git_commit": (meta["git"] or {}).get("commit"),
                }
            )
        if first:
            atomic_write(os.path.join(local_dir, META_FILE), dumps(new_meta(meta)))
            if diff:
                atomic_write(os.path.join(local_dir, GIT_DIFF_FILE), diff.encode("utf-8"))

    def merge(self, stored: dict[str, Any], config: bytes | None) -> None:
        """Merges a stored copy that arrived after this session started (a late answer of the
        store): its earlier sessions, tags and start, and its hyperparameters under ours."""
        run = parse_run(stored)
        with self.lock:
            ours = self.doc["sessions"]
            known = {(s.get("index"), s.get("start_time")) for s in ours}
            earlier = [s for s in run.sessions if (s.get("index"), s.get("start_time")) not in known]
            self.doc["sessions"] = earlier + ours
            self.adopt({k: v for k, v in run.doc.items() if k != "sessions"}, None)
            starts = [_seconds(s.get("start_time"), self.doc["start_time"]) for s in self.doc["sessions"]]
            self.doc["start_time"] = min(starts)
            stored_config = parse_document(CONFIG_FILE, config) if config is not None else None
            if stored_config is not None and "nested" in stored_config.doc:
                nested = hyperparams.merge(stored_config.doc["nested"], self.config["nested"])
                history = list(stored_config.doc.get("history") or []) + self.config["history"]
                self.config.update(nested=nested, flat=hyperparams.flatten(nested), history=history)
                self._config_dirty = True

    def log_config(self, params: Any, step: int) -> bool:
        """Merges hyperparameters; a changed value is recorded in the history. Returns whether anything changed."""
        plain = hyperparams.to_plain(params, self._warned)
        if not isinstance(plain, dict):
            plain = {"value": plain}
        with self.lock:
            nested = hyperparams.merge(self.config["nested"], plain)
            flat = hyperparams.flatten(nested)
            changes = hyperparams.diff_flat(self.config["flat"], flat)
            if not changes:
                return False
            if self.config["flat"]:
                self.config["history"].append({"time": time.time(), "step": step, "changes": changes})
            self.config["nested"], self.config["flat"] = nested, flat
            self._config_dirty = True
        return True

    def record_monitor(self, callback: Any) -> None:
        """Records the metric and mode of the first ``ModelCheckpoint`` that monitors one, once per session.

        Example:
            >>> from types import SimpleNamespace
            >>> info = RunInfo("r1", "p", None, "n", None, [], None, 2.0, "/x")
            >>> info.record_monitor(SimpleNamespace(monitor=None, mode="min"))  # saves without a metric
            >>> info.record_monitor(SimpleNamespace(monitor="val/loss", mode="min"))
            >>> info.record_monitor(SimpleNamespace(monitor="val/acc", mode="max"))  # a second callback
            >>> info.doc["monitor"]
            {'name': 'val/loss', 'mode': 'min'}
        """
        name, mode = getattr(callback, "monitor", None), getattr(callback, "mode", None)
        if self.explicit["monitor"] is None and isinstance(name, str) and name:
            with self.lock:
                self.explicit["monitor"] = self.doc["monitor"] = {"name": name, "mode": str(mode) if mode else None}

    def record_monitors(self, trainer: Any) -> None:
        """Records what ``trainer``'s first monitoring ``ModelCheckpoint`` watches, else its first ``EarlyStopping``."""
        callbacks = [*getattr(trainer, "checkpoint_callbacks", []), *getattr(trainer, "early_stopping_callbacks", [])]
        for callback in callbacks:  # the first that monitors a metric is kept
            self.record_monitor(callback)

    def set_info(self, **fields: Any) -> None:
        """Updates run fields such as ``tags``, ``notes`` or ``group``."""
        with self.lock:
            self.doc.update(fields)

    def write(self, local_dir: str, summary: dict[str, Any]) -> None:
        """Writes ``config.json`` when it changed, then ``run.json`` with a new heartbeat."""
        with self.lock:
            if self._config_dirty:
                atomic_write(os.path.join(local_dir, CONFIG_FILE), dumps(self.config))
                self._config_dirty = False
            # the summary and the flat hyperparameters ride in run.json: one read per run for a runs table
            flat = self.config["flat"]
            if self._params_of is not flat:  # a change assigns a new flat dict
                self._params, self._params_of = run_params(flat), flat
            now = time.time()
            self.doc.update(heartbeat=now, params=self._params, summary=summary)
            if self.doc["sessions"]:  # this session's last write: a duration counts sessions, not the gaps
                self.doc["sessions"][-1]["heartbeat"] = now
            data = dumps(self.doc)
        atomic_write(os.path.join(local_dir, RUN_FILE), data)
