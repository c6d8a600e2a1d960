import numpy as np
import pytest

from ncf.data import IdMap, Interactions
from ncf.data.split import (
    VALIDATION_METHODS,
    holdout_per_user,
    kfold,
    leave_one_out,
    random_split,
    time_split,
    validation_split,
)
from ncf.exceptions import ConfigError, DataError


def _synthetic(n_users: int = 30, n_items: int = 50, seed: int = 0) -> Interactions:
    """Random log whose timestamps are the row numbers, so every row can be identified."""
    gen = np.random.default_rng(seed)
    counts = gen.integers(1, 15, size=n_users)
    users = np.repeat(np.arange(n_users), counts)
    gen.shuffle(users)
    items = gen.integers(0, n_items, size=users.size)
    return Interactions(
        users,
        items,
        user_map=IdMap.range(n_users, "user"),
        item_map=IdMap.range(n_items, "item"),
        timestamps=np.arange(users.size),
    )


def _rows(part: Interactions) -> np.ndarray:
    assert part.timestamps is not None
    return np.asarray(part.timestamps)


def _assert_partition(whole: Interactions, train: Interactions, test: Interactions) -> None:
    rows_train, rows_test = _rows(train), _rows(test)
    assert np.intersect1d(rows_train, rows_test).size == 0
    assert np.array_equal(np.sort(np.concatenate([rows_train, rows_test])), _rows(whole))
    # parts keep the input's row order and its id maps
    assert np.all(np.diff(rows_train) > 0) and np.all(np.diff(rows_test) > 0)
    assert train.user_map is whole.user_map and test.item_map is whole.item_map


# ---------------------------------------------------------------- leave one out
def test_leave_one_out_by_time_tiny(tiny: Interactions) -> None:
    train, test = leave_one_out(tiny)
    users = tiny.user_map.to_raw(test.users).tolist()
    items = tiny.item_map.to_raw(test.items).tolist()
    # a: latest is item 3 (t=30); b: items 4 and 5 tie at t=7, the later row (item 5) wins;
    # c: item 5 (t=2); d has a single interaction and stays in train.
    assert dict(zip(users, items, strict=True)) == {"a": 3, "b": 5, "c": 5}
    assert len(train) == 6 and "d" in tiny.user_map.to_raw(train.users).tolist()
    assert train.user_map is tiny.user_map and test.item_map is tiny.item_map
    assert test.timestamps is not None and test.timestamps.tolist() == [30, 7, 2]


def test_leave_one_out_min_interactions(tiny: Interactions) -> None:
    _, test = leave_one_out(tiny, min_interactions=1)
    assert sorted(tiny.user_map.to_raw(test.users).tolist()) == ["a", "b", "c", "d"]
    _, test3 = leave_one_out(tiny, min_interactions=3)
    assert sorted(tiny.user_map.to_raw(test3.users).tolist()) == ["a", "b"]
    with pytest.raises(ConfigError, match="min_interactions"):
        leave_one_out(tiny, min_interactions=0)


def test_leave_one_out_needs_timestamps(tiny: Interactions) -> None:
    with pytest.raises(DataError, match="timestamps"):
        leave_one_out(tiny.replace(timestamps=None))


def test_leave_one_out_random_is_seeded_and_one_per_user() -> None:
    inter = _synthetic()
    train, test = leave_one_out(inter, by="random", seed=3)
    _assert_partition(inter, train, test)
    counts = inter.user_counts()
    assert np.array_equal(test.user_counts(), (counts >= 2).astype(int))
    again = leave_one_out(inter, by="random", seed=3)[1]
    assert np.array_equal(_rows(again), _rows(test))
    other = leave_one_out(inter, by="random", seed=4)[1]
    assert not np.array_equal(_rows(other), _rows(test))


def test_leave_one_out_by_time_takes_latest() -> None:
    inter = _synthetic()
    _, test = leave_one_out(inter)
    latest = np.full(inter.n_users, -1)
    np.maximum.at(latest, inter.users, _rows(inter))
    assert np.array_equal(np.sort(_rows(test)), np.sort(latest[inter.user_counts() >= 2]))


def test_unknown_order_is_config_error(tiny: Interactions) -> None:
    with pytest.raises(ConfigError, match="valid"):
        leave_one_out(tiny, by="newest")  # type: ignore[arg-type]


# ---------------------------------------------------------------- per-user holdout
@pytest.mark.parametrize("by", ["random", "time"])
def test_holdout_per_user_sizes(by: str) -> None:
    inter = _synthetic()
    train, test = holdout_per_user(inter, ratio=0.3, seed=1, by=by)  # type: ignore[arg-type]
    _assert_partition(inter, train, test)
    counts = inter.user_counts()
    expected = np.minimum(np.floor(0.3 * counts + 0.5), counts - 1)
    assert np.array_equal(test.user_counts(), expected)
    assert (train.user_counts() >= 1).all()  # every user keeps at least one training row
    if by == "time":  # the held-out rows are each user's latest
        last_train = np.full(inter.n_users, -1)
        np.maximum.at(last_train, train.users, _rows(train))
        assert (_rows(test) > last_train[test.users]).all()


