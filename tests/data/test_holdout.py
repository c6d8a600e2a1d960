"""The test splits of ``ncf train`` (``ncf.data.holdout``): the implicit protocols loo, random
and time, the unseen test rows they count, and the rating task's splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncf.data import Dataset, IdMap, Interactions
from ncf.data.holdout import (
    IMPLICIT_TEST_FRACTION,
    Unseen,
    implicit_holdout,
    known_rows,
    rating_holdouts,
)
from ncf.exceptions import ConfigError


def _dataset(with_times: bool = True) -> Dataset:
    """12 users with 1 to 12 interactions each over 40 items, times rising with the rows."""
    gen = np.random.default_rng(0)
    users = np.repeat(np.arange(12), np.arange(1, 13))
    items = np.concatenate([gen.choice(40, size=c, replace=False) for c in range(1, 13)])
    inter = Interactions(users, items, user_map=IdMap.range(12, "user"),
                         item_map=IdMap.range(40, "item"), ratings=gen.integers(1, 6, users.size),
                         timestamps=np.arange(users.size) if with_times else None)  # fmt: skip
    return Dataset(name="toy", interactions=inter)


def test_loo_is_the_default_and_unchanged() -> None:
    held = implicit_holdout(_dataset(), seed=0)
    assert held.protocol == "loo" and held.description.startswith("leave-one-out by time")
    assert held.negatives is not None and held.negatives.shape[0] == len(held.test) == 11
    assert held.unseen == Unseen()


def test_random_holds_out_a_share_of_each_user_without_negatives() -> None:
    ds = _dataset()
    held = implicit_holdout(ds, protocol="random", test_fraction=0.25, seed=3)
    assert held.negatives is None and held.protocol == "random"
    counts = ds.interactions.user_counts()
    n_test = np.minimum(np.floor(0.25 * counts + 0.5), counts - 1)  # user 0 keeps its only row
    scored = held.test.user_counts()
    assert scored.sum() + held.unseen.rows == n_test.sum()
    assert scored[0] == 0 and held.unseen.users == 0  # no user loses all its rows
    same = implicit_holdout(ds, protocol="random", test_fraction=0.25, seed=3)
    assert np.array_equal(same.test.items, held.test.items)
    other = implicit_holdout(ds, protocol="random", test_fraction=0.25, seed=4)
    assert not np.array_equal(other.train.items, held.train.items)
    assert "25% of each user's interactions at random (seed 3" in held.description
    default = implicit_holdout(ds, protocol="random")
    assert f"{IMPLICIT_TEST_FRACTION:.0%} of each user's" in default.description


def test_time_cuts_the_whole_log_and_counts_unseen_rows() -> None:
    ds = _dataset()
    held = implicit_holdout(ds, protocol="time", test_fraction=0.2)
    n = len(ds.interactions)
    n_test = int(np.floor(0.2 * n + 0.5))
    assert len(held.test) + held.unseen.rows == n_test and len(held.train) == n - n_test
    assert held.test.timestamps is not None and held.train.timestamps is not None
    assert held.train.timestamps.max() < held.test.timestamps.min()
    # the latest rows are user 11's (12 rows) and user 10's: 16 rows, user 11 entirely in test
    assert held.unseen.users == 1 and held.unseen.rows >= 12
    assert held.negatives is None and "not scored" in held.description
    summary = held.summary()
    assert summary["protocol"] == "time" and summary["pairs"] == len(held.test)
    assert summary["unseen_users"] == 1 and summary["candidates"] is None


def test_known_rows_counts_users_items_and_pairs() -> None:
    maps = {"user_map": IdMap.range(3, "user"), "item_map": IdMap.range(4, "item")}
    train = Interactions(np.array([0, 0, 1]), np.array([0, 1, 1]), **maps)
    test = Interactions(np.array([0, 1, 2, 2, 0]), np.array([2, 0, 0, 3, 3]), **maps)
    scored, unseen = known_rows(train, test)
    assert list(zip(scored.users.tolist(), scored.items.tolist(), strict=True)) == [(1, 0)]
    assert unseen == Unseen(users=1, items=2, rows=4)  # user 2; items 2 and 3
    assert "4 pair(s) not scored: 1 user(s) and 2 item(s) unseen in training" in unseen.text()
    with pytest.raises(ConfigError, match="no test pair can be scored"):
        known_rows(train, test.subset(np.array([2, 3])))


def test_protocol_errors() -> None:
    with pytest.raises(ConfigError, match="time cuts by timestamp and 'toy' has none"):
        implicit_holdout(_dataset(with_times=False), protocol="time")
    with pytest.raises(ConfigError, match="unknown protocol 'folds' for the implicit task"):
        implicit_holdout(_dataset(), protocol="folds")
    with pytest.raises(ConfigError, match="not loo"):
        implicit_holdout(_dataset(), test_fraction=0.2)
    with pytest.raises(ConfigError, match="ratio"):
        implicit_holdout(_dataset(), protocol="random", test_fraction=1.5)
    ds = _dataset()
    own = Dataset(name="ncf", interactions=ds.interactions, test=ds.interactions.subset([0]),
                  test_negatives=np.zeros((1, 5), dtype=np.int64))  # fmt: skip
    with pytest.raises(ConfigError, match="ships its own test split"):
        implicit_holdout(own, protocol="random")
    assert implicit_holdout(own).description.startswith("the dataset's own")


def test_threshold_applies_before_the_split() -> None:
    ds = _dataset()
    held = implicit_holdout(ds, protocol="random", threshold=4, seed=0)
    ratings = ds.interactions.ratings
    assert ratings is not None
    assert len(held.train) + len(held.test) + held.unseen.rows == int((ratings >= 4).sum())


def test_rating_holdouts_take_a_fraction() -> None:
    frame = pd.DataFrame({"user": np.repeat(np.arange(10), 10), "item": np.tile(np.arange(10), 10),
                          "rating": np.arange(100) % 5 + 1.0})  # fmt: skip
    ds = Dataset(name="r", interactions=Interactions.from_dataframe(frame, rating="rating"))
    (default,) = rating_holdouts(ds, "random")
    assert len(default.test) == 10 and default.protocol == "random"
    (wider,) = rating_holdouts(ds, "per-user", test_fraction=0.3)
    assert len(wider.test) == 30 and wider.protocol == "per-user"
    assert [h.protocol for h in rating_holdouts(ds)] == ["folds"] * 5
