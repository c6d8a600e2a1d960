"""Non-neural baselines for honest comparisons, tuned on the same validation carve that ncf
selects its models on, never on test: ALS from the ``implicit`` library and EASE (closed form).

``implicit`` is an optional dependency (``pip install 'ncf[bench]'``); importing this module
works without it, fitting ALS raises a :class:`~ncf.exceptions.ConfigError` that says what to
install. EASE needs only numpy and scipy. Both plug into the evaluation protocols as scorers:
``model(users, items)`` (sampled candidates) and ``model.score_all(users)`` (full ranking).

:func:`tune_als` and :func:`tune_ease` select on a sampled validator's metric (``monitor``,
the default, HR@10) or on a full-ranking metric of held-out rows (``metric="ndcg@20"``: every
item ranked, the training items masked, :func:`~ncf.evaluation.evaluate_full`).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf.data.interactions import Interactions
from ncf.evaluation.protocols import evaluate_full
from ncf.evaluation.validators import SampledValidator
from ncf.exceptions import ConfigError, DataError, NotFittedError
from ncf.models.als import ALS as ALSModel
from ncf.models.ease import EASE as EASEModel

logger = logging.getLogger("ncf.studies.baselines")

#: The grid :func:`tune_als` searches: factors, L2 regularization, confidence alpha.
ALS_GRID: dict[str, tuple[Any, ...]] = {
    "factors": (64, 128),
    "regularization": (0.01, 0.05, 0.2),
    "alpha": (1.0, 5.0, 20.0, 40.0),
}

#: A wider grid for selection on full-ranking metrics. With ``metric="ndcg@20"`` the best of
#: :data:`ALS_GRID` sat on its edges (regularization 0.2, alpha 1) on ml-latest-small and
#: lastfm-2k under ``bench/defaults.py --protocol random``, and two first widenings' best on
#: their top regularization (5, then 50): full ranking wants far more than HR@10 does. On this
#: grid the choice is inside the regularization range on both (50 and 200); lastfm-2k's alpha
#: (50) and both sets' factors (128) still sit at the top of theirs.
ALS_FULL_GRID: dict[str, tuple[Any, ...]] = {
    "factors": (64, 128),
    "regularization": (5.0, 20.0, 50.0, 200.0, 1000.0),
    "alpha": (1.0, 5.0, 20.0, 50.0),
}

#: The L2 regularizations (lambda) :func:`tune_ease` searches.
EASE_GRID: tuple[float, ...] = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)

#: EASE refuses to fit when its dense item-item matrices would need more than this (4 GiB).
EASE_MAX_BYTES = 4 * 2**30

#: Metrics :func:`evaluate_full` reports, any of which ``metric=`` can select on.
FULL_METRICS = ("recall", "precision", "hr", "ndcg", "map")


class ALS:
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) as a baseline: the product's
    closed-form model (:class:`ncf.models.ALS`, ``implicit``'s solver) behind the baselines'
    interface (``fit``, ``score_all``, ``__call__`` on numpy arrays), on its own thread count.

    Parameters
    ----------
    factors, regularization, alpha, iterations
        ``implicit.als.AlternatingLeastSquares``'s; every interaction gets confidence
        ``1 + alpha``.
    seed : int
        Seeds the factors' initialisation.
    threads : int
        Threads of ``implicit`` (0: all cores); the result does not depend on them.
    """

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.threads = threads

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
        }

    def fit(self, train: Interactions) -> ALS:
        """Fit on the interactions (binary: repeated pairs count once)."""
        model = ALSModel(train.n_users, train.n_items, **self.params(), seed=self.seed)
        previous = torch.get_num_threads()  # the model's solver runs on torch's thread count
        torch.set_num_threads(self.threads if self.threads > 0 else os.cpu_count() or 1)
        try:
            model.fit_data(train)
        finally:
            torch.set_num_threads(previous)
        self.user_factors_ = model.user_embedding.weight.detach().numpy()  # (n_users, f)
        self.item_factors_ = model.item_embedding.weight.detach().numpy()  # (n_items, f)
        self.n_users, self.n_items = train.n_users, train.n_items
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "user_factors_"):
            raise NotFittedError("this ALS is not fitted yet; call fit(interactions)")

    def __call__(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of (user, item) pairs (the sampled protocol's scorer)."""
        self._check_fitted()
        return np.einsum("ij,ij->i", self.user_factors_[users], self.item_factors_[items])

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user, shape (len(users), n_items) (full ranking)."""
        self._check_fitted()
        return self.user_factors_[users] @ self.item_factors_.T


class EASE:
    """EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data") as a
    baseline: the product's closed-form model (:class:`ncf.models.EASE`, its primal Cholesky
    or dual Woodbury route) behind the baselines' interface (``fit``, ``score_all``,
    ``__call__`` on numpy arrays), with a limit on the dense matrices' bytes.

    Parameters
    ----------
    regularization : float
        The L2 penalty ``lambda`` (> 0); Steck's best values lie in the hundreds to thousands.
    max_bytes : int
        ``fit`` raises a :class:`~ncf.exceptions.ConfigError` instead of allocating more than
        this for the dense matrices (see :meth:`estimated_bytes`).
    """

    def __init__(self, regularization: float = 500.0, max_bytes: int = EASE_MAX_BYTES) -> None:
        self.regularization = regularization
        self.max_bytes = max_bytes

    def params(self) -> dict[str, Any]:
        return {"regularization": self.regularization}

    @staticmethod
    def estimated_bytes(n_users: int, n_items: int) -> int:
        """Bytes of the dense matrices the fit holds at its peak (the model's estimate for
        the route it takes, :meth:`ncf.models.EASE.estimated_bytes`)."""
        return EASEModel.estimated_bytes(n_users, n_items)[1]

    def fit(self, train: Interactions) -> EASE:
        """Fit on the interactions (binary: repeated pairs count once)."""
        lam = self.regularization
        if isinstance(lam, bool) or not isinstance(lam, int | float) or not lam > 0:
            raise ConfigError(f"EASE's regularization must be a number > 0, got {lam!r}")
        n_users, n_items = train.n_users, train.n_items
        need = self.estimated_bytes(n_users, n_items)
        if need > self.max_bytes:
            raise ConfigError(
                f"EASE on {n_items:,} items needs about {need:,} bytes ({need / 2**30:.1f} GiB) "
                f"of dense item-item matrices, over the limit of {self.max_bytes:,} bytes; "
                "drop rare items first or raise max_bytes if the memory is there"
            )
        limit = max(need, self.max_bytes) / 1e9 + 1e-9  # this class's limit governs
        model = EASEModel(n_users, n_items, l2=float(lam), memory_limit_gb=limit)
        self.model_ = model.fit_data(train)
        self.weights_ = model.weights.numpy()  # (n_items, n_items) float32, zero diagonal
        self.seen_ = sp.csr_matrix(train.csr, dtype=np.float32)
        self.n_users, self.n_items = n_users, n_items
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this EASE is not fitted yet; call fit(interactions)")

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user, shape (len(users), n_items) (full ranking)."""
        self._check_fitted()
        index = torch.from_numpy(np.asarray(users, dtype=np.int64))
        with torch.no_grad():
            return self.model_.score_all(index).numpy()

    def __call__(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of (user, item) pairs (the sampled protocol's scorer)."""
        self._check_fitted()
        u = torch.from_numpy(np.asarray(users, dtype=np.int64))
        i = torch.from_numpy(np.asarray(items, dtype=np.int64))
        with torch.no_grad():
            return self.model_(u, i).numpy()


@dataclass
class Tuned:
    """What :func:`tune_als` and :func:`tune_ease` return: the best setting by validation,
    every one tried, and ``key``, the trials' entry it was selected on (``"val_hr@10"``,
    ``"val_full_ndcg@20"``)."""

    best: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    key: str = ""


#: Held-out rows for selection: a sampled validator, or interactions ranked in full.
Validation = SampledValidator | Interactions


def tune_als(
    train: Interactions,
    validator: Validation,
    *,
    grid: Mapping[str, Iterable[Any]] | None = None,
    monitor: str = "hr@10",
    metric: str | None = None,
    iterations: int = 15,
    seed: int = 0,
    threads: int = 1,
) -> Tuned:
    """Pick ALS's setting on ``validator`` (held out of ``train``; the test set never enters).

    Parameters
    ----------
    train : Interactions
        The training part the validator's rows were carved from (without them).
    validator : SampledValidator or Interactions
        Held-out rows: with their candidates (a validator), or plain rows over ``train``'s
        id maps (only with ``metric``).
    grid : dict of str to values, optional
        Values to try per parameter (default :data:`ALS_GRID`); every combination is fitted.
    monitor : str
        The sampled validator's metric to maximize when ``metric`` is None (the default).
    metric : str, optional
        A full-ranking metric to maximize instead, ``"ndcg@20"`` say (any of
        :data:`FULL_METRICS` at a cut-off, optionally written ``"full_ndcg@20"``): every
        item ranked for each held-out user, ``train``'s items masked
        (:func:`~ncf.evaluation.evaluate_full`). The trials then hold ``val_full_*`` entries.
    """
    space = dict(ALS_GRID if grid is None else grid)
    names: Sequence[str] = list(space)
    settings = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(space[n] for n in names))
    ]

    def build(params: dict[str, Any]) -> ALS:
        return ALS(**params, iterations=iterations, seed=seed, threads=threads)

    return _tune("ALS", build, settings, train, validator, monitor, metric)


