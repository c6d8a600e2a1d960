"""The baselines: ALS (implicit library) and EASE (closed form) on a planted structure, through
both scorer interfaces, tuned on validation only (sampled or full-ranking selection)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ncf import Interactions
from ncf.data.idmap import IdMap
from ncf.data.split import holdout_per_user
from ncf.evaluation import evaluate_full, evaluate_sampled
from ncf.evaluation.validators import carve_validation
from ncf.exceptions import ConfigError, DataError, NotFittedError
from ncf.studies.baselines import ALS, EASE, EASE_GRID, tune_als, tune_ease

if TYPE_CHECKING:
    from conftest import Planted

needs_implicit = pytest.mark.skipif(
    importlib.util.find_spec("implicit") is None, reason="the ALS baseline needs implicit"
)


@pytest.fixture(scope="module")
def blocks(make_planted: Callable[..., Planted]) -> Interactions:
    """Two planted blocks (users of each half interact only with items of their half): 60 users,
    40 items (more users than items: EASE's Gram path)."""
    return make_planted(groups=2, users_per_group=30, block=20, per_user=8).interactions()


@pytest.fixture(scope="module")
def wide_blocks(make_planted: Callable[..., Planted]) -> Interactions:
    """20 users, 80 items (fewer users than items: EASE's Woodbury path)."""
    return make_planted(groups=2, users_per_group=10, block=40, per_user=12).interactions()


# ---------------------------------------------------------------------- ALS
@needs_implicit
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


@needs_implicit
def test_tune_als_picks_the_best_validation_setting(blocks: Interactions) -> None:
    part, validator = carve_validation(blocks, n_negatives=20, seed=0)
    grid = {"factors": (2, 8), "regularization": (0.01,), "alpha": (1.0, 10.0)}
    tuned = tune_als(part, validator, grid=grid)
    assert len(tuned.trials) == 4
    assert tuned.key == "val_hr@10"
    assert tuned.best["val_hr@10"] == max(t["val_hr@10"] for t in tuned.trials)
    again = ALS(**{k: tuned.best[k] for k in grid}).fit(part)
    assert validator(again)["hr@10"] == pytest.approx(tuned.best["val_hr@10"])  # type: ignore[arg-type]


@needs_implicit
def test_tune_als_selects_on_full_ranking_ndcg(blocks: Interactions) -> None:
    part, held = holdout_per_user(blocks, ratio=0.25, seed=0)
    grid = {"factors": (2, 8), "regularization": (0.01,), "alpha": (1.0, 10.0)}
    tuned = tune_als(part, held, grid=grid, metric="ndcg@20")
    assert tuned.key == "val_full_ndcg@20"
    assert tuned.best["val_full_ndcg@20"] == max(t["val_full_ndcg@20"] for t in tuned.trials)
    again = ALS(**{k: tuned.best[k] for k in grid}).fit(part)
    full = evaluate_full(again, part.csr, held.users, held.items, ks=20)
    assert full["ndcg@20"] == pytest.approx(tuned.best["val_full_ndcg@20"])
    # a sampled validator's rows can be ranked in full too
    vpart, validator = carve_validation(blocks, n_negatives=20, seed=0)
    assert tune_als(vpart, validator, grid=grid, metric="full_recall@10").key == (
        "val_full_recall@10"
    )


# ---------------------------------------------------------------------- EASE
def _closed_form(train: Interactions, lam: float) -> np.ndarray:
    """Steck's formula in float64, written out."""
    x = train.csr.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + lam * np.eye(train.n_items))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize("shape", ["blocks", "wide_blocks"])
def test_ease_matches_the_closed_form(shape: str, request: pytest.FixtureRequest) -> None:
    train = request.getfixturevalue(shape)
    ease = EASE(regularization=5.0).fit(train)
    assert ease.weights_.dtype == np.float32
    assert ease.weights_.shape == (train.n_items, train.n_items)
    np.testing.assert_allclose(ease.weights_, _closed_form(train, 5.0), atol=2e-6)
    assert not ease.weights_.diagonal().any()


