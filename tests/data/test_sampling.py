from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ncf.data import IdMap, Interactions, sampling
from ncf.data.sampling import (
    NegativeSampler,
    evaluation_candidates,
    has_seen,
    sample_epoch,
)
from ncf.data.split import leave_one_out
from ncf.exceptions import ConfigError, DataError

MEMBERSHIP = ["dense", "sorted"]
DISTRIBUTION = ["uniform", "popularity"]


def _seen_matrix(n_users: int = 40, n_items: int = 30, seed: int = 0) -> sp.csr_matrix:
    """Random seen matrix with some users who have seen all but one or two items."""
    gen = np.random.default_rng(seed)
    dense = gen.random((n_users, n_items)) < gen.random((n_users, 1))  # varied density per user
    dense[np.arange(n_users), np.arange(n_users) % n_items] = False  # one unseen item at least
    dense[0] = True
    dense[0, 7] = False  # user 0: only item 7 is unseen
    dense[1] = True
    dense[1, [3, 29]] = False
    dense[2] = False  # user 2 has seen nothing
    return sp.csr_matrix(dense.astype(np.float32))


def _interactions(seen: sp.csr_matrix) -> Interactions:
    coo = seen.tocoo()
    return Interactions(
        coo.row,
        coo.col,
        user_map=IdMap.range(seen.shape[0], "user"),
        item_map=IdMap.range(seen.shape[1], "item"),
    )


def test_has_seen_matches_dense() -> None:
    seen = _seen_matrix()
    users = np.repeat(np.arange(seen.shape[0]), seen.shape[1])
    items = np.tile(np.arange(seen.shape[1]), seen.shape[0])
    assert np.array_equal(has_seen(seen, users, items), seen.toarray().ravel() != 0)
    assert has_seen(sp.csr_matrix((3, 4)), np.array([0, 2]), np.array([1, 3])).tolist() == [0, 0]
    with pytest.raises(DataError, match="item indices"):
        has_seen(seen, np.array([0]), np.array([30]))


@pytest.mark.parametrize("membership", MEMBERSHIP)
@pytest.mark.parametrize("distribution", DISTRIBUTION)
def test_never_a_seen_item(membership: str, distribution: str) -> None:
    seen = _seen_matrix()
    counts = np.arange(1, seen.shape[1] + 1)
    sampler = NegativeSampler(
        seen,
        distribution=distribution,
        item_counts=counts,
        membership=membership,  # type: ignore[arg-type]
        seed=0,
    )
    users = np.repeat(np.arange(seen.shape[0]), 50)
    for _ in range(20):
        neg = sampler.sample(users, 5)
        assert neg.shape == (users.size, 5) and neg.dtype == np.int64
        assert not has_seen(seen, np.repeat(users, 5), neg.ravel()).any()
    # the near-saturated users get exactly their unseen items
    assert set(sampler.sample(np.zeros(200, dtype=np.int64), 3).ravel()) == {7}
    assert set(sampler.sample(np.ones(400, dtype=np.int64), 3).ravel()) == {3, 29}


@pytest.mark.parametrize("distribution", DISTRIBUTION)
def test_same_seed_same_draws(distribution: str) -> None:
    seen = _seen_matrix()
    users = np.arange(seen.shape[0]).repeat(7)

    def draws(seed: int) -> list[np.ndarray]:
        sampler = NegativeSampler(seen, distribution=distribution, seed=seed)
        return [sampler.sample(users, 4) for _ in range(3)]

    first, again, other = draws(11), draws(11), draws(12)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], first[1])  # successive epochs differ


