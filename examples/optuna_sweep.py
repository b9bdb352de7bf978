"""An Optuna sweep recorded by lightning_tracker: python examples/optuna_sweep.py [SAVE_DIR]

Each trial is a run of the group "lr-width" with its parameters as hyperparameters; a trial
the pruner stops ends "pruned". Then: lightning-tracker runs -p sweep --group lr-width
"""

import sys

import optuna
import torch
from lightning.pytorch import LightningModule, Trainer
from optuna_integration import PyTorchLightningPruningCallback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_tracker import TrackerLogger

x = torch.randn(512, 8)
data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=64)


class Regressor(LightningModule):
    def __init__(self, lr: float, width: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 1))

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        loss = nn.functional.mse_loss(self.net(batch[0]), batch[1])
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        self.log("val/loss", nn.functional.mse_loss(self.net(batch[0]), batch[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def objective(trial: optuna.Trial) -> float:
    model = Regressor(trial.suggest_float("lr", 1e-3, 1e-1, log=True), trial.suggest_int("width", 4, 64, log=True))
    logger = TrackerLogger(sys.argv[1] if len(sys.argv) > 1 else "./runs", name="sweep", trial=trial)
    pruning = PyTorchLightningPruningCallback(trial, monitor="val/loss")
    trainer = Trainer(max_epochs=5, logger=logger, callbacks=[pruning], enable_progress_bar=False)
    trainer.fit(model, data, data)
    return trainer.callback_metrics["val/loss"].item()


if __name__ == "__main__":
    study = optuna.create_study(study_name="lr-width", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    study.optimize(objective, n_trials=8)
    print("best:", study.best_params, "in run", study.best_trial.user_attrs["lightning_tracker_run"]["id"])
