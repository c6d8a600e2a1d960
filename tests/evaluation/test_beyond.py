"""Beyond-accuracy metrics: each one against a hand computation on tiny lists, padding, a
cut-off longer than the lists, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncf.evaluation.beyond import (
    average_popularity,
    beyond_accuracy,
    catalogue_coverage,
    gini_index,
    novelty,
)
from ncf.exceptions import DataError

# Three users' top-2 lists over a catalogue of 5 items; the third user got only one item.
TOP = np.array([[0, 1], [0, 2], [3, -1]])
# Distinct training users per item, out of 8 training users; item 4 was never seen.
POP = np.array([8, 4, 2, 1, 0])
N_USERS = 8


def test_coverage_counts_distinct_items_over_the_catalogue() -> None:
    # items 0, 1, 2, 3 recommended (0 twice, the padding ignored): 4 of 5
    assert catalogue_coverage(TOP, 5) == pytest.approx(4 / 5)
    assert catalogue_coverage(np.array([[0, 0], [0, -1]]), 4) == pytest.approx(1 / 4)


def test_novelty_is_the_mean_self_information_per_list_then_per_user() -> None:
    # -log2 p: item 0 p=8/8 -> 0; item 1 p=4/8 -> 1; item 2 p=2/8 -> 2; item 3 p=1/8 -> 3 bits
    # user 0: (0 + 1) / 2 = 0.5; user 1: (0 + 2) / 2 = 1; user 2: 3 / 1 = 3 -> mean 1.5
    assert novelty(TOP, POP, N_USERS) == pytest.approx(1.5)


def test_novelty_smooths_an_item_never_seen_in_training() -> None:
    # popularity 0: p = 1 / (n_users + 1) = 1/9 -> log2(9) bits, above a once-seen item's 3
    assert novelty(np.array([[4]]), POP, N_USERS) == pytest.approx(math.log2(9))
    assert novelty(np.array([[4]]), POP, N_USERS) > novelty(np.array([[3]]), POP, N_USERS)


def test_average_popularity_averages_each_list_then_the_users() -> None:
    # user 0: (8 + 4) / 2 = 6; user 1: (8 + 2) / 2 = 5; user 2: 1 / 1 = 1 -> (6 + 5 + 1) / 3 = 4
    assert average_popularity(TOP, POP) == pytest.approx(4.0)


def test_gini_by_the_sorted_formula_over_the_whole_catalogue() -> None:
    # exposure per item: [2, 1, 1, 1, 0] -> sorted c = [0, 1, 1, 1, 2], n = 5, total 5
    # sum (2j - n - 1) c_j = (-4)0 + (-2)1 + (0)1 + (2)1 + (4)2 = 8 -> 8 / (5 * 5) = 0.32
    assert gini_index(TOP, 5) == pytest.approx(0.32)


def test_gini_is_zero_for_equal_exposure_and_near_one_for_one_item() -> None:
    assert gini_index(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)
    # every list is item 0 among 10 items: (n - 1) / n
    assert gini_index(np.zeros((7, 1), dtype=int), 10) == pytest.approx(0.9)


def test_beyond_accuracy_cuts_the_lists_at_k() -> None:
    out = beyond_accuracy(TOP, POP, N_USERS, k=1)
    # first column only: items 0, 0, 3
    assert set(out) == {"coverage@1", "novelty@1", "arp@1", "gini@1"}
    assert out["coverage@1"] == pytest.approx(2 / 5)
    assert out["novelty@1"] == pytest.approx((0 + 0 + 3) / 3)
    assert out["arp@1"] == pytest.approx((8 + 8 + 1) / 3)
    # exposure [2, 0, 0, 1, 0] -> sorted [0, 0, 0, 1, 2]: (2*1 + 4*2) / (5 * 3)
    assert out["gini@1"] == pytest.approx(10 / 15)
    assert all(isinstance(v, float) for v in out.values())


def test_k_larger_than_the_lists_uses_whole_rows() -> None:
    whole = beyond_accuracy(TOP, POP, N_USERS, k=2)
    assert beyond_accuracy(TOP, POP, N_USERS, k=50) == {
        key.replace("@2", "@50"): value for key, value in whole.items()
    }
    assert whole["coverage@2"] == catalogue_coverage(TOP, 5)
    assert whole["gini@2"] == gini_index(TOP, 5)


def test_all_padding_gives_nan_but_zero_coverage() -> None:
    empty = np.full((2, 3), -1)
    out = beyond_accuracy(empty, POP, N_USERS, k=3)
    assert out["coverage@3"] == 0.0
    assert all(math.isnan(out[key]) for key in ("novelty@3", "arp@3", "gini@3"))
    # a padded user is left out of the per-user mean rather than counted as 0
    assert average_popularity(np.array([[1], [-1]]), POP) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: catalogue_coverage(np.array([0, 1]), 5), "2-D"),
        (lambda: catalogue_coverage(np.array([[0, 5]]), 5), "0..4"),
        (lambda: catalogue_coverage(np.array([[0, -2]]), 5), "padding"),
        (lambda: catalogue_coverage(np.array([[0.0, 1.0]]), 5), "integer"),
        (lambda: gini_index(TOP, 0), "n_items"),
        (lambda: novelty(TOP, POP, 0), "n_users"),
        (lambda: novelty(TOP, POP, 4), "distinct users"),
        (lambda: average_popularity(TOP, [1.0, -1.0, 0, 0, 0]), ">= 0"),
        (lambda: beyond_accuracy(TOP, POP, N_USERS, k=0), "k must"),
        (lambda: beyond_accuracy(TOP, POP[:3], N_USERS, k=2), "0..2"),
    ],
)
def test_bad_input_raises_a_data_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message):
        call()
