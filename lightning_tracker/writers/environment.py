"""What a run records about where it ran: host, command, versions, GPUs and git state.

Only an allow-list of environment variables is recorded, never the environment, and
command-line values that follow a secret-looking flag are redacted.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from typing import Any

from lightning_tracker.storage import redact_url
from lightning_tracker.writers.hyperparams import REDACTED, is_secret_key

__all__ = ["collect", "git_state", "redact_argv"]

ENV_ALLOW_LIST = (
    "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_ARRAY_TASK_ID",
    "SLURM_NNODES", "WORLD_SIZE", "NODE_RANK", "OMP_NUM_THREADS", "PL_GLOBAL_SEED",
    "CONDA_DEFAULT_ENV", "VIRTUAL_ENV", "PYTHONHASHSEED", "TORCHELASTIC_RUN_ID",
)  # fmt: skip
_GIT_TIMEOUT_S = 5.0
_MAX_DIFF_BYTES = 8 << 20


def redact_argv(argv: list[str]) -> list[str]:
    """Hides values of secret-looking flags in a command line.

    Example:
        >>> redact_argv(["train.py", "--api-key", "abc", "--lr=0.1", "--token=xyz", "db.password=pw"])
        ['train.py', '--api-key', '***REDACTED***', '--lr=0.1', '--token=***REDACTED***', 'db.password=***REDACTED***']
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, value = arg.partition("=")
        name = flag.lstrip("-+~").rsplit(".", 1)[-1]
        if eq and is_secret_key(name):
            out.append(f"{flag}={REDACTED}")
        elif eq and "://" in value:
            out.append(f"{flag}={redact_url(value)}")
        else:
            out.append(redact_url(arg))  # credentials in a URL, and secret-shaped values (AccountKey=, tokens)
            hide_next = flag.startswith("-") and not eq and is_secret_key(name)
    return out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace")


def git_state() -> tuple[dict[str, Any] | None, str]:
    """The git commit, branch, remote and dirty flag of the working directory, and the diff.

    Returns:
        ``(None, "")`` outside a repository, else ``(info, diff)`` where ``diff`` is
        ``git diff HEAD`` (tracked changes; capped at 8 MiB, the cap noted in ``info``).
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, ""
    branch = (_git("rev-parse", "--abbrev-ref", "HEAD") or "").strip()
    remote = (_git("config", "--get", "remote.origin.url") or "").strip()
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    diff_text = _git("diff", "HEAD", "--no-color") or ""
    info: dict[str, Any] = {
        "commit": commit.strip(),
        "branch": branch,
        "remote": redact_url(remote) if remote else None,
        "dirty": bool(status.strip()),
    }
    raw = diff_text.encode("utf-8")
    if len(raw) > _MAX_DIFF_BYTES:
        info["diff_truncated_from_bytes"] = len(raw)
        diff_text = raw[:_MAX_DIFF_BYTES].decode("utf-8", "ignore")
    return info, diff_text


def _gpus() -> list[dict[str, Any]]:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": props.name, "memory_bytes": int(props.total_memory)})
    return out


def collect() -> tuple[dict[str, Any], str]:
    """Everything ``meta.json`` holds, and the git diff (stored apart in ``git.diff``)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = None
    torch = sys.modules.get("torch")
    git, diff = git_state()
    meta = {
        "host": socket.gethostname(),
        "user": user,
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "command": redact_argv([sys.executable, *sys.argv]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "versions": {
            name: _version(name)
            for name in (
                "torch",
                "pytorch-lightning",
                "lightning",
                "tensorboardX",
                "fsspec",
                "numpy",
                "lightning-tracker",
            )
        },
        "cuda": getattr(getattr(torch, "version", None), "cuda", None),
        "cudnn": torch.backends.cudnn.version() if torch is not None and torch.backends.cudnn.is_available() else None,
        "gpus": _gpus(),
        "git": git,
        "env": {k: os.environ[k] for k in ENV_ALLOW_LIST if k in os.environ},
    }
    return meta, diff
