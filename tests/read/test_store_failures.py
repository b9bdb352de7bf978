"""The read API says a store's failure in the one line the command line prints, not a backend's traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port

_SCRIPT = """
import json, sys
from lightning_tracker import Store
Store("s3://bucket/exp", storage_options=json.loads(sys.argv[1])).runs("demo")
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return env | {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "NO_COLOR": "1"} | extra


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.strip().splitlines()[-1]


def test_a_store_without_credentials_fails_in_python_with_the_line_the_cli_prints(tmp_path: Path) -> None:
    options = json.dumps({"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    api = [sys.executable, "-c", _SCRIPT, options]
    cli = [sys.executable, "-m", "lightning_tracker.cli", "runs", "-s", "s3://bucket/exp", "-p", "demo"]
    cli += ["--storage-options", options]
    for env, kind in (
        (_env(), "StorageError"),
        (_env(AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s"), "StoreUnreachableError"),
    ):
        done = subprocess.run(api, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        said = subprocess.run(cli, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert done.returncode == 1 and said.returncode in (1, 3), (done.stderr, said.stderr)
        line = _last_line(done)
        assert line.startswith(f"lightning_tracker.exceptions.{kind}: "), done.stderr
        message = line.split(": ", 1)[1]
        assert said.stderr.strip().endswith(message), (message, said.stderr)  # the same cause and fix
        assert "botocore" not in done.stderr and "aiobotocore" not in done.stderr, "the backend's trace is not shown"
        assert done.stderr.count("\n") < 12, done.stderr
    assert "no credentials for s3://bucket/exp" in _last_line(
        subprocess.run(api, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    )