def tune_ease(
    train: Interactions,
    validator: Validation,
    *,
    grid: Iterable[float] = EASE_GRID,
    monitor: str = "hr@10",
    metric: str | None = None,
    max_bytes: int = EASE_MAX_BYTES,
) -> Tuned:
    """Pick EASE's ``regularization`` (lambda) from ``grid`` on ``validator``.

    ``train``, ``validator``, ``monitor`` and ``metric`` as in :func:`tune_als`; ``best``
    holds ``{"regularization": lambda, "val_...": ...}``.
    """
    settings = [{"regularization": float(lam)} for lam in grid]
    if not settings:
        raise ConfigError("tune_ease needs at least one regularization in grid")

    def build(params: dict[str, Any]) -> EASE:
        return EASE(**params, max_bytes=max_bytes)

    return _tune("EASE", build, settings, train, validator, monitor, metric)


def _tune(
    label: str,
    build: Any,
    settings: list[dict[str, Any]],
    train: Interactions,
    validator: Validation,
    monitor: str,
    metric: str | None,
) -> Tuned:
    """Fit ``build(params)`` on ``train`` for each setting and keep the best on validation."""
    score, key = _selection(train, validator, monitor, metric)
    t0 = time.perf_counter()
    trials = []
    for params in settings:
        model = build(params).fit(train)
        scores = score(model)
        trials.append({**params, **{f"val_{k}": v for k, v in scores.items()}})
        logger.info("%s %s: %s %.4f", label, params, key, trials[-1][key])
    best = max(trials, key=lambda t: t[key])
    return Tuned(best, trials, time.perf_counter() - t0, key)