@pytest.mark.parametrize("distribution", DISTRIBUTION)
def test_draws_checked_block_by_block_are_the_same_draws(
    distribution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _seen_matrix()
    users = np.random.default_rng(3).integers(0, seen.shape[0], 500)
    sampler = NegativeSampler(seen, distribution=distribution, seed=0)
    whole = sampler.sample(users, 3, rng=np.random.default_rng(1))
    monkeypatch.setattr(sampling, "_CHECK_BLOCK", 7)  # 2 users (6 draws) a block
    assert np.array_equal(sampler.sample(users, 3, rng=np.random.default_rng(1)), whole)
    assert not has_seen(seen, np.repeat(users, 3), whole.ravel()).any()


@pytest.mark.parametrize("distribution", DISTRIBUTION)
def test_explicit_rng_overrides_own_generator(distribution: str) -> None:
    seen = _seen_matrix()
    users = np.arange(seen.shape[0]).repeat(3)
    sampler = NegativeSampler(seen, distribution=distribution, seed=0)
    a = sampler.sample(users, 4, rng=np.random.default_rng([7, 1]))
    b = sampler.sample(users, 4, rng=np.random.default_rng([7, 1]))
    assert np.array_equal(a, b)
    fresh = NegativeSampler(seen, distribution=distribution, seed=0)
    assert np.array_equal(sampler.sample(users, 4), fresh.sample(users, 4))  # own rng untouched


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_popularity_frequencies(alpha: float) -> None:
    n_items = 8
    counts = np.array([0, 1, 2, 4, 8, 16, 3, 5], dtype=float)
    seen = sp.csr_matrix(([1.0, 1.0], ([1, 1], [5, 6])), shape=(2, n_items))
    sampler = NegativeSampler(
        seen, distribution="popularity", alpha=alpha, item_counts=counts, seed=3
    )
    n = 200_000
    for user, excluded in ((0, []), (1, [5, 6])):
        draws = sampler.sample(np.array([user]), n).ravel()
        weights = counts**alpha
        weights[excluded] = 0.0
        p = weights / weights.sum()
        freq = np.bincount(draws, minlength=n_items) / n
        assert freq[0] == 0.0 and all(freq[e] == 0.0 for e in excluded)
        tolerance = 5 * np.sqrt(p * (1 - p) / n) + 1e-12
        assert (np.abs(freq - p) <= tolerance).all(), (freq, p)


def test_uniform_frequencies() -> None:
    seen = sp.csr_matrix(([1.0], ([0], [2])), shape=(1, 5))
    draws = NegativeSampler(seen, seed=0).sample(np.array([0]), 100_000).ravel()
    freq = np.bincount(draws, minlength=5) / 100_000
    assert freq[2] == 0.0
    assert np.allclose(freq[[0, 1, 3, 4]], 0.25, atol=0.01)


def test_popularity_default_counts_come_from_seen() -> None:
    seen = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    draws = NegativeSampler(seen, distribution="popularity").sample(np.array([2]), 30_000)
    freq = np.bincount(draws.ravel(), minlength=4) / 30_000
    assert freq[2] == freq[3] == 0.0  # never interacted with: zero popularity
    assert abs(freq[1] - 2 / 3) < 0.02


def test_user_who_saw_everything_is_named() -> None:
    inter = Interactions.from_arrays(["x", "x", "y"], [1, 2, 1])
    sampler = NegativeSampler.from_interactions(inter)
    assert sampler.sample(inter.user_map.to_index(["y"]), 3).ravel().tolist() == [1, 1, 1]
    with pytest.raises(DataError, match="'x'"):
        sampler.sample(inter.users, 1)
    pop = NegativeSampler(sp.csr_matrix(np.array([[1, 0, 0]])), distribution="popularity")
    with pytest.raises(DataError, match="user index"):  # item 0 is the only popular one
        pop.sample(np.array([0]), 2)


def test_zero_negatives_and_bad_arguments() -> None:
    seen = _seen_matrix()
    sampler = NegativeSampler(seen)
    assert sampler.sample(np.array([0, 1]), 0).shape == (2, 0)
    with pytest.raises(ConfigError):
        sampler.sample(np.array([0]), -1)
    with pytest.raises(DataError, match="user indices"):
        sampler.sample(np.array([40]), 1)
    with pytest.raises(ConfigError, match="uniform"):
        NegativeSampler(seen, distribution="zipf")
    with pytest.raises(DataError, match="item_counts"):
        NegativeSampler(seen, distribution="popularity", item_counts=np.ones(3))
    with pytest.raises(DataError, match="sparse"):
        NegativeSampler(np.zeros((2, 2)))  # type: ignore[arg-type]


def test_sample_epoch_layout() -> None:
    seen = _seen_matrix()
    train = _interactions(seen)
    sampler = NegativeSampler.from_interactions(train, seed=0)
    users, items, labels = sample_epoch(train, 3, sampler)
    n = len(train)
    assert users.shape == items.shape == labels.shape == (4 * n,)
    assert users.dtype == items.dtype == np.int64 and labels.dtype == np.float32
    assert np.array_equal(users[:n], train.users) and np.array_equal(items[:n], train.items)
    assert labels[:n].tolist() == [1.0] * n and not labels[n:].any()
    assert np.array_equal(users[n:].reshape(n, 3)[:, 0], train.users)
    assert not has_seen(seen, users[n:], items[n:]).any()
    with pytest.raises(ConfigError, match="shape"):
        sample_epoch(train, 1, NegativeSampler(sp.csr_matrix((3, 3))))


def test_evaluation_candidates_distinct_and_unseen() -> None:
    seen = _seen_matrix(n_users=60, n_items=300, seed=1)
    dense = seen.toarray() != 0
    dense[:, :] &= np.arange(300) < 250  # leave 50+ unseen items per user
    inter = _interactions(sp.csr_matrix(dense.astype(np.float32)))
    train, test = leave_one_out(inter, by="random", seed=0)
    cand = evaluation_candidates(train, test, n_negatives=40, seed=0)
    assert cand.shape == (len(test), 40) and cand.dtype == np.int64
    assert (np.diff(np.sort(cand, axis=1), axis=1) > 0).all()  # no duplicates in a row
    rows = np.repeat(test.users, 40)
    assert not has_seen(inter.csr, rows, cand.ravel()).any()  # neither train nor test items
    again = evaluation_candidates(train, test, n_negatives=40, seed=0)
    assert np.array_equal(cand, again)


def test_evaluation_candidates_exact_fit_and_too_few() -> None:
    # users 0..9 have exactly 30 eligible items (0..29) among 100: each row must be that set;
    # redrawing duplicates rarely finishes here, so the direct subset draw is exercised too
    n_items, full = 100, 10
    users = np.concatenate([np.repeat(np.arange(full), 70), [full, full]])
    items = np.concatenate([np.tile(np.arange(30, n_items), full), [0, 1]])
    inter = Interactions(
        users, items, user_map=IdMap.range(full + 1, "user"), item_map=IdMap.range(n_items, "item")
    )
    train, test = leave_one_out(inter, by="random", seed=0)
    cand = evaluation_candidates(train, test, n_negatives=30, seed=0)
    for row in np.flatnonzero(test.users < full):
        assert sorted(cand[row].tolist()) == list(range(30))
    assert not np.array_equal(cand[0], cand[1])  # rows come in random order
    with pytest.raises(DataError, match="cannot draw 31"):
        evaluation_candidates(train, test, n_negatives=31)


@pytest.mark.data
def test_ml1m_train_negatives_are_exact(shared_data: Path) -> None:
    df = pd.read_csv(shared_data / "ml-1m-ncf" / "ml-1m.train.rating", sep="\t", header=None)
    train = Interactions(
        df[0].to_numpy(),
        df[1].to_numpy(),
        user_map=IdMap.range(6040, "user"),
        item_map=IdMap.range(3706, "item"),
    )
    for distribution in DISTRIBUTION:
        sampler = NegativeSampler.from_interactions(train, distribution=distribution, seed=0)
        users, items, _ = sample_epoch(train, 4, sampler)
        assert not has_seen(train.csr, users[len(train) :], items[len(train) :]).any()
