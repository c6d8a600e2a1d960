"""The split audit, on a toy split with every finding planted."""

from __future__ import annotations

import numpy as np
import pytest

from ncf import DataError, IdMap, Interactions
from ncf.data.audit import audit

USERS, ITEMS = IdMap.range(4, "user"), IdMap.range(6, "item")


def log(users: list[int], items: list[int]) -> Interactions:
    return Interactions(np.array(users), np.array(items), user_map=USERS, item_map=ITEMS)


def test_clean_split_is_ok() -> None:
    train = log([0, 0, 1, 2], [0, 1, 1, 2])
    test = log([0, 1, 2], [2, 0, 1])
    negatives = np.array([[3, 4], [3, 4], [3, 4]])
    report = audit(train, test, negatives)
    assert report.ok and report.n_negatives == 2
    assert report.examples == {}
    assert report.summary().splitlines()[0].endswith(": ok")


def test_planted_findings() -> None:
    train = log([0, 0, 0, 1, 2, 2], [0, 1, 0, 1, 2, 3])  # (0, 0) twice
    test = log([0, 1, 2, 3], [2, 1, 4, 5])  # (1, 1) leaks; user 3 and items 4, 5 unseen
    negatives = np.array([[2, 3], [0, 0], [3, 5], [4, 1]])
    report = audit(train, test, negatives)
    assert not report.ok
    assert report.train_duplicates == 1 and report.examples["train_duplicates"] == [(0, 0)]
    assert report.test_in_train == 1 and report.examples["test_in_train"] == [(1, 1, 1)]
    assert report.positive_in_negatives == 1  # row 0 lists its positive 2
    assert report.examples["positive_in_negatives"] == [(0, 0, 2)]
    assert report.negatives_in_train == 1 and report.examples["negatives_in_train"] == [(2, 3)]
    assert report.duplicate_negative_rows == 1
    assert report.examples["duplicate_negative_rows"] == [(1, 0)]
    assert report.unseen_test_users == 1 and report.unseen_test_items == 2
    text = report.summary()
    assert "PROBLEMS FOUND" in text and "e.g. (0, 0, 2)" in text and len(text.splitlines()) == 8


def test_unseen_ids_alone_do_not_fail() -> None:
    report = audit(log([0], [0]), log([1], [1]))
    assert report.ok and report.unseen_test_users == 1 and report.n_negatives == 0


def test_bad_inputs() -> None:
    train, test = log([0], [0]), log([1], [1])
    with pytest.raises(DataError, match=r"shape \(n_test=1, N\)"):
        audit(train, test, np.array([[1], [2]]))
    with pytest.raises(DataError, match=r"item indices in 0\.\.5"):
        audit(train, test, np.array([[6]]))
    with pytest.raises(DataError, match="integer item indices"):
        audit(train, test, np.array([[1.5]]))
    other = Interactions(np.array([0]), np.array([0]), user_map=USERS, item_map=IdMap.range(2))
    with pytest.raises(DataError, match="same id maps"):
        audit(train, other)
