"""Training: typed configs, the task recipes, the one orchestration and the ``Trainer``.

``TrainConfig`` and ``PretrainConfig`` are the typed settings; :func:`make_plan` resolves them
with a task's recipe into a :class:`Plan`; :func:`fit_model` trains it (one model, or NeuMF's
branches, fusion and fine-tuning, then an optional refit) with the one ``Trainer``.
"""

from ncf.training.callbacks import Callback, History, LoggingCallback
from ncf.training.config import TrainConfig
from ncf.training.optim import OPTIMIZERS, SCHEDULES
from ncf.training.orchestrate import fit_model
from ncf.training.plan import ALPHAS, Plan, PretrainConfig, Stage, make_plan
from ncf.training.trainer import Trainer, TrainResult

__all__ = [
    "ALPHAS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Callback",
    "History",
    "LoggingCallback",
    "Plan",
    "PretrainConfig",
    "Stage",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "fit_model",
    "make_plan",
]
