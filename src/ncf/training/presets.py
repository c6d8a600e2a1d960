"""Task recipes: the defaults a task gives a model, over the dataclasses' own defaults.

The implicit task trains with :class:`~ncf.training.TrainConfig`'s and the model configs' own
defaults, so it has no entry here. The rating task uses the recipes tuned on validation folds
carved from MovieLens-100K's training folds (``docs/rating.md``): MSE, the epoch selected by
validation RMSE, and per model sizes and regularization. This table is the one place those
defaults live; whatever a user gives (flag, TOML key or keyword) is laid over it.

A recipe is ``{"model": {...}, "train": {...}}``: model hyper-parameters and
:class:`~ncf.training.TrainConfig` fields. The role ``"finetune"`` is the fused NeuMF's
fine-tuning after pre-training.
"""

from __future__ import annotations

from typing import Any

from ncf.exceptions import ConfigError

TASKS = ("implicit", "rating")
#: The models each task can train.
TASK_MODELS: dict[str, tuple[str, ...]] = {
    "implicit": ("neumf", "gmf", "mlp", "mf", "itempop"),
    "rating": ("mf", "mlp", "neumf"),
}

_RATING_BASE: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 512,
    "lr": 3e-3,
    "loss": "mse",
    "monitor": "rmse",
    "patience": 3,
}
_TOWER: dict[str, Any] = {
    "embedding_dims": "fastai",
    "layers": (64, 32),
    "dropout": 0.5,
    "batch_norm": False,
}

#: (task, role) -> recipe. MF and NeuMF: Adam with early stopping, regularized by the models'
#: per-rating L2 on the batch's rows (weight decay validated worse for them); NeuMF also decays
#: the rate by 0.7 per epoch. MLP: fast.ai's ``fit_one_cycle(5, 5e-3, wd=0.1)`` with batches
#: of 64, stretched to 8 epochs with dropout 0.1 and batch norm, which validated better.
RECIPES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("rating", "mf"): {
        "model": {"factors": 64, "l2_embedding": 0.05},
        "train": dict(_RATING_BASE),
    },
    ("rating", "mlp"): {
        "model": {**_TOWER, "layers": (100, 50), "dropout": 0.1, "batch_norm": True},
        "train": {
            **_RATING_BASE,
            "epochs": 8,
            "batch_size": 64,
            "lr": 5e-3,
            "optimizer": "adamw",
            "weight_decay": 0.1,
            "schedule": "onecycle",
            "patience": None,
        },
    },
    ("rating", "neumf"): {
        "model": {**_TOWER, "factors": 32, "l2_embedding": 0.05},
        "train": {**_RATING_BASE, "schedule": "exponential", "gamma": 0.7, "patience": 4},
    },
    # after pre-training: Adam at a low rate, early stopping; the branches fix the sizes
    ("rating", "finetune"): {
        "model": {"l2_embedding": 0.05},
        "train": {**_RATING_BASE, "gamma": 0.7, "patience": 2, "lr": 3e-4},
    },
}


def check_task(task: Any, model: str | None = None) -> str:
    """``task`` if known (and ``model`` one of its models), else a ConfigError naming the valid."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if model is not None and model not in TASK_MODELS[task]:
        raise ConfigError(f"the {task} task trains {', '.join(TASK_MODELS[task])}, not {model!r}")
    return str(task)


def recipe(task: str, role: str) -> dict[str, dict[str, Any]]:
    """The recipe of ``role`` (a model name or ``"finetune"``) in ``task``; empty if none."""
    check_task(task)
    found = RECIPES.get((task, role), {})
    return {"model": dict(found.get("model", {})), "train": dict(found.get("train", {}))}


def y_range(rating_scale: tuple[float, float]) -> tuple[float, float]:
    """The output range of a rating model: half a step of head-room on each side."""
    low, high = rating_scale
    return (float(low) - 0.5, float(high) + 0.5)


__all__ = ["RECIPES", "TASKS", "TASK_MODELS", "check_task", "recipe", "y_range"]
