"""A Hydra training script as a user writes one: the logger is built inside ``@hydra.main``
and nothing is passed to it about Hydra (tests/integration/test_hydra.py runs it)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lightning_tracker import TrackerLogger
from tests.helpers import tiny_model, trainer


@hydra.main(version_base=None, config_path="hydra_conf", config_name="train")
def main(cfg: DictConfig) -> None:
    logger = TrackerLogger(cfg.save_dir, name="hydra")
    trainer(logger, max_epochs=cfg.trainer.max_epochs).fit(tiny_model(lr=cfg.model.lr, width=cfg.model.width))
    print("RUN", logger.version, flush=True)


if __name__ == "__main__":
    main()
