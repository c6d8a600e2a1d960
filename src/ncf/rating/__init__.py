"""Explicit-rating prediction: regressors, RMSE/MAE and the experiment protocols.

>>> from ncf.rating import run_rating_experiment
>>> run_rating_experiment("ml-100k", model="mf", protocol="folds")["rmse"]
"""

from ncf.rating.experiment import (
    PROTOCOLS,
    RATING_MODELS,
    RatingValidator,
    default_finetune_config,
    default_model_params,
    default_train_config,
    default_y_range,
    predict_ratings,
    protocol_splits,
    run_rating_experiment,
    train_rating_model,
)
from ncf.rating.metrics import mae, rating_metrics, rmse

__all__ = [
    "PROTOCOLS",
    "RATING_MODELS",
    "RatingValidator",
    "default_finetune_config",
    "default_model_params",
    "default_train_config",
    "default_y_range",
    "mae",
    "predict_ratings",
    "protocol_splits",
    "rating_metrics",
    "rmse",
    "run_rating_experiment",
    "train_rating_model",
]
