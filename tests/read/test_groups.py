"""Runs in groups (``Store.table(project, group_by=...)``): counts, mean ± std, the best run."""

from __future__ import annotations

import math
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.exceptions import InvalidArgumentError
from tests.helpers import lightning, tiny_model, trainer


def seeded_sweep(save_dir: str, options: Any = None, *, monitor: bool = True) -> dict[str, str]:
    """Two configurations (``lr``) × three seeds in groups ``lr=…``: ``{run name: run id}``.

    ``val/acc`` is ``0.5 + 10·lr + seed/100`` (so seed 2 is the best of each group) and
    ``train/loss`` its complement; each run's ``ModelCheckpoint`` monitors ``val/acc`` (max).
    """
    ids = {}
    for lr in (0.01, 0.02):
        for seed in range(3):
            logger = TrackerLogger(
                save_dir,
                name="sweep",
                run_name=f"lr{lr}-s{seed}",
                group=f"lr={lr}",
                storage_options=options,
                tensorboard=False,
            )
            logger.log_hyperparams({"lr": lr, "seed": seed, "optimizer": "sgd"})
            acc = 0.5 + 10 * lr + seed / 100
            for step in range(3):
                logger.log_metrics(
                    {"train/loss": 1 - acc + (2 - step) / 10, "val/acc": acc - (2 - step) / 10}, step=step
                )
            if monitor:
                checkpoint = lightning().callbacks.ModelCheckpoint(monitor="val/acc", mode="max")
                logger.after_save_checkpoint(checkpoint)
            logger.finalize("success")
            ids[f"lr{lr}-s{seed}"] = logger.version
    return ids


def test_a_grouped_table_has_one_row_per_group_with_mean_std_and_best_run(store_target: tuple[str, Any]) -> None:
    save_dir, options = store_target
    ids = seeded_sweep(save_dir, options)
    grouped = Store(save_dir, options).table("sweep", group_by="group")
    assert list(grouped.columns[:4]) == ["group", "runs", "best_id", "run_ids"]
    assert {"mean.val/acc", "std.val/acc", "mean.train/loss", "std.train/loss"} <= set(grouped.columns)
    assert grouped["group"].tolist() == ["lr=0.01", "lr=0.02"] and grouped["runs"].tolist() == [3, 3]
    assert grouped["best_id"].tolist() == [ids["lr0.01-s2"], ids["lr0.02-s2"]], "monitored val/acc, mode max"
    assert grouped["run_ids"][0] == tuple(ids[f"lr0.01-s{s}"] for s in range(3))
    assert grouped["mean.val/acc"].tolist() == pytest.approx([0.61, 0.71])
    assert grouped["std.val/acc"].tolist() == pytest.approx([0.01, 0.01])  # sample std of .60, .61, .62
    assert grouped.attrs["best"] == {"column": "summary.val/acc", "ascending": False, "why": "monitored"}


def test_group_by_takes_keys_as_sort_does_and_best_as_a_sort_key(tmp_path: Any) -> None:
    ids = seeded_sweep(str(tmp_path))
    store = Store(str(tmp_path))
    by_lr = store.table("sweep", group_by="lr", best="train/loss")  # a bare key: the hyperparameter
    assert by_lr["config.lr"].tolist() == [0.01, 0.02]
    assert by_lr["best_id"].tolist() == [ids["lr0.01-s2"], ids["lr0.02-s2"]], "lowest train/loss"
    two = store.table("sweep", group_by=["optimizer", "seed"], best="-seed")
    assert two[["config.optimizer", "config.seed", "runs"]].values.tolist() == [["sgd", s, 2] for s in range(3)]
    filtered = store.table("sweep", group_by="group", where="seed>=1")
    assert filtered["runs"].tolist() == [2, 2], "where filters the runs before they are grouped"


def test_without_a_monitored_metric_or_best_key_there_is_no_best_run(tmp_path: Any) -> None:
    seeded_sweep(str(tmp_path), monitor=False)
    grouped = Store(str(tmp_path)).table("sweep", group_by="group")
    assert grouped["best_id"].tolist() == [None, None] and grouped.attrs["best"] is None


def test_a_group_of_one_run_has_no_spread_and_a_missing_key_is_a_group(tmp_path: Any) -> None:
    seeded_sweep(str(tmp_path))
    lone = TrackerLogger(str(tmp_path), name="sweep", run_name="lone", tensorboard=False)
    lone.log_metrics({"val/acc": 0.3}, step=0)
    lone.finalize("success")
    grouped = Store(str(tmp_path)).table("sweep", group_by="group")
    assert grouped["group"].tolist() == ["lr=0.01", "lr=0.02", None], "the runs without a group come last"
    last = grouped.iloc[2]
    assert last["runs"] == 1 and last["mean.val/acc"] == pytest.approx(0.3) and math.isnan(last["std.val/acc"])
    assert math.isnan(last["mean.train/loss"]), "a metric no run of the group has"


def test_group_by_a_key_no_run_has_says_which_keys_exist(tmp_path: Any) -> None:
    seeded_sweep(str(tmp_path))
    with pytest.raises(InvalidArgumentError, match=r"group_by='sed' names no field.*did you mean seed"):
        Store(str(tmp_path)).table("sweep", group_by="sed")
    with pytest.raises(InvalidArgumentError, match=r"group_by='' names no key"):
        Store(str(tmp_path)).table("sweep", group_by="")
    with pytest.raises(InvalidArgumentError, match=r"best='-val/acc' judges the runs of a group: pass group_by"):
        Store(str(tmp_path)).table("sweep", best="-val/acc")


def test_groups_of_real_trainer_runs_take_the_monitor_of_their_checkpoint(tmp_path: Any) -> None:
    ids = []
    for seed in range(2):
        logger = TrackerLogger(str(tmp_path), name="fit", group="tiny", tensorboard=False)
        checkpoint = lightning().callbacks.ModelCheckpoint(dirpath=str(tmp_path / f"ck{seed}"), monitor="val/loss")
        fit = trainer(
            logger, max_epochs=1, limit_train_batches=2 + seed, callbacks=[checkpoint], enable_checkpointing=True
        )
        fit.fit(tiny_model(lr=0.01 * (seed + 1)))
        ids.append(logger.version)
    table = Store(str(tmp_path)).table("fit")
    grouped = Store(str(tmp_path)).table("fit", group_by="group")
    assert grouped["runs"].tolist() == [2]
    assert grouped["mean.val/loss"][0] == pytest.approx(table["summary.val/loss"].mean())
    best = table.loc[table["summary.val/loss"].idxmin(), "id"]
    assert grouped["best_id"][0] == best and grouped.attrs["best"]["ascending"] is True, "val/loss, mode min"
