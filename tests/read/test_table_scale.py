"""A runs table of many hyperparameters costs each column the same, however many there are.

Counted in operations, not seconds: pandas copies a frame's ``attrs`` into every column
taken from it, so what ``Store.table`` keeps there must not grow with the number of
hyperparameters (it did: ``runs`` took n² element copies for n hyperparameters).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from lightning_tracker import Store, TrackerLogger

PARAMS = 1000


def test_taking_every_column_of_a_runs_table_is_linear_in_the_hyperparameters(tmp_path: Any) -> None:
    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="p", version="r1", tensorboard=False)
    logger.log_hyperparams({f"h{i}": i for i in range(PARAMS)})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    table = Store(save_dir).table("p")
    assert len(table.attrs["scope"]["params"]) == PARAMS
    copies = 0
    code = copy.deepcopy.__code__

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal copies
        if event == "call" and frame.f_code is code:  # every element copy, however it is called
            copies += 1

    sys.setprofile(count)
    try:
        for column in table.columns:  # what the CLI's runs table does with each column
            table[column].astype(str)
    finally:
        sys.setprofile(None)
    assert copies <= 10 * len(table.columns), f"{copies} element copies for {len(table.columns)} columns"