def _selection(
    train: Interactions, validator: Validation, monitor: str, metric: str | None
) -> tuple[Any, str]:
    """(model -> validation scores, the trial key to maximize), checked before any fit."""
    if metric is None:
        if not isinstance(validator, SampledValidator):
            raise ConfigError(
                "held-out interactions are ranked in full: pass metric='ndcg@20' (say), or a "
                "SampledValidator to select on its sampled metrics"
            )
        validator.check_monitor([monitor])
        return validator, f"val_{monitor}"
    name, k = _full_metric(metric)
    if isinstance(validator, SampledValidator):
        users, items = validator.users, validator.positives
    elif isinstance(validator, Interactions):
        if validator.shape != train.shape:
            raise DataError(
                f"the held-out rows are over {validator.shape} (users, items) and train over "
                f"{train.shape}: carve them from train so they share its id maps"
            )
        users, items = validator.users, validator.items
    else:
        raise ConfigError(
            f"validator must be a SampledValidator or Interactions, got {type(validator).__name__}"
        )

    def score(model: Any) -> dict[str, float]:
        full = evaluate_full(model, train.csr, users, items, ks=(k,))
        return {f"full_{n}": v for n, v in full.items()}

    return score, f"val_full_{name}@{k}"


def _full_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@20"`` (or ``"full_ndcg@20"``) as ``("ndcg", 20)``; a ConfigError otherwise."""
    text = metric.removeprefix("full_")
    name, _, k = text.partition("@")
    if name not in FULL_METRICS or not k.isdigit() or int(k) < 1:
        raise ConfigError(
            f"metric {metric!r} is not a full-ranking metric; valid: NAME@K with NAME one of "
            f"{', '.join(FULL_METRICS)} and K a positive integer (ndcg@20, say)"
        )
    return name, int(k)


__all__ = [
    "ALS",
    "ALS_FULL_GRID",
    "ALS_GRID",
    "EASE",
    "EASE_GRID",
    "EASE_MAX_BYTES",
    "FULL_METRICS",
    "Tuned",
    "tune_als",
    "tune_ease",
]