@pytest.mark.parametrize("shape", ["blocks", "wide_blocks"])
def test_ease_recovers_the_blocks_through_both_scorer_interfaces(
    shape: str, request: pytest.FixtureRequest
) -> None:
    train = request.getfixturevalue(shape)
    # block membership from the raw ids (an item nobody drew has no index)
    first_users = train.user_map.ids < train.n_users // 2  # (n_users,)
    block_items = train.item_map.ids.max() // 2 + 1
    first_items = train.item_map.ids < block_items  # (n_items,)
    same = first_users[:, None] == first_items[None, :]  # (n_users, n_items)
    part, validator = carve_validation(train, n_negatives=20, seed=0)
    ease = EASE(regularization=10.0).fit(part)
    w = ease.weights_
    # no weight crosses the blocks: items of one block never co-occur with the other's
    assert np.abs(w[first_items][:, ~first_items]).max() < 1e-6
    assert np.abs(w[~first_items][:, first_items]).max() < 1e-6
    scores = ease.score_all(np.arange(train.n_users))
    assert scores.shape == (train.n_users, train.n_items) and scores.dtype == np.float32
    assert scores[same].mean() > 0.1 and np.abs(scores[~same]).max() < 1e-5
    users = np.array([0, 0, train.n_users - 1, 3])
    items = np.array([3, train.n_items - 1, train.n_items - 2, 7])
    np.testing.assert_allclose(ease(users, items), scores[users, items], rtol=1e-6)
    sampled = evaluate_sampled(ease, validator.users, validator.positives, validator.negatives)
    assert sampled["hr@10"] >= 0.85
    full = evaluate_full(ease, part.csr, validator.users, validator.positives, ks=10)
    assert full["recall@10"] > 0.4
    with pytest.raises(NotFittedError):
        EASE().score_all(np.arange(2))


def test_ease_pairs_scorer_handles_many_users_in_blocks(blocks: Interactions) -> None:
    ease = EASE(regularization=10.0).fit(blocks)
    rng = np.random.default_rng(1)
    users = rng.integers(0, blocks.n_users, 5000)
    items = rng.integers(0, blocks.n_items, 5000)
    expected = ease.score_all(np.arange(blocks.n_users))[users, items]
    np.testing.assert_allclose(ease(users, items), expected, rtol=1e-6)


def test_tune_ease_picks_lambda_from_the_grid(blocks: Interactions) -> None:
    part, held = holdout_per_user(blocks, ratio=0.25, seed=0)
    tuned = tune_ease(part, held, grid=(1.0, 10.0, 100.0), metric="ndcg@20")
    assert [t["regularization"] for t in tuned.trials] == [1.0, 10.0, 100.0]
    assert tuned.key == "val_full_ndcg@20"
    assert tuned.best["regularization"] in (1.0, 10.0, 100.0)
    assert tuned.best[tuned.key] == max(t[tuned.key] for t in tuned.trials)
    chosen = EASE(regularization=tuned.best["regularization"]).fit(part)
    full = evaluate_full(chosen, part.csr, held.users, held.items, ks=20)
    assert full["ndcg@20"] == pytest.approx(tuned.best[tuned.key])
    # the default grid, on a sampled validator's HR@10
    vpart, validator = carve_validation(blocks, n_negatives=20, seed=0)
    sampled = tune_ease(vpart, validator)
    assert [t["regularization"] for t in sampled.trials] == list(EASE_GRID)
    assert sampled.key == "val_hr@10"


def test_tune_checks_the_selection_before_fitting(
    blocks: Interactions, make_planted: Callable[..., Planted]
) -> None:
    part, held = holdout_per_user(blocks, ratio=0.25, seed=0)
    with pytest.raises(ConfigError, match="full-ranking metric"):
        tune_ease(part, held, metric="auc@20")
    with pytest.raises(ConfigError, match="metric="):
        tune_ease(part, held)  # held-out interactions need a full-ranking metric
    vpart, validator = carve_validation(blocks, n_negatives=20, seed=0)
    with pytest.raises(ConfigError, match="monitor"):
        tune_ease(vpart, validator, monitor="recall@10")
    with pytest.raises(DataError, match="id maps"):
        other = make_planted(groups=2, users_per_group=5, block=5, per_user=3).interactions()
        tune_ease(part, other, metric="ndcg@20")


def test_ease_refuses_a_catalogue_too_big_for_memory(make_planted: Callable[..., Planted]) -> None:
    n_items = 40_000  # the primal route: 3 x 4 x 40,000^2 bytes = 19.2 GB, over 4 GiB
    train = Interactions(
        np.arange(3) % 2, np.array([0, 1, n_items - 1]),
        user_map=IdMap.range(50_000), item_map=IdMap.range(n_items),
    )  # fmt: skip
    assert EASE.estimated_bytes(50_000, n_items) == 12 * n_items**2
    with pytest.raises(ConfigError, match="19,200,000,000 bytes"):
        EASE().fit(train)
    small = make_planted(groups=2, users_per_group=10, block=10, per_user=4).interactions()
    with pytest.raises(ConfigError, match="limit of 1,000 bytes"):
        EASE(max_bytes=1000).fit(small)
    with pytest.raises(ConfigError, match="regularization"):
        EASE(regularization=0.0).fit(small)
