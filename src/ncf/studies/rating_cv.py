"""Rating experiments that report: a rating model trained and tested on every split of a
protocol (MovieLens-100K's official folds by default), RMSE and MAE averaged.

Each split trains one :class:`~ncf.Recommender` with ``task="rating"``: the model selects its
epoch on a random 10 % carved from the split's training part (seeded ``seed + k`` for split
``k``), and the test part is scored once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncf.data.datasets import Dataset
from ncf.data.features import (
    BUILTIN_FEATURES,
    HISTORY,
    MAX_HISTORY_CELLS,
    SIDES,
    Features,
    dataset_features,
    history_features,
)
from ncf.data.holdout import PROTOCOLS, Holdout, rating_holdouts
from ncf.exceptions import ConfigError, DataError
from ncf.recommender import Recommender
from ncf.training import Callback

logger = logging.getLogger("ncf.studies")

#: What ``features`` may name: built-in user / item metadata, and each user's rated items.
FEATURE_SOURCES = (*SIDES, HISTORY)


@dataclass
class CrossValidation:
    """What :func:`cross_validate` returns: the summary, and each split's fitted model."""

    summary: dict[str, Any]
    fits: list[tuple[Recommender, Holdout]] = field(default_factory=list)


def check_features(features: Sequence[str]) -> list[str]:
    """The feature sources, lower-cased; a ConfigError for an unknown one."""
    sides = [str(s).strip().lower() for s in features]
    unknown = [s for s in sides if s not in FEATURE_SOURCES]
    if unknown:
        raise ConfigError(f"unknown feature source(s) {unknown}; valid: {list(FEATURE_SOURCES)}")
    return sides


def available_features(ds: Dataset, sides: Sequence[str]) -> list[str]:
    """The feature sources among ``sides`` that ``ds`` can give: its built-in metadata where
    it has some, and the history where the users x items matrix is not too large."""
    inter = ds.interactions
    have = {
        "user": "user" in BUILTIN_FEATURES.get(ds.name, {}) and ds.users is not None,
        "item": "item" in BUILTIN_FEATURES.get(ds.name, {}) and ds.items is not None,
        HISTORY: inter.n_users * inter.n_items <= MAX_HISTORY_CELLS,
    }
    return [s for s in check_features(sides) if have[s]]


def split_features(
    ds: Dataset, holdout: Holdout, sides: Sequence[str]
) -> tuple[Features | None, Features | None]:
    """User and item features of one split: metadata, and the history of its training part."""
    user = dataset_features(ds, "user") if "user" in sides else None
    if HISTORY in sides:  # from this split's training part only
        user = history_features(holdout.train, ds if "user" in sides else None)
    item = dataset_features(ds, "item") if "item" in sides else None
    return user, item


def cross_validate(
    ds: Dataset,
    estimator: Recommender,
    *,
    protocol: str = "folds",
    features: Sequence[str] = (),
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
) -> CrossValidation:
    """Fit a clone of ``estimator`` on every split of ``protocol`` and test it once.

    Parameters
    ----------
    ds : Dataset
        A dataset with explicit ratings and a rating scale.
    estimator : Recommender
        With ``task="rating"``; its parameters are copied for each split, whose validation
        carve is seeded ``estimator.seed + k``.
    protocol : {"folds", "random", "per-user"}
    features : sequence of {"user", "item", "history"}
        Side features for the MLP tower (see :func:`split_features`).
    checkpoint_dir : str or Path, optional
        Checkpoints of every split (``split-K`` folders), to resume a killed run.

    Returns
    -------
    CrossValidation
        ``summary``: ``rmse``, ``mae`` (means over the splits), their ``_std``, ``folds``
        (one dict per split: ``rmse``, ``mae``, ``val_rmse``, ``best_epoch``, ``seconds``...),
        ``protocol``, ``model``, ``dataset``, ``features``, ``params``; ``fits``: each split's
        fitted recommender with its split.
    """
    if estimator.task != "rating":
        raise ConfigError("cross_validate runs the rating task: pass Recommender(task='rating')")
    if ds.interactions.ratings is None:
        raise DataError(f"dataset {ds.name!r} has no explicit ratings; use the ranking task")
    sides = check_features(features)
    scale = ds.rating_scale or estimator.rating_scale
    splits = rating_holdouts(ds, protocol, seed=estimator.seed)
    out = CrossValidation(summary={})
    folds = []
    for k, holdout in enumerate(splits):
        t0 = time.perf_counter()
        params = {**estimator.get_params(), "validation_seed": estimator.seed + k}
        split_dir = None if checkpoint_dir is None else Path(checkpoint_dir) / f"split-{k + 1}"
        rec = Recommender(**{**params, "rating_scale": scale})
        user, item = split_features(ds, holdout, sides)
        rec.fit(holdout.train, item_metadata=ds.items, user_features=user, item_features=item,
                callbacks=callbacks, checkpoint_dir=split_dir)  # fmt: skip
        scores = rec.evaluate(holdout.test)
        folds.append(
            {
                **scores,
                "val_rmse": rec.metrics_.get("rmse"),
                "best_epoch": rec.best_epoch_,
                "epochs_run": len(rec.history_),
                "seconds": time.perf_counter() - t0,
                "n_train": len(holdout.train),
                "n_test": len(holdout.test),
            }
        )
        out.fits.append((rec, holdout))
        logger.info("%s split %d: rmse %.4f mae %.4f", ds.name, k, scores["rmse"], scores["mae"])
    rmses = np.array([f["rmse"] for f in folds])
    maes = np.array([f["mae"] for f in folds])
    out.summary = {
        "dataset": ds.name,
        "model": estimator.model_name,
        "protocol": protocol,
        "features": sides,
        "rmse": float(rmses.mean()),
        "mae": float(maes.mean()),
        "rmse_std": float(rmses.std()),
        "mae_std": float(maes.std()),
        "folds": folds,
        "refit": estimator.refit_,
        "pretrain": out.fits[0][0].plan_.pretrain if out.fits else False,
    }
    return out


__all__ = [
    "FEATURE_SOURCES",
    "PROTOCOLS",
    "CrossValidation",
    "available_features",
    "check_features",
    "cross_validate",
]
