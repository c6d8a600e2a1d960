"""The ALS baseline (implicit library): a planted structure, the scorer interfaces, tuning on
validation only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncf import Interactions
from ncf.evaluation import evaluate_full, evaluate_sampled
from ncf.evaluation.validators import carve_validation
from ncf.exceptions import NotFittedError
from ncf.studies.baselines import ALS, tune_als

pytest.importorskip("implicit")


@pytest.fixture(scope="module")
def blocks() -> Interactions:
    """Two planted blocks: users of each half interact only with items of their half."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        start = 0 if u < 30 else 20
        for t, i in enumerate(rng.choice(20, size=8, replace=False)):
            rows.append((u, int(start + i), t))
    return Interactions.from_dataframe(
        pd.DataFrame(rows, columns=["user", "item", "timestamp"]), timestamp="timestamp"
    )


def test_als_recovers_the_blocks_through_both_scorer_interfaces(blocks: Interactions) -> None:
    part, validator = carve_validation(blocks, n_negatives=20, seed=0)
    als = ALS(factors=8, regularization=0.01, alpha=10.0).fit(part)
    scores = als.score_all(np.arange(60))
    assert scores.shape == (60, 40)
    own = np.r_[scores[:30, :20].mean(), scores[30:, 20:].mean()]
    other = np.r_[scores[:30, 20:].mean(), scores[30:, :20].mean()]
    assert (own > other + 0.2).all()
    np.testing.assert_allclose(als(np.array([0, 31]), np.array([3, 25])), scores[[0, 31], [3, 25]],
                               rtol=1e-5)  # fmt: skip
    sampled = evaluate_sampled(als, validator.users, validator.positives, validator.negatives)
    assert sampled["hr@10"] >= 0.85  # the other block's negatives all rank below
    full = evaluate_full(als, part.csr, validator.users, validator.positives, ks=10)
    assert full["recall@10"] > 0.5
    with pytest.raises(NotFittedError):
        ALS().score_all(np.arange(2))


def test_tune_als_picks_the_best_validation_setting(blocks: Interactions) -> None:
    part, validator = carve_validation(blocks, n_negatives=20, seed=0)
    grid = {"factors": (2, 8), "regularization": (0.01,), "alpha": (1.0, 10.0)}
    tuned = tune_als(part, validator, grid=grid)
    assert len(tuned.trials) == 4
    assert tuned.best["val_hr@10"] == max(t["val_hr@10"] for t in tuned.trials)
    again = ALS(**{k: tuned.best[k] for k in grid}).fit(part)
    assert validator(again)["hr@10"] == pytest.approx(tuned.best["val_hr@10"])  # type: ignore[arg-type]