# ---------------------------------------------------------------- random split, k folds
def test_random_split_sizes_and_determinism() -> None:
    inter = _synthetic()
    train, test = random_split(inter, ratio=0.25, seed=7)
    _assert_partition(inter, train, test)
    assert len(test) == int(np.floor(0.25 * len(inter) + 0.5))
    assert np.array_equal(_rows(random_split(inter, ratio=0.25, seed=7)[1]), _rows(test))
    gen = np.random.default_rng(7)
    assert np.array_equal(_rows(random_split(inter, ratio=0.25, seed=gen)[1]), _rows(test))


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5, "0.2", True])
def test_bad_ratio_is_config_error(tiny: Interactions, ratio: object) -> None:
    with pytest.raises(ConfigError, match="ratio"):
        random_split(tiny, ratio=ratio)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ratio"):
        holdout_per_user(tiny, ratio=ratio)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ratio"):
        time_split(tiny, ratio=ratio)  # type: ignore[arg-type]


def test_random_split_refuses_empty_part(tiny: Interactions) -> None:
    with pytest.raises(ConfigError, match="empty"):
        random_split(tiny, ratio=0.01)
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------- one global cut by time
def test_time_split_hand_example(tiny: Interactions) -> None:
    """tiny by time: c 1, c 2, d 3, b 5, b 7 (item 4), b 7 (item 5, a later row), a 10, 20, 30.
    The latest round(ratio * 9) rows are test, a tie going by row order."""

    def held(ratio: float) -> set[tuple[str, int]]:
        train, test = time_split(tiny, ratio=ratio)
        assert len(train) + len(test) == 9 and train.user_map is tiny.user_map
        assert train.timestamps is not None and test.timestamps is not None
        assert train.timestamps.max() <= test.timestamps.min()
        return set(zip(tiny.user_map.to_raw(test.users).tolist(),
                       tiny.item_map.to_raw(test.items).tolist(), strict=True))  # fmt: skip

    a_rows = {("a", 1), ("a", 2), ("a", 3)}
    assert held(0.3) == a_rows  # round(2.7) = 3
    assert held(0.4) == a_rows | {("b", 5)}  # round(3.6) = 4: the later row of the t=7 tie
    assert held(0.5) == a_rows | {("b", 5), ("b", 4)}  # round(4.5) = 5 (halves up)


def test_time_split_is_a_global_cut() -> None:
    inter = _synthetic()
    train, test = time_split(inter, ratio=0.25)
    _assert_partition(inter, train, test)
    assert len(test) == int(np.floor(0.25 * len(inter) + 0.5))
    assert _rows(test).min() > _rows(train).max()  # every test row is later than every train row


def test_time_split_needs_timestamps(tiny: Interactions) -> None:
    with pytest.raises(DataError, match="timestamps"):
        time_split(tiny.replace(timestamps=None))
    with pytest.raises(ConfigError, match="empty"):
        time_split(tiny, ratio=0.01)


def test_holdout_per_user_exact_fraction_and_seeded() -> None:
    """Each user with c rows gives round(0.2 * c) (at most c - 1) to test; seed decides which."""
    users = np.repeat(np.arange(4), [1, 5, 10, 3])
    inter = Interactions(users, np.arange(users.size), user_map=IdMap.range(4, "user"),
                         item_map=IdMap.range(users.size, "item"),
                         timestamps=np.arange(users.size))  # fmt: skip
    _, test = holdout_per_user(inter, ratio=0.2, seed=5)
    assert test.user_counts().tolist() == [0, 1, 2, 1]
    same = holdout_per_user(inter, ratio=0.2, seed=5)[1]
    assert np.array_equal(_rows(same), _rows(test))
    draws = {tuple(_rows(holdout_per_user(inter, ratio=0.2, seed=s)[1])) for s in range(8)}
    assert len(draws) > 1


def test_kfold_covers_every_row_once() -> None:
    inter = _synthetic()
    folds = kfold(inter, k=4, seed=2)
    assert len(folds) == 4
    test_rows = np.concatenate([_rows(test) for _, test in folds])
    assert np.array_equal(np.sort(test_rows), _rows(inter))  # each row in exactly one fold
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, test in folds:
        _assert_partition(inter, train, test)
    again = kfold(inter, k=4, seed=2)
    assert all(np.array_equal(_rows(a[1]), _rows(b[1])) for a, b in zip(folds, again, strict=True))


@pytest.mark.parametrize("k", [1, 0, 10, 2.5])
def test_kfold_bad_k(tiny: Interactions, k: object) -> None:
    with pytest.raises(ConfigError, match="k"):
        kfold(tiny, k=k)  # type: ignore[arg-type]


def test_kfold_k_equals_n(tiny: Interactions) -> None:
    folds = kfold(tiny, k=len(tiny))
    assert all(len(test) == 1 for _, test in folds)


# ---------------------------------------------------------------- validation split
@pytest.mark.parametrize("method", sorted(VALIDATION_METHODS))
def test_validation_is_drawn_from_train_only(method: str) -> None:
    inter = _synthetic()
    train, test = leave_one_out(inter)
    part, valid = validation_split(train, method=method, seed=5)
    _assert_partition(train, part, valid)
    assert len(valid) > 0
    assert np.intersect1d(_rows(valid), _rows(test)).size == 0
    assert np.isin(_rows(valid), _rows(train)).all()


def test_validation_passes_keywords(tiny: Interactions) -> None:
    part, valid = validation_split(tiny, method="leave_one_out", by="random", seed=1)
    assert len(valid) == 3 and len(part) == 6
    part, valid = validation_split(tiny, method="random", ratio=0.5)
    assert len(valid) == 5  # round(0.5 * 9), halves up


def test_validation_unknown_method_lists_names(tiny: Interactions) -> None:
    with pytest.raises(ConfigError, match=r"leave_one_out.*per_user.*random"):
        validation_split(tiny, method="holdout")
