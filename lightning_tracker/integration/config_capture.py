"""The configuration a launcher composed, recorded without the user calling anything.

- **LightningCLI** hands its parsed configuration (``model``, ``data``, ``trainer``,
  ``optimizer``, ``lr_scheduler`` ... of the subcommand) to the ``SaveConfigCallback`` it adds
  to the Trainer; :func:`cli_config` reads it from there when ``fit`` starts.
- **Hydra** runs the task function with its composed config and saves it as
  ``<output dir>/<hydra.output_subdir>/config.yaml`` first; :func:`hydra_launch` reads it
  and the run's place in the launch (a multirun's jobs share one group: the sweep folder)
  while the logger is built inside ``@hydra.main``.

Both only look at packages already imported (a script that uses neither pays nothing).
Secrets are redacted as for every hyperparameter (by key and by value shape); on top of
that, the logger's own ``storage_options`` and webhook, which the CLI configuration
repeats, are replaced by ``***REDACTED***``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from lightning_tracker.format.secrets import REDACTED

__all__ = ["HydraLaunch", "cli_config", "hydra_launch"]

log = logging.getLogger(__name__)

_CLI_MODULES = ("lightning.pytorch.cli", "pytorch_lightning.cli")
_LOGGER_SECRETS = ("storage_options", "alerts")  # TrackerLogger arguments never recorded


def _redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with the logger's own secret arguments and the strings ``secrets`` replaced."""
    hidden = [s for s in secrets if s]
    if isinstance(value, dict):
        return {
            k: REDACTED if k in _LOGGER_SECRETS and v not in (None, {}) else _redact(v, hidden)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v, hidden) for v in value]
    if isinstance(value, str):
        for secret in hidden:
            value = value.replace(secret, REDACTED)
    return value


def cli_config(trainer: Any, secrets: Iterable[str] = ()) -> dict[str, Any] | None:
    """The configuration LightningCLI parsed for this Trainer, as plain data; None without one.

    Args:
        trainer: the Trainer ``fit`` runs.
        secrets: strings never to record (the logger's webhook URL).
    """
    classes = tuple(module.SaveConfigCallback for name in _CLI_MODULES if (module := sys.modules.get(name)) is not None)
    if not classes:
        return None
    callback: Any = next((c for c in getattr(trainer, "callbacks", []) if isinstance(c, classes)), None)
    config = getattr(callback, "config", None)
    if config is None:
        return None
    try:
        # the parser's own dump: class paths and paths as text, the form the user wrote
        data = json.loads(callback.parser.dump(config, format="json", skip_none=False, skip_validation=True))
    except Exception as err:  # noqa: BLE001 - a config that cannot be dumped must not stop training
        log.warning(
            "lightning_tracker: the LightningCLI configuration is not recorded (%s: %s)", type(err).__name__, err
        )
        return None
    data.pop("config", None)  # the config files' paths: their content is what follows
    return _redact(data, secrets)


class HydraLaunch:
    """What a Hydra launch says about the job the logger runs in.

    Attributes:
        group: the multirun's sweep folder (shared by its jobs); None for a single run.
        config: the composed config (an OmegaConf container, resolved when recorded), or None.
        job: ``{"name", "num", "overrides"}``: the job's place in the launch.
    """

    def __init__(self, group: str | None, config: Any, job: dict[str, Any]) -> None:
        self.group = group
        self.config = config
        self.job = job

    def hyperparameters(self, secrets: Iterable[str] = ()) -> Any:
        """The composed config and ``hydra: {name, num, overrides}``, as the logger records them.

        An OmegaConf container, interpolations kept: the hyperparameter filter resolves them
        value by value (an ``${oc.env:...}`` is never resolved into a secret).
        """
        from omegaconf import OmegaConf

        config: dict[str, Any] = {}
        if self.config is not None:
            try:
                config = OmegaConf.to_container(self.config, resolve=False)  # type: ignore[assignment]
            except Exception as err:  # noqa: BLE001 - an odd config must not stop training
                log.warning("lightning_tracker: the Hydra config is not recorded (%s: %s)", type(err).__name__, err)
        return OmegaConf.create(_redact({**config, "hydra": self.job}, secrets))


def hydra_launch() -> HydraLaunch | None:
    """The Hydra job this process runs (inside ``@hydra.main``), or None outside one."""
    if "hydra" not in sys.modules:
        return None
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    multirun = str(getattr(hydra, "mode", "")).endswith("MULTIRUN")
    group = str(hydra.sweep.dir) if multirun else None
    job = {
        "name": str(hydra.job.name),
        "num": int(hydra.job.num) if multirun and getattr(hydra.job, "num", None) is not None else None,
        "overrides": list(hydra.overrides.task),
    }
    config = None
    subdir = hydra.output_subdir
    if subdir is not None:
        from omegaconf import OmegaConf

        path = os.path.join(str(hydra.runtime.output_dir), str(subdir), "config.yaml")
        try:
            config = OmegaConf.load(path)
        except OSError as err:
            log.warning("lightning_tracker: the Hydra config %s is not recorded (%s)", path, err)
    return HydraLaunch(group, config, job)
