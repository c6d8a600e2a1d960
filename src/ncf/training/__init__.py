"""Training: one ``Trainer`` for every model, its config, losses, optimizers and callbacks."""

from ncf.training.callbacks import Callback, History, LoggingCallback
from ncf.training.config import TrainConfig
from ncf.training.optim import OPTIMIZERS, SCHEDULES
from ncf.training.trainer import Trainer, TrainResult

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Callback",
    "History",
    "LoggingCallback",
    "TrainConfig",
    "TrainResult",
    "Trainer",
]
