"""Callbacks: how the trainer reports (it never prints)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from ncf.training.config import TrainConfig
from ncf.training.result import TrainResult

if TYPE_CHECKING:  # no torch at import: the command line imports this module at start-up
    import torch


class TrainerView(Protocol):
    """What a callback sees of the :class:`~ncf.training.Trainer` calling it (a protocol, so
    the trainer imports its callbacks and not the other way round)."""

    config: TrainConfig
    model: torch.nn.Module | None
    device: torch.device


class Callback:
    """Hooks called by :class:`~ncf.training.Trainer`; override the ones you need.

    ``on_epoch_end`` may return True to stop training after that epoch.
    """

    def on_train_begin(self, trainer: TrainerView) -> None:
        """Before the first epoch (or the first resumed one)."""

    def on_epoch_end(self, trainer: TrainerView, epoch: int, logs: dict[str, Any]) -> bool | None:
        """After each epoch with its logs (loss, time, lr, validation metrics)."""
        return None

    def on_train_end(self, trainer: TrainerView, result: TrainResult) -> None:
        """After training, with the best weights already restored."""


class LoggingCallback(Callback):
    """Logs one line per epoch to the ``ncf.training`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("ncf.training")

    def on_epoch_end(self, trainer: TrainerView, epoch: int, logs: dict[str, Any]) -> None:
        parts = [
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in logs.items()
            if k != "epoch"
        ]
        self.logger.info("epoch %d: %s", epoch, " ".join(parts))


class History(Callback):
    """Keeps every epoch's logs in ``self.epochs`` (the trainer's result holds them too)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []

    def on_epoch_end(self, trainer: TrainerView, epoch: int, logs: dict[str, Any]) -> None:
        self.epochs.append(dict(logs))
