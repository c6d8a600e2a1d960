"""Training: typed configs, the task recipes, the one orchestration and the ``Trainer``.

``TrainConfig`` and ``PretrainConfig`` are the typed settings; :func:`make_plan` resolves them
with a task's recipe into a :class:`Plan`; :func:`fit_model` trains it (one model, or NeuMF's
branches, fusion and fine-tuning, then an optional refit) with the one ``Trainer``.

The names are imported on first use, so the torch-free parts (``ncf.training.config``'s
constants, the command line's parser) load without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ALPHAS": "ncf.training.plan",
    "OPTIMIZERS": "ncf.training.optim",
    "SCHEDULES": "ncf.training.optim",
    "Callback": "ncf.training.callbacks",
    "History": "ncf.training.callbacks",
    "LoggingCallback": "ncf.training.callbacks",
    "Plan": "ncf.training.plan",
    "PretrainConfig": "ncf.training.plan",
    "Stage": "ncf.training.plan",
    "TrainConfig": "ncf.training.config",
    "TrainResult": "ncf.training.trainer",
    "Trainer": "ncf.training.trainer",
    "fit_model": "ncf.training.orchestrate",
    "make_plan": "ncf.training.plan",
}

if TYPE_CHECKING:
    from ncf.training.callbacks import Callback, History, LoggingCallback
    from ncf.training.config import TrainConfig
    from ncf.training.optim import OPTIMIZERS, SCHEDULES
    from ncf.training.orchestrate import fit_model
    from ncf.training.plan import ALPHAS, Plan, PretrainConfig, Stage, make_plan
    from ncf.training.trainer import Trainer, TrainResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ncf.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
