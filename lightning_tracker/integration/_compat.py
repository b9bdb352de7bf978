"""The Lightning classes we build on, from every Lightning package that is installed.

``pytorch_lightning`` and the unified ``lightning`` package (``lightning.pytorch``) ship the
same Trainer with distinct classes, and both are often installed side by side. Our logger
and callbacks must be real ``Logger``\\ s and ``Callback``\\ s of whichever package the
user's ``Trainer`` comes from, so their bases here derive from the classes of *every*
installed package, and "which rank is this" asks every package's ``rank_zero_only`` (each
Trainer sets only its own package's).

Example:
    >>> from lightning_tracker.integration._compat import PACKAGES, Logger, rank
    >>> issubclass(Logger, __import__(PACKAGES[0], fromlist=["loggers"]).loggers.Logger)
    True
    >>> rank()
    0
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from lightning_tracker.exceptions import MissingDependencyError

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

__all__ = [
    "PACKAGES",
    "Callback",
    "DummyExperiment",
    "LightningModule",
    "Logger",
    "ModelCheckpoint",
    "Trainer",
    "override",
    "rank",
    "rank_zero_experiment",
    "rank_zero_only",
    "seed_everything",
]

# (Lightning package, its fabric package): the first installed one gives Trainer and LightningModule
_CANDIDATES = (("pytorch_lightning", "lightning_fabric"), ("lightning.pytorch", "lightning.fabric"))


def _installed() -> list[tuple[ModuleType, ModuleType]]:
    found, missing = [], None
    for package, fabric in _CANDIDATES:
        try:
            found.append((importlib.import_module(package), importlib.import_module(fabric)))
        except ImportError as err:
            missing = missing or err
            continue
    if not found:
        raise MissingDependencyError(
            f"TrackerLogger and its callbacks need torch and Lightning ({missing}); install them with the "
            '[lightning] extra: pip install ".[lightning]" in a clone of lightning-tracker, pip install '
            '"lightning_tracker-<version>-py3-none-any.whl[lightning]" from a wheel, or pip install lightning '
            "(the [pytorch-lightning] extra installs pytorch_lightning instead)"
        ) from None
    return found


_PACKAGES = _installed()
PACKAGES: tuple[str, ...] = tuple(pl.__name__ for pl, _ in _PACKAGES)
"""The Lightning packages installed, as importable names (``pytorch_lightning``, ``lightning.pytorch``)."""

_RANK_ZERO_ONLY = [
    importlib.import_module(f"{fabric.__name__}.utilities.rank_zero").rank_zero_only for _, fabric in _PACKAGES
]


def rank() -> int:
    """This process's global rank, as the Lightning package that launched it says.

    A DDP strategy sets ``rank_zero_only.rank`` of its own package only; the other package's
    keeps what the environment said at import (0 in a spawned worker), so the highest wins.
    """
    return max(int(getattr(fn, "rank", 0)) for fn in _RANK_ZERO_ONLY)


def _combined(name: str, classes: list[type]) -> type:
    # one class deriving from the same class of every installed package (identical APIs)
    unique = list(dict.fromkeys(classes))
    return unique[0] if len(unique) == 1 else type(name, tuple(unique), {"__module__": __name__})


F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    # the type checker sees one package; at run time the classes of every installed one are combined
    from lightning_fabric.loggers.logger import _DummyExperiment as DummyExperiment
    from pytorch_lightning import LightningModule, Trainer, seed_everything
    from pytorch_lightning.callbacks import Callback, ModelCheckpoint
    from pytorch_lightning.loggers.logger import Logger
else:
    _first = _PACKAGES[0][0]
    LightningModule = _first.LightningModule
    Trainer = _first.Trainer
    seed_everything = _first.seed_everything
    ModelCheckpoint = importlib.import_module(f"{_first.__name__}.callbacks").ModelCheckpoint
    Logger = _combined(
        "Logger", [importlib.import_module(f"{pl.__name__}.loggers.logger").Logger for pl, _ in _PACKAGES]
    )
    Callback = _combined(
        "Callback", [importlib.import_module(f"{pl.__name__}.callbacks").Callback for pl, _ in _PACKAGES]
    )
    DummyExperiment = _combined(
        "DummyExperiment",
        [importlib.import_module(f"{fabric.__name__}.loggers.logger")._DummyExperiment for _, fabric in _PACKAGES],
    )


def rank_zero_only(fn: F) -> F:
    """Runs ``fn`` on global rank 0 only (returns None elsewhere), whichever package launched the ranks."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if rank() == 0:
            return fn(*args, **kwargs)
        return None

    return wrapped  # type: ignore[return-value]  # same signature, Optional result as Lightning's own


def rank_zero_experiment(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The real experiment on rank 0, a ``DummyExperiment`` of every installed package elsewhere."""

    @functools.wraps(fn)
    def experiment(self: Any) -> Any:
        if rank() > 0:
            return DummyExperiment()
        return fn(self)

    return experiment
