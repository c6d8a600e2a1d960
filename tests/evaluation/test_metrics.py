"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncf.evaluation import metrics as M
from ncf.exceptions import DataError


def test_rank_of_positive_breaks_ties_against_the_positive() -> None:
    pos = np.array([0.5, 0.9, 0.2])
    neg = np.array([[0.1, 0.7, 0.5], [0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    # row 0: 0.7 is above, 0.5 ties (counts above) -> 2; row 1: nothing above -> 0; row 2: 3
    assert M.rank_of_positive(pos, neg).tolist() == [2, 0, 3]
    # a constant scorer gets the worst rank, not the best
    assert M.rank_of_positive(np.zeros(2), np.zeros((2, 4))).tolist() == [4, 4]


def test_rank_of_positive_masks_invalid_candidates_and_nan() -> None:
    pos = np.array([0.5, np.nan])
    neg = np.array([[0.1, 0.7, 0.5], [0.1, 0.2, 0.3]])
    mask = np.array([[True, True, False], [True, True, True]])
    # row 0: the tie is masked out -> only 0.7 above -> 1; row 1: a NaN positive is worst -> 3
    assert M.rank_of_positive(pos, neg, valid_mask=mask).tolist() == [1, 3]
    with pytest.raises(DataError, match="valid_mask has shape"):
        M.rank_of_positive(pos, neg, valid_mask=np.ones((2, 2), bool))
    with pytest.raises(DataError, match="expected pos_scores"):
        M.rank_of_positive(pos, neg[:1])


def test_sampled_metrics_by_hand() -> None:
    ranks = np.array([2, 0, 3])
    assert M.hit_ratio_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert M.hit_ratio_at_k(ranks, 3) == pytest.approx(2 / 3)
    # ndcg@3: rank 2 -> 1/log2(4) = 0.5, rank 0 -> 1, rank 3 -> 0 (outside); mean 0.5
    assert M.ndcg_at_k(ranks, 3) == pytest.approx(0.5)
    # ndcg@4 adds rank 3 -> 1/log2(5)
    assert M.ndcg_at_k(ranks, 4) == pytest.approx((1.5 + 1 / math.log2(5)) / 3)
    # mrr: (1/3 + 1 + 1/4) / 3
    assert M.mrr(ranks) == pytest.approx((1 / 3 + 1 + 1 / 4) / 3)
    with pytest.raises(DataError, match="empty"):
        M.mrr(np.array([], dtype=int))
    with pytest.raises(DataError, match="k must be a positive integer"):
        M.hit_ratio_at_k(ranks, 0)


# user A: hits at positions 1 and 3, 2 relevant; user B: hit at position 4, 3 relevant
HITS = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=bool)
N_REL = np.array([2, 3])


def test_precision_recall_hr_by_hand() -> None:
    assert M.precision_at_k(HITS, N_REL) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert M.recall_at_k(HITS, N_REL) == pytest.approx((2 / 2 + 1 / 3) / 2)
    assert M.hr_at_k(HITS, N_REL) == 1.0
    # at k = 2 only A has a hit (1 of its 2 relevant, 1 of 2 slots)
    assert M.hr_at_k(HITS, N_REL, 2) == 0.5
    assert M.precision_at_k(HITS, N_REL, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert M.recall_at_k(HITS, N_REL, 2) == pytest.approx((1 / 2 + 0) / 2)


def test_ndcg_multi_by_hand() -> None:
    # A: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG over min(4, 2) = 2: 1 + 1/log2(3)
    a = 1.5 / (1 + 1 / math.log2(3))
    # B: DCG = 1/log2(5); IDCG over min(4, 3) = 3: 1 + 1/log2(3) + 1/log2(4)
    b = (1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5)
    assert M.ndcg_at_k_multi(HITS, N_REL) == pytest.approx((a + b) / 2)
    # a perfect list scores 1 whatever the number of relevant items beyond k
    assert M.ndcg_at_k_multi(np.ones((1, 3), bool), np.array([10])) == pytest.approx(1.0)


def test_map_by_hand() -> None:
    # A: precision@1 = 1 and precision@3 = 2/3 at its hits, / min(4, 2) -> (1 + 2/3) / 2
    # B: precision@4 = 1/4 at its hit, / min(4, 3) -> 1/12
    assert M.map_at_k(HITS, N_REL) == pytest.approx(((1 + 2 / 3) / 2 + 1 / 12) / 2)
    # truncation: at k = 1, A has AP 1 / min(1, 2) = 1, B has 0
    assert M.map_at_k(HITS, N_REL, 1) == pytest.approx(0.5)


def test_full_ranking_input_checks() -> None:
    with pytest.raises(DataError, match="at least one relevant"):
        M.recall_at_k(HITS, np.array([2, 0]))
    with pytest.raises(DataError, match="exceeds"):
        M.map_at_k(HITS, N_REL, 5)
    with pytest.raises(DataError, match="expected hits"):
        M.hr_at_k(HITS, np.array([1]))
