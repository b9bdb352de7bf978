"""The test session, for the tests and the package's doctests alike: nothing leaks out of it.

What would otherwise default into the user's home goes to one temporary folder, removed
when the session ends: the spool of runs on remote stores (``$LIGHTNING_TRACKER_SPOOL``,
else ``~/.cache/lightning_tracker/spool``), matplotlib's font cache (``$MPLCONFIGDIR``),
the notebook test's IPython profile (``$IPYTHONDIR``) and what Chromium, dconf and Jupyter
keep in the XDG folders (``~/.config``, ``~/.cache``, ``~/.local/share``). Child processes
the tests start inherit them.

Nor may a test write what a user makes in the repository (``lightning-tracker demo``'s
``runs/``, a ``report.html``, ``lightning-tracker hist``'s ``histograms-*/``): a test that
does fails, naming what it wrote. Tests write into ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

REPO = os.path.dirname(os.path.abspath(__file__))
# variable -> folder in the session's temporary folder
_HOME_DEFAULTS = {
    "LIGHTNING_TRACKER_SPOOL": "spool",  # our spool; tests that need their own pass spool_dir or set it
    "MPLCONFIGDIR": "matplotlib",  # its font cache
    "IPYTHONDIR": "ipython",  # the profile of the notebook test's kernel
    # the XDG folders: Chromium's profile and crash reports, dconf, Jupyter's runtime files, pip's cache
    "XDG_CONFIG_HOME": "config",
    "XDG_CACHE_HOME": "cache",
    "XDG_DATA_HOME": "data",
}
_session: dict[str, str | None] = {}  # the variables as they were, and the temporary folder


def pytest_configure(config: pytest.Config) -> None:
    root = tempfile.mkdtemp(prefix="lightning-tracker-tests-")
    _session["_root"] = root
    for name, folder in _HOME_DEFAULTS.items():
        _session[name] = os.environ.get(name)
        os.environ[name] = os.path.join(root, folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    root = _session.pop("_root", None)
    for name in _HOME_DEFAULTS:
        if name in _session:
            value = _session.pop(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def _user_outputs() -> dict[str, int]:
    """What a user's commands write into the repository, each with its modification time."""
    found: dict[str, int] = {}
    try:
        names = os.listdir(REPO)
    except OSError:
        return found
    for name in names:
        if name in ("runs", "report.html") or name.startswith("histograms-"):
            path = os.path.join(REPO, name)
            found[name] = os.stat(path).st_mtime_ns
            if name == "runs" and os.path.isdir(path):  # a new run or new files in a run change a folder's time
                for project in os.scandir(path):
                    found[f"runs/{project.name}"] = project.stat().st_mtime_ns
                    if project.is_dir():
                        for run in os.scandir(project.path):
                            found[f"runs/{project.name}/{run.name}"] = run.stat().st_mtime_ns
    return found


@pytest.fixture(autouse=True)
def _nothing_written_into_the_repository() -> Iterator[None]:
    before = _user_outputs()
    yield
    after = _user_outputs()
    written = sorted(name for name, mtime in after.items() if before.get(name) != mtime)
    if written:
        fix = "write into tmp_path instead (monkeypatch.chdir(tmp_path) for code that writes into the working folder)"
        pytest.fail(f"the test wrote into the repository {REPO}: {written}; {fix}", pytrace=False)
