"""Non-neural baselines for honest comparisons: ALS from the ``implicit`` library, tuned on the
same validation carve that ncf selects its models on, never on test.

``implicit`` is an optional dependency (``pip install 'ncf[bench]'``); importing this module
works without it, fitting raises a :class:`~ncf.exceptions.ConfigError` that says what to
install. :class:`ALS` plugs into the evaluation protocols as a scorer: ``als(users, items)``
(sampled candidates) and ``als.score_all(users)`` (full ranking).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ncf.data.interactions import Interactions
from ncf.evaluation.validators import SampledValidator
from ncf.exceptions import ConfigError, NotFittedError

logger = logging.getLogger("ncf.studies.baselines")

#: The grid :func:`tune_als` searches: factors, L2 regularization, confidence alpha.
ALS_GRID: dict[str, tuple[Any, ...]] = {
    "factors": (64, 128),
    "regularization": (0.01, 0.05, 0.2),
    "alpha": (1.0, 5.0, 20.0, 40.0),
}


class ALS:
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) from the ``implicit`` library.

    Parameters
    ----------
    factors, regularization, alpha, iterations
        ``implicit.als.AlternatingLeastSquares``'s; every interaction gets confidence
        ``1 + alpha``.
    seed : int
        Seeds the factors' initialisation.
    threads : int
        Threads of ``implicit`` (0: all cores).
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
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError:
            raise ConfigError(
                "the ALS baseline needs the implicit library: pip install 'ncf[bench]'"
            ) from None
        csr = sp.csr_matrix(train.csr, dtype=np.float32)
        csr.data[:] = 1.0
        model = AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=self.threads,
        )
        model.fit(csr, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
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


@dataclass
class Tuned:
    """What :func:`tune_als` returns: the best setting by validation, and every one tried."""

    best: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def tune_als(
    train: Interactions,
    validator: SampledValidator,
    *,
    grid: dict[str, Iterable[Any]] | None = None,
    monitor: str = "hr@10",
    iterations: int = 15,
    seed: int = 0,
    threads: int = 1,
) -> Tuned:
    """Pick ALS's setting on ``validator`` (held out of ``train``; the test set never enters).

    Parameters
    ----------
    train : Interactions
        The training part the validator's rows were carved from (without them).
    validator : SampledValidator
        Held-out rows with their candidates.
    grid : dict of str to values, optional
        Values to try per parameter (default :data:`ALS_GRID`); every combination is fitted.
    monitor : str
        The validation metric to maximize.
    """
    space = dict(ALS_GRID if grid is None else grid)
    names: Sequence[str] = list(space)
    t0 = time.perf_counter()
    trials = []
    for values in itertools.product(*(space[n] for n in names)):
        params = dict(zip(names, values, strict=True))
        model = ALS(**params, iterations=iterations, seed=seed, threads=threads).fit(train)
        scores = validator(model)  # type: ignore[arg-type]
        trials.append({**params, **{f"val_{k}": v for k, v in scores.items()}})
        logger.info("ALS %s: %s %.4f", params, monitor, scores[monitor])
    best = max(trials, key=lambda t: t[f"val_{monitor}"])
    return Tuned(best, trials, time.perf_counter() - t0)


__all__ = ["ALS", "ALS_GRID", "Tuned", "tune_als"]
