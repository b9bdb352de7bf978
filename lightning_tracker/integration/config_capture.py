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

LightningCLI's ``SaveConfigCallback`` also writes the configuration, unredacted, as
``config.yaml`` into ``trainer.log_dir`` (for this logger, ``save_dir``) in its ``setup``
hook. No hook of a logger runs between that callback's creation and its write with the
Trainer in reach, so the write cannot be stopped; :func:`redact_saved_cli_config` rewrites
the file with the same redaction when ``fit`` (or another stage) starts, right after
Lightning's ``setup`` hooks. Until then (the module's and the strategy's setup) the secrets
are on disk; a run that fails there leaves them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from lightning_tracker.format.secrets import REDACTED
from lightning_tracker.storage import atomic_write

__all__ = ["HydraLaunch", "cli_config", "hydra_launch", "redact_saved_cli_config"]

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


def _save_config_callback(trainer: Any) -> Any:
    """LightningCLI's ``SaveConfigCallback`` among ``trainer``'s callbacks (None without one)."""
    classes = tuple(module.SaveConfigCallback for name in _CLI_MODULES if (module := sys.modules.get(name)) is not None)
    if not classes:
        return None
    return next((c for c in getattr(trainer, "callbacks", []) if isinstance(c, classes)), None)


def _dumped(callback: Any) -> dict[str, Any]:
    """The callback's configuration as plain data, by the parser's own dump (class paths and paths
    as text, the form the user wrote), without the config files' paths (their content follows)."""
    data = json.loads(callback.parser.dump(callback.config, format="json", skip_none=False, skip_validation=True))
    data.pop("config", None)
    return data


def cli_config(trainer: Any, secrets: Iterable[str] = ()) -> dict[str, Any] | None:
    """The configuration LightningCLI parsed for this Trainer, as plain data; None without one.

    Args:
        trainer: the Trainer ``fit`` runs.
        secrets: strings never to record (the logger's webhook URL).
    """
    callback = _save_config_callback(trainer)
    if getattr(callback, "config", None) is None:
        return None
    try:
        data = _dumped(callback)
    except Exception as err:  # noqa: BLE001 - a config that cannot be dumped must not stop training
        log.warning(
            "lightning_tracker: the LightningCLI configuration is not recorded (%s: %s)", type(err).__name__, err
        )
        return None
    return _redact(data, secrets)


def redact_saved_cli_config(trainer: Any, secrets: Iterable[str] = ()) -> str | None:
    """Rewrites the ``config.yaml`` LightningCLI's ``SaveConfigCallback`` wrote into ``trainer.log_dir``
    with the logger's ``storage_options``, webhook and ``secrets`` redacted (rank 0, after its ``setup``).

    The file keeps its header comments and every other value; a file holding none of them is
    left as it is. Never raises: a failure is warned about, naming the file.

    Returns:
        The path rewritten, or None.
    """
    callback = _save_config_callback(trainer)
    if not getattr(callback, "already_saved", False) or not getattr(callback, "save_to_log_dir", False):
        return None
    path = os.path.join(_log_dir(trainer), callback.config_filename)
    try:
        data = _dumped(callback)
        redacted = _redact(data, secrets)
        if redacted == data or not os.path.isfile(path):
            return None
        import yaml  # LightningCLI's own (jsonargparse's) dependency

        with open(path, encoding="utf-8") as f:
            header = "".join(line for line in f if line.startswith("#"))
        text = yaml.safe_dump(redacted, default_flow_style=False, allow_unicode=True, sort_keys=False)
        atomic_write(path, (header + text).encode("utf-8"))
    except Exception as err:  # noqa: BLE001 - training goes on; the user is told where the file is
        log.warning(
            "lightning_tracker: could not redact the secrets LightningCLI wrote into %s (%s: %s); delete the file, "
            "or pass secrets through the environment",
            path,
            type(err).__name__,
            err,
        )
        return None
    return path


def _log_dir(trainer: Any) -> str:
    """``trainer.log_dir`` as Lightning computes it, without its broadcast (this runs on rank 0 only):
    the first logger's ``log_dir`` for TensorBoard and CSV loggers, else its ``save_dir``."""
    first = trainer.loggers[0]
    if any(cls.__name__ in ("TensorBoardLogger", "CSVLogger") for cls in type(first).__mro__):
        return str(first.log_dir)
    return str(first.save_dir)


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
