"""The declared torch floor is the torch CI tests: GradientMonitor relies on ``torch._foreach_norm(..., dtype=)``
(missing from old releases) and on norms of lists with zero-size tensors (FSDP1 shards), which older CUDA
builds got wrong."""

from __future__ import annotations

import configparser
import os
import re

from tests.helpers import REPO


def test_the_torch_floor_is_the_version_ci_tests() -> None:
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    # torch comes with the logger's extras (the base install only reads): every one that names it
    sections = [config["options"]["install_requires"], *config["options.extras_require"].values()]
    requires = [line.strip() for section in sections for line in section.splitlines() if line.strip()]
    floors = {r for r in requires if re.match(r"torch\b", r)}
    with open(os.path.join(REPO, ".ci", "run")) as f:
        pinned = re.search(r"torch==([\d.]+)", f.read())
    assert pinned is not None, ".ci/run installs no pinned torch"
    assert floors == {f"torch>={pinned.group(1)}"}, f"setup.cfg declares {floors}; CI tests torch {pinned.group(1)}"
